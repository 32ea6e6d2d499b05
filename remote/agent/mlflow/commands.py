"""The MLflow server's on-box steps: its backend store, the RDS secret, the SQLite backup."""

from __future__ import annotations

from typing import Any

from ..cli import Command, Env, arg

DB_CHECK = "db-check"
DB_UPGRADE = "db-upgrade"
DATA = "mlflow-data"
RDS_ENV = "rds-env"
SQLITE_BACKUP = "sqlite-backup"


def check_store() -> dict[str, Any]:
    from . import store

    return {"message": store.check(store.store_uri())}


def upgrade_store() -> dict[str, Any]:
    from . import store

    return {"message": store.upgrade(store.store_uri())}


COMMANDS = (
    Command(
        DB_CHECK, "connect to MLflow's backend store", Env.MLFLOW, "mlflow.commands:check_store"
    ),
    Command(
        DB_UPGRADE, "create or upgrade MLflow's schema", Env.MLFLOW, "mlflow.commands:upgrade_store"
    ),
    Command(DATA, "the backend store's kind and counts", Env.MLFLOW, "mlflow.data:describe"),
    Command(
        RDS_ENV,
        "write the RDS store URI, password from the secret, to a root-only file",
        Env.MLFLOW,
        "mlflow.rds_secret:write_env",
        (
            arg(
                "config_path",
                metavar="config",
                help="the database's coordinates (JSON, not secret)",
            ),
            arg("env_path", metavar="env_file", help="the EnvironmentFile to write (0600)"),
        ),
    ),
    Command(
        SQLITE_BACKUP,
        "copy a SQLite database consistently",
        Env.SYSTEM,
        "mlflow.sqlite_backup:backup",
        (arg("source"), arg("dest")),
    ),
)
