"""The pinned host key: the project's known_hosts, and connect() against a real sshd."""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from paramiko.hostkeys import HostKeys

from remote.errors import HostKeyMismatch, WaitTimeout
from remote.providers.base import HostKeyEvidence
from remote.settings import BoxSettings
from remote.ssh import config_entry as ssh
from remote.ssh import known_hosts as host_keys
from remote.ssh.connection import connect, wait_for_ssh
from remote.ssh.first_contact import FirstContact, pin_known_keys
from remote.ssh.keys import keygen
from tests.remote.factories import NAME
from tests.remote.factories import settings_in as make_settings
from tests.remote.sshd import Sshd, fingerprint_line, free_port, public_key_of, running_sshd

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


def test_pin_known_keys_pins_exact_keys_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.ssh_dir.mkdir(parents=True)
    made = frozenset({("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIMade"), ("ssh-rsa", "AAAAB3Made")})
    tree = HostKeyEvidence("the box's tree", keys=made)

    # Fingerprints name keys but are not keys: nothing to pin without a connection.
    fingerprints = HostKeyEvidence("a console", fingerprints=frozenset({"SHA256:" + "A" * 43}))
    assert pin_known_keys(settings, fingerprints) is False
    assert host_keys.pinned_keys(settings) == []

    assert pin_known_keys(settings, tree) is True
    assert sorted(host_keys.pinned_keys(settings)) == sorted(made)

    # A key already pinned (from this box or an earlier one) is left for start to judge.
    other = HostKeyEvidence("another tree", keys=frozenset({("ssh-ed25519", "AAAAother")}))
    assert pin_known_keys(settings, other) is False
    assert sorted(host_keys.pinned_keys(settings)) == sorted(made)


# --- a real sshd -------------------------------------------------------------------


@pytest.fixture
def box(tmp_path: Path) -> Iterator[tuple[BoxSettings, Sshd, Path]]:
    """Settings, a running sshd with host key A, and host key B to swap in."""
    settings = make_settings(tmp_path, user=pwd.getpwuid(os.getuid()).pw_name)
    with running_sshd(settings, tmp_path / "sshd") as (server, _, key_b):
        yield settings, server, key_b


def vouching_for(*private_keys: Path) -> FirstContact:
    """What a provider that made these host keys itself would say (the local box does)."""
    keys = frozenset(map(public_key_of, private_keys))
    return FirstContact(HostKeyEvidence("the test's own key files", keys=keys))


def key_a(server: Sshd) -> Path:
    return server.workdir / "host_a"


def test_first_connection_pins_a_vouched_key_and_runs_commands(
    box: tuple[BoxSettings, Sshd, Path],
) -> None:
    settings, server, _ = box
    first = vouching_for(key_a(server))

    with connect(settings, "127.0.0.1", port=server.port, first_contact=first) as conn:
        assert conn.run("echo hi", hide=True, in_stream=False).stdout == "hi\n"

    pinned = host_keys.pinned_keys(settings)
    assert pinned == [public_key_of(key_a(server))]
    assert ssh.known_hosts_path(settings).stat().st_mode & 0o777 == 0o600
    # Once pinned, a connection that may not pin anything is accepted too.
    with connect(settings, "127.0.0.1", port=server.port) as conn:
        assert conn.run("echo again", hide=True, in_stream=False).stdout == "again\n"
    assert host_keys.pinned_keys(settings) == pinned


def test_a_first_key_the_evidence_does_not_list_is_refused_and_not_pinned(
    box: tuple[BoxSettings, Sshd, Path],
) -> None:
    settings, server, key_b = box  # the sshd offers key A; only B is vouched for

    conn = connect(settings, "127.0.0.1", port=server.port, first_contact=vouching_for(key_b))
    with pytest.raises(HostKeyMismatch, match="that the test's own key files does not list"):
        conn.open()
    assert not ssh.known_hosts_path(settings).exists()


def test_a_first_key_listed_by_its_ssh_keygen_fingerprint_is_pinned(
    box: tuple[BoxSettings, Sshd, Path],
) -> None:
    settings, server, _ = box
    # The fingerprint as OpenSSH's own ssh-keygen prints it (what cloud-init shows).
    fingerprint = fingerprint_line(key_a(server)).split()[1]
    first = FirstContact(HostKeyEvidence("a console", fingerprints=frozenset({fingerprint})))

    wait_for_ssh(settings, "127.0.0.1", 20, port=server.port, first_contact=first)

    assert host_keys.pinned_keys(settings) == [public_key_of(key_a(server))]


def test_swapped_host_key_is_refused(box: tuple[BoxSettings, Sshd, Path]) -> None:
    settings, server, key_b = box
    wait_for_ssh(
        settings, "127.0.0.1", 20, port=server.port, first_contact=vouching_for(key_a(server))
    )
    pinned_file = ssh.known_hosts_path(settings).read_bytes()

    server.restart(key_b)

    # Even evidence for B does not replace a pinned key: only forgetting it does.
    first = vouching_for(key_b)
    conn = connect(settings, "127.0.0.1", port=server.port, first_contact=first)
    with pytest.raises(HostKeyMismatch, match=r"`fab box\.forget-host-key`") as info:
        conn.run("echo hi", hide=True, in_stream=False)
    assert "\n" not in str(info.value)
    assert ssh.known_hosts_path(settings).read_bytes() == pinned_file

    # Re-created on purpose: forgetting the key lets the next start pin the new one.
    assert host_keys.forget_host_key(settings) is True
    with connect(settings, "127.0.0.1", port=server.port, first_contact=first) as conn:
        assert conn.run("echo hi", hide=True, in_stream=False).stdout == "hi\n"
    assert host_keys.pinned_keys(settings) == [public_key_of(key_b)]


def test_the_policy_decides_again_on_reconnect(box: tuple[BoxSettings, Sshd, Path]) -> None:
    settings, server, key_b = box
    first = vouching_for(key_a(server))
    conn = connect(settings, "127.0.0.1", port=server.port, first_contact=first)
    assert conn.run("echo hi", hide=True, in_stream=False).ok
    conn.close()

    server.restart(key_b)

    with pytest.raises(HostKeyMismatch):
        conn.run("echo hi", hide=True, in_stream=False)


def test_no_pinned_key_without_first_contact_is_refused(
    box: tuple[BoxSettings, Sshd, Path],
) -> None:
    settings, server, _ = box

    with pytest.raises(HostKeyMismatch, match="No host key is pinned"):
        connect(settings, "127.0.0.1", port=server.port).open()
    assert host_keys.pinned_keys(settings) == []


def test_wait_for_ssh_does_not_retry_a_mismatch(box: tuple[BoxSettings, Sshd, Path]) -> None:
    settings, server, key_b = box
    wait_for_ssh(
        settings, "127.0.0.1", 20, port=server.port, first_contact=vouching_for(key_a(server))
    )
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
    wait_for_ssh(
        settings, "127.0.0.1", 20, port=server.port, first_contact=vouching_for(key_a(server))
    )

    accepted = run_ssh(settings, server.port)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout == "hi\n"

    server.restart(key_b)

    refused = run_ssh(settings, server.port)
    assert refused.returncode == 255
    assert "Host key verification failed" in refused.stderr
