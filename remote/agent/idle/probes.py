"""What the idle check looks at on the box: SSH connections, units, files' times, the boot.

Each probe answers an `Activity`. A probe that cannot look answers one with `failed`
set, which `idle.decide` counts as busy: not knowing never powers a box off.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from ..system.failure import AgentFailure
from .decide import KEEPALIVE, ROUTER, SSH, UNITS, Activity, Probes

# The kernel's TCP tables of this network namespace; tcp6 is absent without IPv6.
TCP_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
TCP_ESTABLISHED = "01"
BOOT_ID = "/proc/sys/kernel/random/boot_id"
# A unit in one of these states is doing something (`inactive` and `failed` are not).
BUSY_UNIT_STATES = frozenset({"active", "activating", "deactivating", "reloading", "refreshing"})
SYSTEMCTL_TIMEOUT_S = 30
KIND_BOOT = "boot"


def observe(
    now: datetime,
    *,
    ssh_port: int,
    unit_patterns: Sequence[str],
    router_log: str,
    keepalive: str,
) -> Probes:
    return Probes(
        boot_id=boot_id(),
        booted_at=booted_at(now),
        activities=(
            ssh_connections(ssh_port),
            running_units(unit_patterns),
            touched(ROUTER, "requests to the router", router_log),
            touched(KEEPALIVE, f"the keep-alive file {keepalive}", keepalive),
        ),
        uptime=time.clock_gettime(time.CLOCK_BOOTTIME),
    )


def ssh_connections(port: int, tables: Sequence[str] = TCP_TABLES) -> Activity:
    """Established TCP connections to sshd's port: a shell, `fab`, a tunnel with `ssh -N`,
    VS Code's remote server; each holds one while it is connected."""
    count = 0
    try:
        for table in tables:
            try:
                with open(table, encoding="ascii") as handle:
                    count += established_to(handle.read(), port)
            except FileNotFoundError:
                if table != tables[0]:  # no IPv6 on this box
                    continue
                raise
    except (OSError, ValueError) as exc:
        return Activity(SSH, "SSH connections", failed=f"cannot read {table}: {exc}")
    plural = "" if count == 1 else "s"
    return Activity(SSH, f"{count} SSH connection{plural}", busy=count > 0)


def established_to(table: str, port: int) -> int:
    """How many connections in a /proc/net/tcp{,6} table are established to local `port`."""
    count = 0
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4:
            continue
        local, state = fields[1], fields[3]
        if state == TCP_ESTABLISHED and int(local.rsplit(":", 1)[1], 16) == port:
            count += 1
    return count


def running_units(patterns: Sequence[str], systemctl: str = "systemctl") -> Activity:
    """The services and scopes matching `patterns` that are doing something."""
    if not patterns:
        return Activity(UNITS, "no unit patterns")
    command = [
        systemctl,
        "list-units",
        "--all",
        "--plain",
        "--no-legend",
        "--full",
        "--type=service,scope",
        *patterns,
    ]
    what = f"units {' '.join(patterns)}"
    try:
        listed = subprocess.run(
            command, capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Activity(UNITS, what, failed=f"{command[0]}: {exc}")
    if listed.returncode != 0:
        error = " ".join(listed.stderr.split())[-200:] or f"exit status {listed.returncode}"
        return Activity(UNITS, what, failed=f"systemctl list-units: {error}")
    running = busy_units(listed.stdout)
    return Activity(UNITS, ", ".join(running) or f"no {what} running", busy=bool(running))


def busy_units(listing: str) -> list[str]:
    """`unit (state)` for each unit of a `systemctl list-units --plain` listing that is busy."""
    found = []
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] in BUSY_UNIT_STATES:
            found.append(fields[0] if fields[2] == "active" else f"{fields[0]} ({fields[2]})")
    return found


def touched(kind: str, what: str, path: str) -> Activity:
    """When `path` was last written (the router's access log, the keep-alive file)."""
    try:
        mtime = os.stat(path).st_mtime
    except FileNotFoundError:
        return Activity(kind, f"{what}: none ({path} absent)")
    except OSError as exc:
        return Activity(kind, what, failed=f"cannot stat {path}: {exc.strerror}")
    return Activity(kind, what, last=datetime.fromtimestamp(mtime, UTC))


def boot_id(path: str = BOOT_ID) -> str:
    try:
        with open(path, encoding="ascii") as handle:
            found = handle.read().strip()
    except OSError as exc:
        found = ""
        reason = str(exc)
    else:
        reason = "it is empty"
    if not found:
        raise AgentFailure(KIND_BOOT, f"Cannot read the boot id from {path} ({reason}).")
    return found


def booted_at(now: datetime) -> datetime:
    """When this boot's init started: PID 1's start time. That is the box's own boot in a
    container too, where /proc/uptime is the host's. `now` where it cannot be read, so
    the clock restarts later, never earlier."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            btime = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
        with open("/proc/1/stat", encoding="ascii") as handle:
            # Field 22, counted after the command name (which may hold spaces).
            ticks = int(handle.read().rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError, StopIteration):
        return now
    started = datetime.fromtimestamp(btime, UTC) + timedelta(
        seconds=ticks / os.sysconf("SC_CLK_TCK")
    )
    return min(started, now)
