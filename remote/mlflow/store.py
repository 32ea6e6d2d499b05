"""Where MLflow keeps its runs: the backend store (SQLite on the box, or PostgreSQL).

The provider finds the database (on AWS, by the box's tags): where it is and its
secret's ARN, never the password. Everything that needs the password runs on the box,
because only the box may read the secret (its instance role) and reach a private RDS
instance: the agent's `rds-env` reads the secret and writes the store URI into a
root-only env file, which systemd reads for the server and for the agent's `db-check`
and `db-upgrade`. The URI is never in argv, a log or a message.
"""

from __future__ import annotations

from remote.agent.mlflow import commands as mlflow_cmds
from remote.agent.mlflow import rds_secret as on_box_secret
from remote.agent.mlflow import store as on_box_db
from remote.errors import (
    DatabaseAuthError,
    DatabaseError,
    DatabaseNotFound,
    DatabaseSecretError,
    DatabaseUnreachable,
    SchemaUpgradeError,
)
from remote.mlflow.spec import RDS_CONFIG, RDS_ENV_FILE, RUN_DIR, render_rds_config
from remote.providers.base import Database
from remote.system import files
from remote.system.agent import run_agent
from remote.system.files import RemoteFile
from remote.system.run import Connection, check, run, sudo

# A database to check before the server switches to it: its coordinates and the env file
# the start step writes from them, beside the live ones, removed after the check.
CANDIDATE_CONFIG = f"{RUN_DIR}/candidate-rds.json"
CANDIDATE_ENV_FILE = f"{RUN_DIR}/candidate.env"
# The agent's failure kinds that have an error class of their own.
_FAILURES: dict[str, type[DatabaseError]] = {
    on_box_db.KIND_UNREACHABLE: DatabaseUnreachable,
    on_box_db.KIND_AUTH: DatabaseAuthError,
    on_box_db.KIND_NO_DATABASE: DatabaseNotFound,
    on_box_db.KIND_UPGRADE: SchemaUpgradeError,
    **dict.fromkeys(on_box_secret.SECRET_KINDS, DatabaseSecretError),
}


def check_store_in(conn: Connection, env_file: str, python: str) -> str:
    """Connect, from the box, to the store named in `env_file`; DatabaseError if it cannot.

    `python` is the MLflow environment's interpreter on the box (it has sqlalchemy and
    psycopg2). Unreachable, refused password and missing database each get their class.
    """
    return _ask(conn, mlflow_cmds.DB_CHECK, python=python, env_file=env_file)


def write_rds_env(
    conn: Connection, python: str, config: str = RDS_CONFIG, env_file: str = RDS_ENV_FILE
) -> str:
    """Run the server's start step now: on the box, read the database's secret (as named
    in `config`, by default the installed coordinates) and write the store URI into
    `env_file`. DatabaseSecretError, in one sentence, when the box cannot read it."""
    return _ask(conn, mlflow_cmds.RDS_ENV, config, env_file, python=python)


def check_database(conn: Connection, database: Database, python: str) -> None:
    """Before a server switches to `database`: read its secret on the box and connect.

    Both happen exactly as the server's start will do them, into candidate files in
    /run (RAM, root-only) beside the live ones, which are removed afterwards.
    """
    run(conn, sudo(f"install -d -m 700 {RUN_DIR}"), what=f"create {RUN_DIR}")
    files.write(conn, RemoteFile(CANDIDATE_CONFIG, render_rds_config(database).encode(), 0o600))
    try:
        write_rds_env(conn, python, CANDIDATE_CONFIG, CANDIDATE_ENV_FILE)
        check_store_in(conn, CANDIDATE_ENV_FILE, python)
    finally:
        check(conn, sudo(f"rm -f {CANDIDATE_CONFIG} {CANDIDATE_ENV_FILE}"))


def upgrade_schema(conn: Connection, python: str, env_file: str) -> str:
    """Create or upgrade MLflow's schema in the store named in `env_file`, from the box.

    The same calls as `mlflow db upgrade`, without the URI in argv; it checks the
    connection first, so failures are the same classified DatabaseErrors.
    """
    return _ask(conn, mlflow_cmds.DB_UPGRADE, python=python, env_file=env_file)


def _ask(conn: Connection, command: str, *args: str, python: str, env_file: str = "") -> str:
    """One of the agent's store commands, in the MLflow environment; its sentence."""
    answer = run_agent(
        conn,
        command,
        *args,
        python=python,
        env_file=env_file or None,
        errors=_FAILURES,
        error=DatabaseError,
    )
    return str(answer["message"])
