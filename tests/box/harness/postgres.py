"""A real PostgreSQL server on this machine that the local box reaches as its "RDS".

Import the fixture into a box test module (it is not in conftest.py on purpose, so only
the tests that need PostgreSQL pay for it):

    host_postgres = postgres.host_postgres

host_postgres  (session) a private cluster (initdb as the `postgres` OS user in a fresh
               /tmp dir), database `mlflow` owned by role `mlflow` whose password is
               generated and full of characters that need quoting; stopped and deleted
               at the end of the session. `HostPostgres.uri(host)` is the store URI the
               box uses (tests/box/test_mlflow_rds.py has the box build it from a
               secret, as on AWS).

Where it listens, and why: the box reaches this machine at the host side of its veth,
whose /30 is fresh at every box start, and a running server cannot bind an address that
does not exist yet. So the server listens on all addresses (listen_addresses='*') on a
random high port, and pg_hba.conf lets in only password (scram-sha-256) logins from the
box test subnet and from 127.0.0.1; everything else is rejected. `host_address(settings)`
gives the address the box must use now. `open_to_boxes(port)` (an iptables INPUT rule,
tagged, removed at the end) lets the box subnet through to that port on hosts whose
INPUT chain drops by default.

Debian packages needed: postgresql (postgresql-15 on bookworm) on the host.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from remote.agent.mlflow.store import postgres_uri
from remote.providers.local import netns
from remote.settings import BoxSettings
from tests.box.harness.local_box import TEST_SUBNET

PG_OS_USER = "postgres"
DB_NAME = "mlflow"
DB_USER = "mlflow"
START_TIMEOUT_S = 60
IPTABLES = ("iptables", "-w", "10")


@dataclass(frozen=True)
class HostPostgres:
    """The running server: connect as `user`/`password` to `dbname` on `port`."""

    port: int
    dbname: str
    user: str
    password: str = field(repr=False)
    socket_dir: Path
    bindir: Path

    def uri(
        self, host: str, *, password: str | None = None, port: int | None = None, dbname: str = ""
    ) -> str:
        """The store URI as the box sees the server at `host` (see host_address); a test
        may change its password, port or database name."""
        return postgres_uri(
            self.user, password or self.password, host, port or self.port, dbname or self.dbname
        )

    def set_password(self, password: str) -> None:
        """What a rotation does on the database's side (the SQL goes in on stdin)."""
        self.psql(f"ALTER ROLE {self.user} PASSWORD {_sql_literal(password)};")

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run `sql` as the superuser over the private unix socket; SQL goes in on stdin."""
        return _as_postgres(
            [str(self.bindir / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
             "-h", str(self.socket_dir), "-p", str(self.port), "-d", dbname],
            stdin=sql,
        )  # fmt: skip


def host_address(settings: BoxSettings) -> str:
    """This machine's address as the running box sees it: the host side of its veth."""
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "dev", netns.host_veth(settings.name)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    networks = [line.split()[3] for line in out.splitlines() if " inet " in f" {line} "]
    assert networks, f"box {settings.name} is not running: its veth has no address"
    return networks[0].split("/")[0]


def nasty_password() -> str:
    """Random, and with every character that URIs, env files, shells and SQL quote."""
    return f"p'{secrets.token_urlsafe(12)}\" $x%41#;\\ @:/?&{secrets.token_hex(4)}`"


def _bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the host PostgreSQL fixture needs root"
    if _bindir() is None:
        return "the host PostgreSQL fixture needs Debian's postgresql package"
    try:
        pwd.getpwnam(PG_OS_USER)
    except KeyError:
        return f"the host PostgreSQL fixture needs the {PG_OS_USER} OS user"
    return None


def _as_postgres(cmd: list[str], stdin: str | None = None) -> str:
    result = subprocess.run(
        ["runuser", "-u", PG_OS_USER, "--", *cmd],
        input=stdin,
        capture_output=True,
        text=True,
        cwd="/",
        timeout=120,
    )
    assert result.returncode == 0, f"{cmd[0]} failed: {result.stderr[-2000:]}"
    return result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _input_rule(port: int) -> list[str]:
    comment = ["-m", "comment", "--comment", f"mlops-box-test:host-port:{port}"]
    return ["INPUT", "-s", TEST_SUBNET, "-p", "tcp", "--dport", str(port), *comment, "-j", "ACCEPT"]


@contextlib.contextmanager
def open_to_boxes(port: int) -> Iterator[None]:
    """Let the test boxes reach this machine's TCP `port` (hosts whose INPUT drops)."""
    subprocess.run([*IPTABLES, "-I", *_input_rule(port)], check=True)
    try:
        yield
    finally:
        subprocess.run([*IPTABLES, "-D", *_input_rule(port)], check=False)


@pytest.fixture(scope="session")
def host_postgres() -> Iterator[HostPostgres]:
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    bindir = _bindir()
    assert bindir is not None
    owner = pwd.getpwnam(PG_OS_USER)
    # Not under pytest's tmp dir: that is root's 0700 tree, which postgres cannot enter.
    base = Path(tempfile.mkdtemp(prefix="mlops-box-pg-"))
    os.chown(base, owner.pw_uid, owner.pw_gid)
    data, port = base / "data", _free_port()
    server = HostPostgres(port, DB_NAME, DB_USER, nasty_password(), base, bindir)
    started = False
    try:
        _as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8",
                      "--no-locale", "--auth-local=peer", "--auth-host=scram-sha-256"])  # fmt: skip
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                "listen_addresses = '*'\n"
                f"port = {port}\n"
                f"unix_socket_directories = '{base}'\n"
                "password_encryption = 'scram-sha-256'\n"
                "fsync = off\n"
            )
        (data / "pg_hba.conf").write_text(
            "local all postgres peer\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
            f"host all all {TEST_SUBNET} scram-sha-256\n"
        )
        _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"),
                      "-w", "-t", str(START_TIMEOUT_S), "start"])  # fmt: skip
        started = True
        server.psql(
            f"CREATE ROLE {DB_USER} LOGIN PASSWORD {_sql_literal(server.password)};\n"
            f"CREATE DATABASE {DB_NAME} OWNER {DB_USER};\n"
        )
        with open_to_boxes(port):
            yield server
    finally:
        if started:
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(base)
