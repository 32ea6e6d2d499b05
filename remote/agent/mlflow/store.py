"""Check MLflow's backend database, and create or upgrade its schema.

Run on the box by the Python of the MLflow server's environment (which has sqlalchemy,
psycopg2 and mlflow), under `systemd-run -p EnvironmentFile=<the file with the store URI>`
(with RDS, the one the `rds-env` start step wrote): the store URI, password included,
reaches this code only through its environment, read by systemd exactly as the server
reads it, never through argv. Failures carry a kind (the
KIND_* names) and one sentence, in which the password never appears.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ..system.failure import AgentFailure

URI_KEY = "MLFLOW_BACKEND_STORE_URI"
CONNECT_TIMEOUT_S = 10

KIND_ENV_FILE = "env-file"
KIND_UNREACHABLE = "unreachable"
KIND_AUTH = "auth"
KIND_NO_DATABASE = "no-database"
KIND_DB_ERROR = "db-error"
KIND_UPGRADE = "upgrade"
KIND_NO_DRIVER = "no-driver"


def store_uri() -> str:
    """MLFLOW_BACKEND_STORE_URI, which systemd set from the env file it read for us."""
    uri = os.environ.get(URI_KEY, "")
    if not uri:
        raise AgentFailure(
            KIND_ENV_FILE, f"The environment file sets no {URI_KEY}: re-run the MLflow install."
        )
    return uri


def postgres_uri(user: str, password: str, host: str, port: int, dbname: str) -> str:
    """The SQLAlchemy URI of a PostgreSQL database, user and password URL-quoted."""
    where = f"[{host}]" if ":" in host else host
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return f"postgresql+psycopg2://{credentials}@{where}:{port}/{dbname}"


# -- what the URI names, and keeping its password out of every message --------------------


@dataclass(frozen=True)
class Target:
    """What a store URI points at, without its password."""

    scheme: str
    host: str
    port: int
    user: str
    dbname: str
    secrets: tuple[str, ...]

    @property
    def is_postgres(self) -> bool:
        return self.scheme.split("+")[0] in ("postgresql", "postgres")

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def target_of(uri: str) -> Target:
    parts = urlsplit(uri)
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432
    raw_password = parts.password or ""
    secrets = tuple(s for s in {uri, raw_password, unquote(raw_password)} if s)
    return Target(
        scheme=parts.scheme,
        host=parts.hostname or "localhost",
        port=port,
        user=unquote(parts.username or ""),
        dbname=unquote(parts.path.lstrip("/")),
        secrets=tuple(sorted(secrets, key=len, reverse=True)),
    )


def scrub(text: str, target: Target) -> str:
    """`text` on one line, with the URI and the password (raw or quoted) masked."""
    for secret in target.secrets:
        text = text.replace(secret, "***")
    return " ".join(text.split())


# -- classifying libpq's failures -------------------------------------------------------

_UNREACHABLE = (
    "timeout expired",
    "connection refused",
    "no route to host",
    "network is unreachable",
    "could not translate host name",
    "name or service not known",
    "temporary failure in name resolution",
    "could not connect to server",
    "server closed the connection unexpectedly",
)


def classify(message: str) -> str:
    """The KIND_* kind of a libpq/psycopg2 connection failure message."""
    lowered = message.lower()
    if "password authentication failed" in lowered or "no pg_hba.conf entry" in lowered:
        return KIND_AUTH
    if re.search(r'role ".*" does not exist', lowered) or "no password supplied" in lowered:
        return KIND_AUTH
    if re.search(r'database ".*" does not exist', lowered):
        return KIND_NO_DATABASE
    if any(marker in lowered for marker in _UNREACHABLE):
        return KIND_UNREACHABLE
    return KIND_DB_ERROR


def failure_sentence(kind: str, target: Target, detail: str) -> str:
    """The one sentence the user reads for a failure of `kind` (detail already scrubbed)."""
    if kind == KIND_UNREACHABLE:
        return (
            f"Cannot reach PostgreSQL at {target.where} from the box ({detail}): check the "
            "security group and that the RDS instance is available."
        )
    if kind == KIND_AUTH and "pg_hba" in detail:
        return (
            f"PostgreSQL at {target.where} refuses connections from the box for user "
            f"{target.user} ({detail}): allow the box in its pg_hba.conf."
        )
    if kind == KIND_AUTH:
        return (
            f"PostgreSQL at {target.where} refused the password for user {target.user}: "
            f"{detail}. The box reads the password from the database's secret at every "
            "start: if the secret and the database disagree (a password changed by hand), "
            "let RDS manage it again, then run `fab mlflow.install --backend rds` again."
        )
    if kind == KIND_NO_DATABASE:
        return (
            f"Database {target.dbname} does not exist on PostgreSQL at {target.where}: "
            f"create it (CREATE DATABASE {target.dbname} OWNER {target.user}) or fix the URI."
        )
    return f"PostgreSQL at {target.where} failed for user {target.user}: {detail}."


def _error_text(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)  # sqlalchemy wraps the DBAPI error
    return str(orig if orig is not None else exc)


# -- the two commands -------------------------------------------------------------------


def _sqlalchemy() -> Any:
    try:
        return importlib.import_module("sqlalchemy")
    except ImportError:
        raise AgentFailure(
            KIND_NO_DRIVER,
            f"{sys.executable} has no sqlalchemy: run this with the MLflow server's Python.",
        ) from None


def check(uri: str) -> str:
    """Connect to the store and run SELECT 1; the success sentence, or AgentFailure."""
    target = target_of(uri)
    sqlalchemy = _sqlalchemy()
    connect_args: dict[str, Any] = {}
    if target.is_postgres:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        engine = sqlalchemy.create_engine(
            uri, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool
        )
    except ImportError as exc:  # the dialect's driver (psycopg2) is missing
        raise AgentFailure(
            KIND_NO_DRIVER, f"{sys.executable} cannot load the database driver: {exc}."
        ) from None
    except Exception as exc:
        raise AgentFailure(
            KIND_ENV_FILE, f"{URI_KEY} is not a valid store URI: {scrub(str(exc), target)}."
        ) from None
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except Exception as exc:
        detail = scrub(_error_text(exc), target)
        if not target.is_postgres:
            raise AgentFailure(KIND_DB_ERROR, f"Cannot open the store: {detail}.") from None
        kind = classify(detail)
        raise AgentFailure(kind, failure_sentence(kind, target, detail)) from None
    finally:
        engine.dispose()
    if target.is_postgres:
        return (
            f"Connected to PostgreSQL at {target.where} as {target.user}, database {target.dbname}."
        )
    return f"Opened the {target.scheme} store."


def upgrade(uri: str) -> str:
    """Create or upgrade MLflow's schema exactly as `mlflow db upgrade` does.

    mlflow/db.py (3.x): create_sqlalchemy_engine_with_retry, then _initialize_tables on an
    empty database (alembic's own tables aside), else _upgrade_db.
    """
    check(uri)  # a clear, classified failure before MLflow's own retries and tracebacks
    target = target_of(uri)
    # libpq reads this for the engines MLflow makes itself.
    os.environ.setdefault("PGCONNECT_TIMEOUT", str(CONNECT_TIMEOUT_S))
    try:
        from mlflow.store.db import utils as db_utils
    except ImportError as exc:
        raise AgentFailure(
            KIND_NO_DRIVER, f"{sys.executable} cannot import MLflow's database layer: {exc}."
        ) from None
    try:
        engine = db_utils.create_sqlalchemy_engine_with_retry(uri)
        try:
            if db_utils._is_empty_database(engine):
                before = None
                db_utils._initialize_tables(engine)
            else:
                before = db_utils._get_schema_version(engine)
                db_utils._upgrade_db(engine)
            after = db_utils._get_schema_version(engine)
        finally:
            engine.dispose()
    except Exception as exc:
        detail = scrub(_error_text(exc), target)
        raise AgentFailure(KIND_UPGRADE, f"MLflow's schema upgrade failed: {detail}.") from None
    if before is None:
        return f"Created MLflow's schema at revision {after}."
    if before == after:
        return f"MLflow's schema is already at revision {after}."
    return f"Upgraded MLflow's schema from revision {before} to {after}."
