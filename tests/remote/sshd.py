"""A throwaway real sshd on 127.0.0.1 for the host key tests (needs root and openssh-server)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from remote.settings import BoxSettings
from remote.ssh.keys import keygen

SSHD = "/usr/sbin/sshd"
LISTEN_LOCAL = ("-o", "ListenAddress=127.0.0.1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def host_key(directory: Path, name: str) -> Path:
    path = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True
    )
    return path


def public_key_of(private: Path) -> tuple[str, str]:
    key_type, blob = Path(f"{private}.pub").read_text().split()[:2]
    return key_type, blob


def fingerprint_line(private: Path) -> str:
    """`ssh-keygen -l -f key.pub`: the very command cloud-init prints the console lines with."""
    return subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{private}.pub"], capture_output=True, text=True, check=True
    ).stdout.strip()


class Sshd:
    """A throwaway sshd on 127.0.0.1 trusting one client key; restartable with another host key."""

    def __init__(self, workdir: Path, authorized_key: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.authorized_keys = workdir / "authorized_keys"
        shutil.copy(authorized_key, self.authorized_keys)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, key: Path) -> None:
        config = self.workdir / "sshd_config"
        config.write_text(
            f"HostKey {key}\n"
            f"PidFile {self.workdir / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.authorized_keys}\n"
            # The tmp directories are not root-owned 0755 all the way up.
            "StrictModes no\n"
            "UsePAM no\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
        )
        log = (self.workdir / "sshd.log").open("ab")
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config), "-p", str(self.port), *LISTEN_LOCAL],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.workdir / 'sshd.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(8).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("sshd did not start listening within 10s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def restart(self, key: Path) -> None:
        self.stop()
        self.start(key)


def require_sshd() -> None:
    if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
        pytest.skip("needs openssh-server (apt-get install -y openssh-server)")
    if os.geteuid() != 0:
        pytest.skip("sshd must run as root to log a user in")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir


@contextmanager
def running_sshd(settings: BoxSettings, workdir: Path) -> Iterator[tuple[Sshd, Path, Path]]:
    """An sshd with host key A that lets settings' key in as settings.user; yields the
    server, key A and a host key B to swap in. settings.user must be this machine's user."""
    require_sshd()
    settings.ssh_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
    keygen(settings)
    workdir.mkdir()
    key_a, key_b = host_key(workdir, "host_a"), host_key(workdir, "host_b")
    server = Sshd(workdir, settings.public_key)
    server.start(key_a)
    try:
        yield server, key_a, key_b
    finally:
        server.stop()
