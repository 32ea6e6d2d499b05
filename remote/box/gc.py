"""`fab box.gc`: free the box's disk of what no deploy, job or service needs any more.

The box's agent decides (remote/agent/system/gc.py lists what it looks at and what it
keeps); this side names what only it knows is in use: the MLflow server's environment
(the install's state file) and the monitor's (this checkout's lock).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from remote.agent.system import commands as system_cmds
from remote.errors import ConfigError, MlopsBoxError
from remote.mlflow.spec import installed_python
from remote.mlflow.status import read_state
from remote.monitor.env import ENV_PATH as MONITOR_ENV
from remote.system.agent import run_agent
from remote.system.run import Connection

MAX_TRAIN_DAYS = 3650.0


class GcError(MlopsBoxError):
    """The box's clean-up was refused or failed."""


@dataclass(frozen=True)
class Collected:
    removed: list[tuple[str, int]]  # path, bytes
    freed_bytes: int
    dry_run: bool

    def describe(self) -> str:
        verb = "Would remove" if self.dry_run else "Removed"
        if not self.removed:
            return "Nothing to remove: everything on the box is in use or recent."
        lines = [f"  {path}  ({_size(size)})" for path, size in self.removed]
        total = f"{verb} {len(self.removed)} items, {_size(self.freed_bytes)} in all:"
        return "\n".join([total, *lines])


def check_train_days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        days = -1.0
    if not 0 <= days <= MAX_TRAIN_DAYS:
        raise ConfigError(
            f"--train-days is {text!r}: give days from 0 to {MAX_TRAIN_DAYS:.0f} (a training "
            "environment used by a job started within them is kept)."
        )
    return days


def collect(conn: Connection, *, train_days: float, dry_run: bool) -> Collected:
    keep = [MONITOR_ENV]
    installed = read_state(conn)
    if installed and installed.get("version"):
        keep.append(posixpath.dirname(posixpath.dirname(installed_python(installed))))
    args = [arg for path in keep for arg in ("--keep", path)]
    args += ["--train-days", str(train_days)] + (["--dry-run"] if dry_run else [])
    answer: dict[str, Any] = run_agent(conn, system_cmds.GC, *args, error=GcError)
    removed = [(str(item["path"]), int(item["bytes"])) for item in answer["removed"]]
    return Collected(removed, int(answer["freed_bytes"]), bool(answer["dry_run"]))


def _size(size: int) -> str:
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
