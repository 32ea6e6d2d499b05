"""A report computed on the box and copied here: the drift report and the shadow report.

The box does the work (an agent command in the monitor's environment, under
systemd-run, so a dropped connection does not leave it half done) and writes its files
into a temporary folder there; this side builds the environment once, runs the command
and copies the files into a folder of their own under `dest`.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from remote.errors import MlopsBoxError, MonitorError
from remote.monitor.env import PYTHON, ensure_monitor_env
from remote.system.agent import run_agent
from remote.system.run import Connection, check, run

REPORT_TIMEOUT_S = 900
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def compute_and_fetch(
    conn: Connection,
    command: str,
    args: list[str],
    dest: Path,
    *,
    name: Callable[[dict[str, Any]], str],
    say: Callable[[str], None],
    errors: Mapping[str, type[MlopsBoxError]] | None = None,
    error: type[MlopsBoxError] = MonitorError,
) -> tuple[dict[str, Any], Path]:
    """Run `command` on the box with `--out=<a temporary folder>`; the agent's answer and
    the folder under `dest` (named `name(answer)` and the UTC time) holding its files."""
    ensure_monitor_env(conn, say)
    remote_dir = run(conn, "mktemp -d", what="make a folder for the report").strip()
    try:
        answer = run_agent(
            conn,
            command,
            *args,
            f"--out={remote_dir}",
            python=PYTHON,
            timeout_s=REPORT_TIMEOUT_S,
            errors=errors,
            error=error,
        )
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        folder = dest / f"{_UNSAFE.sub('_', name(answer))}-{stamp}"
        folder.mkdir(parents=True, exist_ok=True)
        for file in answer["files"]:
            conn.get(f"{remote_dir}/{file}", str(folder / Path(file).name))
    finally:
        check(conn, f"rm -rf {shlex.quote(remote_dir)}")
    return answer, folder
