"""On the box: check MLflow's backend database, and upgrade its schema.

Copied to /opt/mlflow/agent/mlflow_db.py and run as root by the Python of the MLflow
server's environment (which has sqlalchemy, psycopg2 and mlflow):

    python mlflow_db.py check   --env-file /etc/mlflow/mlflow.env
    python mlflow_db.py upgrade --env-file /etc/mlflow/mlflow.env

The store URI, password included, is read from MLFLOW_BACKEND_STORE_URI in the env file
(systemd EnvironmentFile syntax), never from argv. The last line on stdout says what
happened in one sentence, and the exit status says what kind of failure it was (EXIT_*).
The password appears in neither. This file imports only the standard library at the top,
so the controller can import its parser and constants without any database driver.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

URI_KEY = "MLFLOW_BACKEND_STORE_URI"
CONNECT_TIMEOUT_S = 10

EXIT_OK = 0
EXIT_USAGE = 2  # argparse's own
EXIT_ENV_FILE = 3
EXIT_UNREACHABLE = 4
EXIT_AUTH = 5
EXIT_NO_DATABASE = 6
EXIT_DB_ERROR = 7
EXIT_UPGRADE = 8
EXIT_NO_DRIVER = 9

# systemd's own character classes (src/basic/env-file.c, string-util.h, escape.h).
_NEWLINE = "\n\r"
_WHITESPACE = " \t\n\r"
_COMMENTS = "#;"
SHELL_NEED_ESCAPE = '"\\`$'
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class AgentFailure(Exception):
    """A failure with its exit status and its one-line, password-free sentence."""

    def __init__(self, status: int, sentence: str) -> None:
        super().__init__(sentence)
        self.status = status
        self.sentence = sentence


# -- the env file ----------------------------------------------------------------------


def parse_env_file(text: str) -> dict[str, str]:
    """Parse `text` exactly as systemd's EnvironmentFile= does (no variable expansion).

    A port of systemd's parse_env_file_internal: `#`/`;` comment lines; KEY=VALUE with
    whitespace around both trimmed; unquoted values take `\\x` as x and `\\<newline>` as a
    continuation; '...' is literal; in "..." a backslash escapes only " \\ ` $ (before any
    other character it is kept) and `\\<newline>` continues the line. Quoted and unquoted
    pieces concatenate. Later assignments win; invalid names are ignored, as systemd does.
    """
    result: dict[str, str] = {}
    state = "pre_key"
    key: list[str] = []
    value: list[str] = []
    last_key_ws: int | None = None
    last_value_ws: int | None = None

    def push() -> None:
        name = "".join(key[:last_key_ws] if last_key_ws is not None else key)
        if state == "value" and last_value_ws is not None:
            text_value = "".join(value[:last_value_ws])
        else:
            text_value = "".join(value)
        if _ENV_NAME.fullmatch(name):
            result[name] = text_value

    for c in text:
        if state == "pre_key":
            if c in _COMMENTS:
                state = "comment"
            elif c not in _WHITESPACE:
                state, key, last_key_ws = "key", [c], None
        elif state == "key":
            if c in _NEWLINE:
                state, key = "pre_key", []
            elif c == "=":
                state, value, last_value_ws = "pre_value", [], None
            else:
                if c not in _WHITESPACE:
                    last_key_ws = None
                elif last_key_ws is None:
                    last_key_ws = len(key)
                key.append(c)
        elif state == "pre_value":
            if c in _NEWLINE:
                push()
                state, key, value = "pre_key", [], []
            elif c == "'":
                state = "single"
            elif c == '"':
                state = "double"
            elif c == "\\":
                state = "value_escape"
            elif c not in _WHITESPACE:
                state = "value"
                value.append(c)
        elif state == "value":
            if c in _NEWLINE:
                push()
                state, key, value = "pre_key", [], []
            elif c == "\\":
                state, last_value_ws = "value_escape", None
            else:
                if c not in _WHITESPACE:
                    last_value_ws = None
                elif last_value_ws is None:
                    last_value_ws = len(value)
                value.append(c)
        elif state == "value_escape":
            state = "value"
            if c not in _NEWLINE:
                value.append(c)
        elif state == "single":
            if c == "'":
                state = "pre_value"
            else:
                value.append(c)
        elif state == "double":
            if c == '"':
                state = "pre_value"
            elif c == "\\":
                state = "double_escape"
            else:
                value.append(c)
        elif state == "double_escape":
            state = "double"
            if c in SHELL_NEED_ESCAPE:
                value.append(c)
            elif c != "\n":
                value += ["\\", c]
        elif state == "comment" and c in _NEWLINE:
            state = "pre_key"
    if state in ("pre_value", "value", "value_escape", "single", "double", "double_escape"):
        if state == "value_escape":
            state = "value"
        push()
    return result


def read_store_uri(env_file: str) -> str:
    """MLFLOW_BACKEND_STORE_URI from `env_file`; AgentFailure(EXIT_ENV_FILE) if absent."""
    try:
        with open(env_file, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise AgentFailure(
            EXIT_ENV_FILE, f"Cannot read {env_file} ({exc.strerror}): install MLflow first."
        ) from None
    uri = parse_env_file(text).get(URI_KEY, "")
    if not uri:
        raise AgentFailure(
            EXIT_ENV_FILE, f"{env_file} sets no {URI_KEY}: re-run the MLflow install."
        )
    return uri


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


def classify(message: str) -> int:
    """The EXIT_* kind of a libpq/psycopg2 connection failure message."""
    lowered = message.lower()
    if "password authentication failed" in lowered or "no pg_hba.conf entry" in lowered:
        return EXIT_AUTH
    if re.search(r'role ".*" does not exist', lowered) or "no password supplied" in lowered:
        return EXIT_AUTH
    if re.search(r'database ".*" does not exist', lowered):
        return EXIT_NO_DATABASE
    if any(marker in lowered for marker in _UNREACHABLE):
        return EXIT_UNREACHABLE
    return EXIT_DB_ERROR


def failure_sentence(kind: int, target: Target, detail: str) -> str:
    """The one sentence the user reads for a failure of `kind` (detail already scrubbed)."""
    if kind == EXIT_UNREACHABLE:
        return (
            f"Cannot reach PostgreSQL at {target.where} from the box ({detail}): check the "
            "security group and that the RDS instance is available."
        )
    if kind == EXIT_AUTH and "pg_hba" in detail:
        return (
            f"PostgreSQL at {target.where} refuses connections from the box for user "
            f"{target.user} ({detail}): allow the box in its pg_hba.conf."
        )
    if kind == EXIT_AUTH:
        return (
            f"PostgreSQL at {target.where} refused the password for user {target.user}: "
            f"{detail}. If the RDS-managed password was rotated, re-run the MLflow install "
            "to fetch it again."
        )
    if kind == EXIT_NO_DATABASE:
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
            EXIT_NO_DRIVER,
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
            EXIT_NO_DRIVER, f"{sys.executable} cannot load the database driver: {exc}."
        ) from None
    except Exception as exc:
        raise AgentFailure(
            EXIT_ENV_FILE, f"{URI_KEY} is not a valid store URI: {scrub(str(exc), target)}."
        ) from None
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except Exception as exc:
        detail = scrub(_error_text(exc), target)
        if not target.is_postgres:
            raise AgentFailure(EXIT_DB_ERROR, f"Cannot open the store: {detail}.") from None
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
            EXIT_NO_DRIVER, f"{sys.executable} cannot import MLflow's database layer: {exc}."
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
        raise AgentFailure(EXIT_UPGRADE, f"MLflow's schema upgrade failed: {detail}.") from None
    if before is None:
        return f"Created MLflow's schema at revision {after}."
    if before == after:
        return f"MLflow's schema is already at revision {after}."
    return f"Upgraded MLflow's schema from revision {before} to {after}."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check or upgrade MLflow's backend store.")
    parser.add_argument("command", choices=("check", "upgrade"))
    parser.add_argument("--env-file", required=True, help="systemd EnvironmentFile with the URI")
    args = parser.parse_args(argv)
    try:
        uri = read_store_uri(args.env_file)
        sentence = check(uri) if args.command == "check" else upgrade(uri)
    except AgentFailure as failure:
        print(failure.sentence, flush=True)
        return failure.status
    print(sentence, flush=True)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
