"""The pinned host key: the project's known_hosts, and connect() against a real sshd."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from paramiko.hostkeys import HostKeys

from remote.errors import HostKeyMismatch, WaitTimeout
from remote.settings import BoxSettings
from remote.ssh import config_entry as ssh
from remote.ssh import known_hosts as host_keys
from remote.ssh.connection import connect, wait_for_ssh
from remote.ssh.keys import keygen
from tests.remote.factories import NAME
from tests.remote.factories import settings_in as make_settings

SSHD = "/usr/sbin/sshd"
LISTEN_LOCAL = ("-o", "ListenAddress=127.0.0.1")


# --- the known_hosts file ----------------------------------------------------------


def test_pinned_key_is_written_in_openssh_format(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.ssh_dir.mkdir(parents=True)

    host_keys.pin_host_key(settings, "ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIExample")

    path = ssh.known_hosts_path(settings)
    assert path.read_text() == f"{NAME} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert host_keys.pinned_keys(settings) == [("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIExample")]


def test_forget_host_key_drops_only_the_alias(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    path = ssh.known_hosts_path(settings)
    path.parent.mkdir(parents=True)
    hashed = HostKeys.hash_host(NAME)
    others = b"other-box ssh-ed25519 AAAAother\n# a comment\n"
    path.write_bytes(
        f"{NAME} ssh-ed25519 AAAAone\n".encode()
        + others
        + f"{hashed} ssh-rsa AAAAtwo\n".encode()
        + b"other,mlops-test-2 ssh-ed25519 AAAAthree"
    )

    assert host_keys.forget_host_key(settings) is True

    assert path.read_bytes() == others + b"other,mlops-test-2 ssh-ed25519 AAAAthree"
    assert host_keys.forget_host_key(settings) is False


# --- a real sshd -------------------------------------------------------------------


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


@pytest.fixture
def box(tmp_path: Path) -> Iterator[tuple[BoxSettings, Sshd, Path]]:
    """Settings, a running sshd with host key A, and host key B to swap in."""
    if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
        pytest.skip("needs openssh-server (apt-get install -y openssh-server)")
    if os.geteuid() != 0:
        pytest.skip("sshd must run as root to log a user in")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    settings = make_settings(tmp_path, user=pwd.getpwuid(os.getuid()).pw_name)
    settings.ssh_dir.mkdir(parents=True, mode=0o700)
    keygen(settings)
    workdir = tmp_path / "sshd"
    workdir.mkdir()
    key_a, key_b = host_key(workdir, "host_a"), host_key(workdir, "host_b")
    server = Sshd(workdir, settings.public_key)
    server.start(key_a)
    try:
        yield settings, server, key_b
    finally:
        server.stop()


def public_key_of(private: Path) -> tuple[str, str]:
    key_type, blob = Path(f"{private}.pub").read_text().split()[:2]
    return key_type, blob


def test_first_connection_pins_the_key_and_runs_commands(
    box: tuple[BoxSettings, Sshd, Path],
) -> None:
    settings, server, _ = box

    with connect(settings, "127.0.0.1", trust_on_first_use=True, port=server.port) as conn:
        assert conn.run("echo hi", hide=True, in_stream=False).stdout == "hi\n"

    pinned = host_keys.pinned_keys(settings)
    assert pinned == [public_key_of(server.workdir / "host_a")]
    assert ssh.known_hosts_path(settings).stat().st_mode & 0o777 == 0o600
    # Once pinned, a connection without trust-on-first-use is accepted too.
    with connect(settings, "127.0.0.1", trust_on_first_use=False, port=server.port) as conn:
        assert conn.run("echo again", hide=True, in_stream=False).stdout == "again\n"
    assert host_keys.pinned_keys(settings) == pinned


def test_swapped_host_key_is_refused(box: tuple[BoxSettings, Sshd, Path]) -> None:
    settings, server, key_b = box
    wait_for_ssh(settings, "127.0.0.1", 20, port=server.port)
    pinned_file = ssh.known_hosts_path(settings).read_bytes()

    server.restart(key_b)

    conn = connect(settings, "127.0.0.1", trust_on_first_use=True, port=server.port)
    with pytest.raises(HostKeyMismatch, match=r"`fab box\.forget-host-key`") as info:
        conn.run("echo hi", hide=True, in_stream=False)
    assert "\n" not in str(info.value)
    assert ssh.known_hosts_path(settings).read_bytes() == pinned_file

    # Re-created on purpose: forgetting the key lets the next start pin the new one.
    assert host_keys.forget_host_key(settings) is True
    with connect(settings, "127.0.0.1", trust_on_first_use=True, port=server.port) as conn:
        assert conn.run("echo hi", hide=True, in_stream=False).stdout == "hi\n"
    assert host_keys.pinned_keys(settings) == [public_key_of(key_b)]


def test_the_policy_decides_again_on_reconnect(box: tuple[BoxSettings, Sshd, Path]) -> None:
    settings, server, key_b = box
    conn = connect(settings, "127.0.0.1", trust_on_first_use=True, port=server.port)
    assert conn.run("echo hi", hide=True, in_stream=False).ok
    conn.close()

    server.restart(key_b)

    with pytest.raises(HostKeyMismatch):
        conn.run("echo hi", hide=True, in_stream=False)


def test_no_pinned_key_without_trust_on_first_use_is_refused(
    box: tuple[BoxSettings, Sshd, Path],
) -> None:
    settings, server, _ = box

    with pytest.raises(HostKeyMismatch, match="No host key is pinned"):
        connect(settings, "127.0.0.1", trust_on_first_use=False, port=server.port).open()
    assert host_keys.pinned_keys(settings) == []


def test_wait_for_ssh_does_not_retry_a_mismatch(box: tuple[BoxSettings, Sshd, Path]) -> None:
    settings, server, key_b = box
    wait_for_ssh(settings, "127.0.0.1", 20, port=server.port)
    server.restart(key_b)

    started = time.monotonic()
    with pytest.raises(HostKeyMismatch):
        wait_for_ssh(settings, "127.0.0.1", 60, port=server.port)
    assert time.monotonic() - started < 10


def test_wait_for_ssh_times_out_with_a_clear_message(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.ssh_dir.mkdir(parents=True)
    keygen(settings)

    with pytest.raises(WaitTimeout, match="SSH on mlops-test"):
        wait_for_ssh(settings, "127.0.0.1", 1, port=free_port())


BATCH = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=10")


def run_ssh(settings: BoxSettings, port: int) -> subprocess.CompletedProcess[str]:
    # The template has no Port line (boxes listen on 22), so the test's port comes from -p.
    return subprocess.run(
        ["ssh", "-F", str(ssh.config_path(settings)), "-p", str(port), *BATCH, NAME, "echo", "hi"],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def test_openssh_uses_the_pinned_key_and_refuses_a_swapped_one(
    box: tuple[BoxSettings, Sshd, Path],
) -> None:
    settings, server, key_b = box
    ssh.update(settings, "127.0.0.1")
    wait_for_ssh(settings, "127.0.0.1", 20, port=server.port)

    accepted = run_ssh(settings, server.port)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout == "hi\n"

    server.restart(key_b)

    refused = run_ssh(settings, server.port)
    assert refused.returncode == 255
    assert "Host key verification failed" in refused.stderr
