"""Boot a box with systemd-nspawn in the background, find it again, and power it off.

PID 1 on this machine need not be systemd (containers, CI), so the box is not a
systemd unit: nspawn runs in its own session, its pid goes into a file, and a pid is
only believed while /proc says it is still that box's nspawn.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

from remote import contract
from remote.errors import ProviderError, WaitTimeout
from remote.waiting import wait_for

# What nspawn sends the box's init when nspawn gets SIGTERM: an orderly poweroff.
KILL_SIGNAL = "SIGRTMIN+4"
KILL_GRACE_S = 10.0
LOG_TAIL_LINES = 15
BOOT_EXEC_TIMEOUT_S = 10.0
# The nspawn processes this process started, by pid.
_children: dict[int, subprocess.Popen[bytes]] = {}


# Where the host's shared package cache appears inside every local box: uv's cache and
# uv's own wheel (remote/system/venv.py) and pip's cache (boxconfig).
BOX_PACKAGE_CACHE = contract.PACKAGE_CACHE


def command(rootfs: Path, machine: str, netns_path: Path, package_cache: Path) -> list[str]:
    return [
        "systemd-nspawn",
        "--boot",
        "--register=no",
        "--keep-unit",
        f"--network-namespace-path={netns_path}",
        # The box's own namespace is all it can change: its firewall rules (the model
        # slots kept away from MLflow, remote/deploy/setup.py) work as on EC2.
        "--capability=CAP_NET_ADMIN",
        "--directory",
        str(rootfs),
        f"--machine={machine}",
        f"--kill-signal={KILL_SIGNAL}",
        # The host writes the box's resolv.conf itself (see netns.plan_dns).
        "--resolv-conf=off",
        # No tty here: print the boot log (into the log file) and read nothing.
        "--console=read-only",
        # One package cache on the host for every box: each on-box environment downloads
        # a package once per machine, not once per box (the test tier builds many boxes).
        f"--bind={package_cache}:{BOX_PACKAGE_CACHE}",
    ]


def boot(cmd: list[str], log_path: Path, machine: str) -> int:
    """Start nspawn detached from this process (it outlives `fab`); return its pid."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    # Kept so that this process can reap it, and Python does not warn it still runs.
    _children[proc.pid] = proc
    # Right after exec, /proc/<pid>/cmdline can still be empty: wait until it is not, so
    # that is_running never mistakes a booting box for an exited one.
    wait_for(
        lambda: True if proc.poll() is not None or is_running(proc.pid, machine) else None,
        what=f"systemd-nspawn of {machine} to start",
        timeout_s=BOOT_EXEC_TIMEOUT_S,
        poll_s=0.02,
        out=io.StringIO(),  # a matter of milliseconds: not worth a progress line
    )
    if proc.returncode is not None:
        raise ProviderError(
            f"systemd-nspawn exited with status {proc.returncode} ({log_tail(log_path)}): "
            f"see {log_path}, fix what it says, then retry."
        )
    return proc.pid


def is_running(pid: int, machine: str) -> bool:
    """Whether `pid` is still the nspawn of box `machine` (not exited, not a reused pid)."""
    _reap(pid)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rpartition(")")[2].split()[0] == "Z":
        return False
    return b"systemd-nspawn" in Path(cmdline[0].decode()).name.encode() and (
        f"--machine={machine}".encode() in cmdline
    )


def poweroff(pid: int, machine: str, timeout_s: float) -> None:
    """Power the box off cleanly; after `timeout_s`, kill nspawn and say so."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    try:
        wait_for(
            lambda: True if not is_running(pid, machine) else None,
            what=f"local box {machine} to power off",
            timeout_s=timeout_s,
            poll_s=0.2,
        )
    except WaitTimeout:
        sys.stderr.write(
            f"Local box {machine} did not power off within {timeout_s:.0f}s: killing it.\n"
        )
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def kill_box_processes(netns_path: Path, machine: str) -> None:
    """SIGKILL whatever still runs in the box's network namespace, and wait until it is gone.

    A killed nspawn does not take the box with it (its init lives on, reparented), and
    the namespace is the one handle on the box that exists from before boot to the end.
    """
    if not processes_in(netns_path):
        return
    for pid in processes_in(netns_path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    try:
        wait_for(
            lambda: True if not processes_in(netns_path) else None,
            what=f"local box {machine}'s processes to exit",
            timeout_s=KILL_GRACE_S,
            poll_s=0.2,
        )
    except WaitTimeout:
        raise ProviderError(
            f"Processes of local box {machine} survive SIGKILL (pids {processes_in(netns_path)}): "
            "end them, then run `fab box.stop` again."
        ) from None


def processes_in(netns_path: Path) -> list[int]:
    """Pids of the live processes in the network namespace bound at `netns_path`."""
    try:
        target = netns_path.stat()
    except OSError:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ns = (entry / "ns/net").stat()
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if (ns.st_dev, ns.st_ino) == (target.st_dev, target.st_ino) and state != "Z":
            found.append(int(entry.name))
    return found


def log_tail(log_path: Path) -> str:
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in lines[-LOG_TAIL_LINES:] if line.strip())


def _reap(pid: int) -> None:
    # When this process started nspawn, its exit leaves a zombie until we collect it.
    proc = _children.get(pid)
    if proc is not None and proc.poll() is not None:
        del _children[pid]
