"""`bootstrap` on the real local box: base packages present, no swap in a container, idempotent."""

from __future__ import annotations

import hashlib

import pytest
from fabric import Connection

from remote.system import files as remote_files
from remote.system.bootstrap import BASE_PACKAGES, bootstrap
from remote.system.files import RemoteFile

pytestmark = pytest.mark.box


@pytest.fixture
def conn(box_conn: Connection) -> Connection:
    return box_conn


def test_bootstrap_installs_the_base_packages_then_changes_nothing(conn: Connection) -> None:
    bootstrap(conn)
    installed = conn.run(
        f"dpkg-query -W -f='${{Status}}\\n' {' '.join(BASE_PACKAGES)}", hide=True
    ).stdout
    assert installed.count("install ok installed") == len(BASE_PACKAGES)
    assert conn.run("python3 -m venv --help", hide=True, warn=True).ok
    said: list[str] = []
    assert not bootstrap(conn, say=said.append)
    # A container cannot swapon: it is said, and no swap file is left behind.
    assert any("cannot swapon" in line for line in said)
    assert not conn.run("test -e /swapfile", hide=True, warn=True).ok
    assert conn.run("tail -n +2 /proc/swaps", hide=True).stdout.strip() == ""


def test_remote_files_write_only_what_differs_with_mode_and_owner(conn: Connection) -> None:
    path = "/etc/mlops-box-test/secret.env"
    conn.run("sudo -n install -d /etc/mlops-box-test", hide=True)
    secret = RemoteFile(path, b"TOKEN=s3cret\n", 0o600)
    assert remote_files.ensure(conn, secret).changes == [path]
    assert not remote_files.ensure(conn, secret)
    assert conn.run(f"sudo -n stat -c '%a %U %G' {path}", hide=True).stdout.split() == [
        "600",
        "root",
        "root",
    ]
    assert not conn.run(f"cat {path}", hide=True, warn=True).ok  # not for the login user
    # A changed mode alone is a change too; the temp file is gone afterwards.
    assert remote_files.ensure(conn, RemoteFile(path, b"TOKEN=s3cret\n", 0o640)).changes == [path]
    assert conn.run(f"sudo -n cat {path}", hide=True).stdout == "TOKEN=s3cret\n"
    assert conn.run(f"sudo -n ls {path}.mlops-box-new", hide=True, warn=True).failed
    conn.run("sudo -n rm -rf /etc/mlops-box-test", hide=True)


class _NoUploads:
    """The connection, with SFTP uploads refused: what is written must not need them."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def put(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a private file went through an upload to the login user")

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


def test_a_private_file_never_passes_through_the_login_users_files(conn: Connection) -> None:
    # Every byte value, 100 KiB of them: more than one SSH window's worth of stdin.
    content = bytes(range(256)) * 400
    path = "/etc/mlops-box-test/token.bin"
    conn.run("sudo -n install -d /etc/mlops-box-test", hide=True)
    try:
        remote_files.write(_NoUploads(conn), RemoteFile(path, content, 0o600))
        found = remote_files.probe(conn, [path])[path]
        assert found is not None
        assert found.sha256 == hashlib.sha256(content).hexdigest()
        assert (found.mode, found.owner, found.group) == (0o600, "root", "root")
        assert conn.run(f"sudo -n ls {path}.mlops-box-new", hide=True, warn=True).failed
        # a readable file still goes by SFTP (large files: labels, wheels' locks)
        with pytest.raises(AssertionError, match="went through an upload"):
            remote_files.write(_NoUploads(conn), RemoteFile(path, b"public\n", 0o644))
    finally:
        conn.run("sudo -n rm -rf /etc/mlops-box-test", hide=True)
