"""Run the agent bundle on this machine exactly as the box runs it: no box needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

from remote.system import agent
from tests.remote.agent import host_guard


class BundleRun(NamedTuple):
    code: int
    answer: dict[str, Any]
    log: str  # stderr


def run_bundle(tmp_path: Path, *args: str, units_listing: str | None = None) -> BundleRun:
    """`python -m mlops_agent <args>` with only the zip on the path (cwd is not the
    repository, no environment leaks), answering one JSON line. PATH and the refused-calls
    log are conftest.py's host guard; with `units_listing`, that is what
    `systemctl list-units` answers."""
    zipped = tmp_path / "agent.zip"
    zipped.write_bytes(agent.bundle()[1])
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(zipped)}
    env[host_guard.LOG_ENV] = os.environ[host_guard.LOG_ENV]
    if units_listing is not None:
        listing = tmp_path / "units-listing"
        listing.write_text(units_listing)
        env[host_guard.LISTING_ENV] = str(listing)
    proc = subprocess.run(
        [sys.executable, "-m", agent.PACKAGE, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout + proc.stderr
    return BundleRun(proc.returncode, json.loads(lines[0]), proc.stderr)
