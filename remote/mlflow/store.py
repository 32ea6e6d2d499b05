"""Where MLflow keeps its runs: the backend store (SQLite on the box, or PostgreSQL).

The provider finds the database (on AWS, by the box's tags); the checks and the schema
upgrade run on the box, through the agent's `db-check` and `db-upgrade`, because only
the box can reach a private RDS instance. The URI, password included, travels only inside
a root-only env file that systemd reads for the server and for the agent: never in argv,
a log or a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

from remote.contract import MLFLOW_CONFIG_DIR, MLFLOW_ENV_FILE, MLFLOW_SQLITE_DB
from remote.errors import (
    DatabaseAuthError,
    DatabaseError,
    DatabaseNotFound,
    DatabaseUnreachable,
    SchemaUpgradeError,
)
from remote.mlflow.spec import env_file_line, sqlite_uri
from remote.providers.base import Database
from remote.system import files
from remote.system.agent import run_agent
from remote.system.files import RemoteFile
from remote.system.run import Connection, check, run, sudo

URI_KEY = "MLFLOW_BACKEND_STORE_URI"
# A store to check before the server switches to it: root-only, next to the live one.
CANDIDATE_ENV_FILE = f"{MLFLOW_CONFIG_DIR}/candidate.env"
# The agent's failure kinds that have an error class of their own.
_FAILURES: dict[str, type[DatabaseError]] = {
    "unreachable": DatabaseUnreachable,
    "auth": DatabaseAuthError,
    "no-database": DatabaseNotFound,
    "upgrade": SchemaUpgradeError,
}


@dataclass(frozen=True)
class SqliteStore:
    """A SQLite file on the box."""

    path: str = MLFLOW_SQLITE_DB

    def uri(self) -> str:
        return sqlite_uri(self.path)


@dataclass(frozen=True)
class PostgresStore:
    """A PostgreSQL database; the password stays out of repr() and every message."""

    host: str
    port: int
    dbname: str
    user: str
    password: str = field(repr=False)

    @classmethod
    def of(cls, db: Database) -> PostgresStore:
        return cls(db.host, db.port, db.dbname, db.user, db.password)

    def uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user, password = quote(self.user, safe=""), quote(self.password, safe="")
        return f"postgresql+psycopg2://{user}:{password}@{host}:{self.port}/{self.dbname}"


def check_store_in(conn: Connection, env_file: str, python: str) -> str:
    """Connect, from the box, to the store named in `env_file`; DatabaseError if it cannot.

    `python` is the MLflow environment's interpreter on the box (it has sqlalchemy and
    psycopg2). Unreachable, refused password and missing database each get their class.
    """
    answer = run_agent(
        conn, "db-check", python=python, env_file=env_file, errors=_FAILURES, error=DatabaseError
    )
    return str(answer["message"])


def check_store(conn: Connection, store: PostgresStore | SqliteStore, python: str) -> None:
    """`check_store_in` for a store that is not in the server's env file yet.

    The URI goes into a root-only candidate env file beside the live one, removed after.
    """
    line = env_file_line(URI_KEY, store.uri()) + "\n"
    run(conn, sudo(f"install -d -m 755 {MLFLOW_CONFIG_DIR}"), what=f"create {MLFLOW_CONFIG_DIR}")
    files.write(conn, RemoteFile(CANDIDATE_ENV_FILE, line.encode(), 0o600))
    try:
        check_store_in(conn, CANDIDATE_ENV_FILE, python)
    finally:
        check(conn, sudo(f"rm -f {CANDIDATE_ENV_FILE}"))


def upgrade_schema(conn: Connection, python: str, env_file: str = MLFLOW_ENV_FILE) -> str:
    """Create or upgrade MLflow's schema in the store named in `env_file`, from the box.

    The same calls as `mlflow db upgrade`, without the URI in argv; it checks the
    connection first, so failures are the same classified DatabaseErrors.
    """
    answer = run_agent(
        conn, "db-upgrade", python=python, env_file=env_file, errors=_FAILURES, error=DatabaseError
    )
    return str(answer["message"])
