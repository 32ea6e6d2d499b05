"""The idle auto-stop's commands: `idle-set`, `idle-status`, and `idle-check` (its timer's,
every minute: it imports only what it runs)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..cli import Command, Env, OneOf, arg
from ..system import layout
from ..system.failure import AgentFailure

SET = "idle-set"
STATUS = "idle-status"
CHECK = "idle-check"


def _now() -> datetime:
    return datetime.now(UTC)


def set_autostop(
    dir: str, idle_minutes: int | None, off: bool, ignore_serving: bool
) -> dict[str, Any]:
    from . import autostop

    return autostop.set_autostop(dir, None if off else idle_minutes, ignore_serving, _now())


def status(dir: str) -> dict[str, Any]:
    from . import autostop

    return autostop.status(dir, _now())


def check(
    dir: str,
    ssh_port: int,
    unit: list[str],
    router_log: str,
    keepalive: str,
    dry_run: bool,
    at: datetime | None,
) -> dict[str, Any]:
    from . import autostop

    return autostop.check(
        dir,
        _at(at, dry_run),
        ssh_port=ssh_port,
        unit_patterns=unit,
        router_log=router_log,
        keepalive=keepalive,
        dry_run=dry_run,
    )


def _at(at: datetime | None, dry_run: bool) -> datetime:
    """The check's time: now, or (only in a dry run, which changes nothing) the one asked."""
    if at is None:
        return _now()
    if not dry_run:
        raise AgentFailure("bad-value", "--at is for --dry-run only: a real check runs now.")
    return at if at.tzinfo else at.replace(tzinfo=UTC)


# Where the files are is the box's layout; the options exist so a test can point them
# at a temporary directory. Which port and units count as busy, the controller says.
_DIR = arg("--dir", default=layout.IDLE_DIR, help="the auto-stop's files")

COMMANDS = (
    Command(
        SET,
        "set the idle auto-stop",
        Env.SYSTEM,
        "idle.commands:set_autostop",
        (
            _DIR,
            OneOf((arg("--idle-minutes", type=int), arg("--off", action="store_true"))),
            arg("--ignore-serving", action="store_true"),
        ),
    ),
    Command(
        STATUS, "the auto-stop's setting and clock", Env.SYSTEM, "idle.commands:status", (_DIR,)
    ),
    Command(
        CHECK,
        "power the box off if it is idle long enough",
        Env.SYSTEM,
        "idle.commands:check",
        (
            _DIR,
            arg("--ssh-port", type=int, required=True),
            arg("--unit", action="append", default=[], help="a busy unit pattern"),
            arg("--router-log", default=layout.ROUTER_LOG),
            arg("--keepalive", default=layout.KEEPALIVE_FILE),
            arg("--dry-run", action="store_true", help="answer, change nothing"),
            arg("--at", type=datetime.fromisoformat, help="with --dry-run: decide at"),
        ),
    ),
)
