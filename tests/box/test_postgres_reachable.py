"""The local box reaches a real PostgreSQL on this machine, as an EC2 box reaches RDS.

The password travels as in production: the AWS provider's database() (moto holding the
real one), then a root-only systemd EnvironmentFile line on the box, which systemd reads
for the agent there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shlex
from collections.abc import Iterator

import pytest
from fabric import Connection

from remote.errors import DatabaseAuthError, DatabaseNotFound, DatabaseUnreachable
from remote.mlflow.spec import env_file_line
from remote.mlflow.store import CANDIDATE_ENV_FILE, PostgresStore, check_store
from remote.mlflow.store import check_store_in as check_postgres
from remote.settings import BoxSettings
from remote.ssh.connection import connect
from remote.ssh.first_contact import wait_and_pin
from remote.system import files
from remote.system.files import RemoteFile
from tests.box import postgres
from tests.box.conftest import RunningBox
from tests.box.postgres import HostPostgres
from tests.nasty_values import NASTY_PASSWORDS

pytestmark = pytest.mark.box
# The fixtures this module uses, made visible to pytest (an import alone would be an
# unused name to linters, and the parameters below would shadow it).
host_postgres = postgres.host_postgres
rds_store = postgres.rds_store

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


def write_env_file(conn: Connection, uri: str, key: str = "MLFLOW_BACKEND_STORE_URI") -> None:
    """As the MLflow install does: root:root 0600, the value in EnvironmentFile syntax."""
    conn.run(f"sudo -n install -d {ENV_FILE.rsplit('/', 1)[0]}", hide=True)
    line = env_file_line(key, uri) + "\n"
    files.write(conn, RemoteFile(ENV_FILE, line.encode(), 0o600))


def test_the_box_connects_to_the_host_postgres_with_the_rds_password(
    box: Connection, rds_store: PostgresStore, host_postgres: HostPostgres
) -> None:
    assert rds_store.password == host_postgres.password  # it came through (moto's) AWS
    write_env_file(box, rds_store.uri())

    check_postgres(box, ENV_FILE, BOX_PYTHON)

    mode = box.run(f"sudo -n stat -c '%U:%G %a' {ENV_FILE}", hide=True).stdout.split()
    assert mode == ["root:root", "600"]


def test_systemd_reads_the_env_file_line_back_exactly(
    box: Connection, rds_store: PostgresStore
) -> None:
    uri = rds_store.uri()
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
    box: Connection, rds_store: PostgresStore
) -> None:
    wrong = "Wr0ng'pass$word%"
    write_env_file(box, dataclasses.replace(rds_store, password=wrong).uri())

    with pytest.raises(DatabaseAuthError) as caught:
        check_postgres(box, ENV_FILE, BOX_PYTHON)

    message = str(caught.value)
    assert f"refused the password for user {rds_store.user}" in message
    for secret in (wrong, rds_store.password, "Wr0ng"):
        assert secret not in message


def test_a_missing_database_is_named(box: Connection, rds_store: PostgresStore) -> None:
    write_env_file(box, dataclasses.replace(rds_store, dbname="nosuchdb").uri())

    with pytest.raises(DatabaseNotFound, match="Database nosuchdb does not exist"):
        check_postgres(box, ENV_FILE, BOX_PYTHON)


def test_a_port_nobody_listens_on_is_unreachable(box: Connection, rds_store: PostgresStore) -> None:
    closed = dataclasses.replace(rds_store, port=1)
    write_env_file(box, closed.uri())

    with pytest.raises(DatabaseUnreachable) as caught:
        check_postgres(box, ENV_FILE, BOX_PYTHON)

    assert f"Cannot reach PostgreSQL at {rds_store.host}:1 from the box" in str(caught.value)
    assert rds_store.password not in str(caught.value)


def test_a_store_not_yet_in_the_env_file_is_checked_from_a_private_file(
    box: Connection, rds_store: PostgresStore
) -> None:
    check_store(box, rds_store, BOX_PYTHON)
    with pytest.raises(DatabaseAuthError):
        check_store(box, dataclasses.replace(rds_store, password="wrong"), BOX_PYTHON)

    assert not box.run(f"sudo -n test -e {CANDIDATE_ENV_FILE}", hide=True, warn=True).ok


def test_systemd_reads_every_env_file_line_back_exactly(box: Connection) -> None:
    """env_file_line's quoting, checked against systemd's own EnvironmentFile= parser."""
    show = "import os, sys; sys.stdout.buffer.write(os.environ['VALUE'].encode() + b'\\0')"
    for value in [*NASTY_PASSWORDS, ""]:
        write_env_file(box, value, key="VALUE")
        argv = ["sudo", "-n", "systemd-run", "--quiet", "--wait", "--pipe",
                "-p", f"EnvironmentFile={ENV_FILE}", BOX_PYTHON, "-c", show]  # fmt: skip
        out = box.run(shlex.join(argv), hide=True).stdout
        assert out == value + "\0", f"{value!r} came back as {out!r}"
