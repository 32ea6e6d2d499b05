"""The local box reaches a real PostgreSQL on this machine, as an EC2 box reaches RDS.

The store URI is in a root-only systemd EnvironmentFile line on the box, which systemd
reads for the agent there: the agent's db-check, its classified failures and systemd's
reading of the quoting. (How the URI gets there from the database's secret, on the box,
is tests/box/test_mlflow_rds.py.)
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Iterator

import pytest
from fabric import Connection

from remote.agent.system.envfile import env_file_line
from remote.errors import DatabaseAuthError, DatabaseNotFound, DatabaseUnreachable
from remote.mlflow.store import check_store_in as check_postgres
from remote.settings import BoxSettings
from remote.ssh.connection import connect
from remote.ssh.first_contact import wait_and_pin
from remote.system import files
from remote.system.files import RemoteFile
from tests.box.harness import postgres
from tests.box.harness.local_box import RunningBox
from tests.box.harness.postgres import HostPostgres, host_address
from tests.nasty_values import NASTY_PASSWORDS

pytestmark = pytest.mark.box
# The fixture this module uses, made visible to pytest (an import alone would be an
# unused name to linters, and the parameters below would shadow it).
host_postgres = postgres.host_postgres

ENV_FILE = "/etc/mlops-box-test/db.env"
# Debian's own drivers: what the agent needs, without a venv or PyPI inside the box.
BOX_PYTHON = "/usr/bin/python3"
BOX_PACKAGES = "python3-sqlalchemy python3-psycopg2"


@pytest.fixture
def box(running_box: RunningBox, local_settings: BoxSettings) -> Iterator[Connection]:
    address = running_box.state.address or ""
    wait_and_pin(local_settings, running_box.provider, address, 60)
    conn = connect(local_settings, address)
    probe = conn.run(f"{BOX_PYTHON} -c 'import sqlalchemy, psycopg2'", hide=True, warn=True)
    if not probe.ok:
        conn.run(
            "sudo -n env DEBIAN_FRONTEND=noninteractive sh -c "
            f"'apt-get update -q && apt-get install -y -q --no-install-recommends {BOX_PACKAGES}'",
            hide=True,
            timeout=600,
        )
    yield conn
    conn.close()


@pytest.fixture
def box_host(running_box: RunningBox, local_settings: BoxSettings) -> str:
    """This machine's address, where the box reaches its PostgreSQL."""
    return host_address(local_settings)


def write_env_file(conn: Connection, uri: str, key: str = "MLFLOW_BACKEND_STORE_URI") -> None:
    """As the MLflow install does: root:root 0600, the value in EnvironmentFile syntax."""
    conn.run(f"sudo -n install -d {ENV_FILE.rsplit('/', 1)[0]}", hide=True)
    line = env_file_line(key, uri) + "\n"
    files.write(conn, RemoteFile(ENV_FILE, line.encode(), 0o600))


def test_the_box_connects_to_the_host_postgres(
    box: Connection, box_host: str, host_postgres: HostPostgres
) -> None:
    write_env_file(box, host_postgres.uri(box_host))

    check_postgres(box, ENV_FILE, BOX_PYTHON)

    mode = box.run(f"sudo -n stat -c '%U:%G %a' {ENV_FILE}", hide=True).stdout.split()
    assert mode == ["root:root", "600"]


def test_systemd_reads_the_env_file_line_back_exactly(
    box: Connection, box_host: str, host_postgres: HostPostgres
) -> None:
    uri = host_postgres.uri(box_host)
    write_env_file(box, uri)
    show_digest = (
        "import hashlib, os; "
        "print(hashlib.sha256(os.environ['MLFLOW_BACKEND_STORE_URI'].encode()).hexdigest())"
    )
    argv = ["sudo", "-n", "systemd-run", "--quiet", "--wait", "--pipe",
            "-p", f"EnvironmentFile={ENV_FILE}", BOX_PYTHON, "-c", show_digest]  # fmt: skip

    out = box.run(shlex.join(argv), hide=True).stdout.strip()

    assert out == hashlib.sha256(uri.encode()).hexdigest()


def test_a_wrong_password_is_refused_without_showing_either_password(
    box: Connection, box_host: str, host_postgres: HostPostgres
) -> None:
    wrong = "Wr0ng'pass$word%"
    write_env_file(box, host_postgres.uri(box_host, password=wrong))

    with pytest.raises(DatabaseAuthError) as caught:
        check_postgres(box, ENV_FILE, BOX_PYTHON)

    message = str(caught.value)
    assert f"refused the password for user {host_postgres.user}" in message
    for secret in (wrong, host_postgres.password, "Wr0ng"):
        assert secret not in message


def test_a_missing_database_is_named(
    box: Connection, box_host: str, host_postgres: HostPostgres
) -> None:
    write_env_file(box, host_postgres.uri(box_host, dbname="nosuchdb"))

    with pytest.raises(DatabaseNotFound, match="Database nosuchdb does not exist"):
        check_postgres(box, ENV_FILE, BOX_PYTHON)


def test_a_port_nobody_listens_on_is_unreachable(
    box: Connection, box_host: str, host_postgres: HostPostgres
) -> None:
    write_env_file(box, host_postgres.uri(box_host, port=1))

    with pytest.raises(DatabaseUnreachable) as caught:
        check_postgres(box, ENV_FILE, BOX_PYTHON)

    assert f"Cannot reach PostgreSQL at {box_host}:1 from the box" in str(caught.value)
    assert host_postgres.password not in str(caught.value)


def test_systemd_reads_every_env_file_line_back_exactly(box: Connection) -> None:
    """env_file_line's quoting, checked against systemd's own EnvironmentFile= parser."""
    show = "import os, sys; sys.stdout.buffer.write(os.environ['VALUE'].encode() + b'\\0')"
    for value in [*NASTY_PASSWORDS, ""]:
        write_env_file(box, value, key="VALUE")
        argv = ["sudo", "-n", "systemd-run", "--quiet", "--wait", "--pipe",
                "-p", f"EnvironmentFile={ENV_FILE}", BOX_PYTHON, "-c", show]  # fmt: skip
        out = box.run(shlex.join(argv), hide=True).stdout
        assert out == value + "\0", f"{value!r} came back as {out!r}"
