"""From the box's settings to a concrete MLflow install: which version, store and exposure.

`install_on_box` picks the version (default: the controller's own MLflow), the backend
store (SQLite on the box, or RDS found from AWS), the artifact store (the stack's S3
bucket on AWS, else a directory on the box) and, with --public, the basic-auth admin
password kept on this machine; then runs `remote.mlflow_server.install`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from remote import mlflow_server
from remote.errors import ConfigError
from remote.mlflow_config import (
    ENV_FILE,
    LOCAL_ARTIFACTS,
    ServerSpec,
    controller_version,
    s3_artifacts,
    sqlite_uri,
)
from remote.settings import BoxSettings, expand_home

if TYPE_CHECKING:
    from remote.mlflow_backend import PostgresStore

Connection = Any  # fabric.Connection

SECRETS_DIR = "~/.config/mlops-box"


def admin_password_path(settings: BoxSettings, secrets_dir: Path | None = None) -> Path:
    return (secrets_dir or expand_home(SECRETS_DIR)) / f"{settings.name}-mlflow-admin"


def admin_password(settings: BoxSettings, secrets_dir: Path | None = None) -> str:
    """The basic-auth admin password, generated once and kept 0600 on this machine."""
    path = admin_password_path(settings, secrets_dir)
    if path.exists():
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"{path} is readable by others: `chmod 600 {path}` and run again.")
        return path.read_text().strip()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password


def install_on_box(
    conn: Connection,
    settings: BoxSettings,
    address: str,
    *,
    backend: str = "sqlite",
    version: str = "",
    public: bool = False,
    allowed_hosts: tuple[str, ...] = (),
    secrets_dir: Path | None = None,
    rds_store: PostgresStore | None = None,
    say: Callable[[str], None] = print,
) -> mlflow_server.Changed:
    """Install or update MLflow on the box; `rds_store` skips finding the database in AWS."""
    version = version or controller_version() or ""
    if not version:
        raise ConfigError("No MLflow on this machine to copy the version of: give --version.")
    artifacts = LOCAL_ARTIFACTS
    if settings.provider == "aws":
        from remote.mlflow_backend import find_artifact_bucket

        bucket = find_artifact_bucket(settings)
        if bucket:
            artifacts = s3_artifacts(bucket)
    hosts = allowed_hosts or ((address,) if public else ())
    spec = ServerSpec(
        version=version, backend=backend, artifacts=artifacts, public=public, allowed_hosts=hosts
    )
    password = admin_password(settings, secrets_dir) if public else None
    if backend == "rds":
        from remote import mlflow_backend

        if rds_store is None and settings.provider != "aws":
            raise ConfigError(
                "--backend rds needs the AWS box (its database is made by `pulumi up` with "
                "mlflowBackend rds); the local box uses --backend sqlite."
            )
        store = rds_store or mlflow_backend.find_rds_store(settings)
        return mlflow_server.install(
            conn,
            spec,
            store.uri(),
            admin_password=password,
            before_switch=lambda: mlflow_backend.check_store(conn, store, spec.python),
            upgrade_schema=lambda: mlflow_backend.upgrade_schema(conn, ENV_FILE, spec.python),
            say=say,
        )
    return mlflow_server.install(conn, spec, sqlite_uri(), admin_password=password, say=say)
