"""systemd units on the box: one `ensure_unit`, and the few calls every service needs.

`ensure_unit` is declarative: the unit file (and the files it reads, such as its
EnvironmentFile) are uploaded only where they differ, systemd reloads only when a unit
file changed, and the unit is (re)started only when something changed or it is not
running. A second call on a configured box changes nothing and says so.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from remote import contract
from remote.changes import Changed
from remote.errors import MlopsBoxError
from remote.system import files
from remote.system.files import RemoteFile
from remote.system.run import Connection, check, sudo, tail

UNIT_DIR = contract.SYSTEMD_UNIT_DIR
JOURNAL_LINES = 6


@dataclass(frozen=True)
class UnitState:
    """What systemd says of a unit right now."""

    active: str  # ActiveState: active, activating, inactive, failed, ...
    enabled: bool
    restarts: int  # NRestarts: how often systemd restarted it since its last start
    since: str  # ActiveEnterTimestamp

    @property
    def running(self) -> bool:
        return self.active == "active"


def unit_path(unit: str) -> str:
    return f"{UNIT_DIR}/{unit}"


def state(conn: Connection, unit: str) -> UnitState:
    """The unit's state; an unknown unit reads as inactive and disabled."""
    props = show(conn, unit, "ActiveState", "UnitFileState", "NRestarts", "ActiveEnterTimestamp")
    restarts = props.get("NRestarts", "")
    return UnitState(
        active=props.get("ActiveState") or "inactive",
        enabled=props.get("UnitFileState") == "enabled",
        restarts=int(restarts) if restarts.isdigit() else 0,
        since=props.get("ActiveEnterTimestamp", ""),
    )


def show(conn: Connection, unit: str, *props: str) -> dict[str, str]:
    """`systemctl show -p ...` as a dict (empty values for a unit systemd does not know)."""
    args = " ".join(f"-p {p}" for p in props)
    result = check(conn, f"systemctl show {args} {shlex.quote(unit)}")
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def systemctl(
    conn: Connection, verb: str, unit: str = "", *, error: type[MlopsBoxError] = MlopsBoxError
) -> None:
    """`sudo systemctl <verb> <unit>`, raising `error` with the unit's log when it fails."""
    target = f" {shlex.quote(unit)}" if unit else ""
    result = check(conn, sudo(f"systemctl {verb}{target}"))
    if not result.ok:
        log = f" {journal_tail(conn, unit)}" if unit else ""
        raise error(f"Could not {verb}{target} on the box: {tail(result)}.{log}")


def journal_tail(conn: Connection, unit: str, lines: int = JOURNAL_LINES) -> str:
    """The unit's last log lines as one sentence, with where to read the rest."""
    log = check(conn, sudo(f"journalctl -u {shlex.quote(unit)} -n {lines} --no-pager -o cat"))
    text = " | ".join(line.strip() for line in log.stdout.strip().splitlines() if line.strip())
    return f"Its last log lines: {text or '(none)'}. See `journalctl -u {unit}` on the box."


def ensure_unit(
    conn: Connection,
    unit: str,
    content: str,
    *,
    companions: Sequence[RemoteFile] = (),
    start: bool = True,
    enable: bool = True,
    error: type[MlopsBoxError] = MlopsBoxError,
) -> Changed:
    """Make `unit` (with `content`) and its companion files as given, enabled and running.

    Returns what changed: the files written, "enabled at boot", "started"/"restarted".
    """
    unit_file = RemoteFile(unit_path(unit), content.encode(), 0o644)
    wanted = [unit_file, *companions]
    found = files.probe(conn, [f.path for f in wanted])
    before = state(conn, unit)
    changed = Changed()
    for item in wanted:
        if not item.matches(found[item.path]):
            files.write(conn, item)
            changed.add(item.path)
    if not unit_file.matches(found[unit_file.path]):
        systemctl(conn, "daemon-reload", error=error)
    if enable and not before.enabled:
        systemctl(conn, "enable", unit, error=error)
        changed.add("enabled at boot")
    if start and (changed or not before.running):
        systemctl(conn, "restart", unit, error=error)
        changed.add("restarted" if before.running else "started")
    return changed
