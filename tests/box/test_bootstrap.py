"""`bootstrap` on the real local box: base packages present, no swap in a container, idempotent."""

from __future__ import annotations

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
