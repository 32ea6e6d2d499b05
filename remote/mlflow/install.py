"""From the box's settings to a concrete MLflow install: which version, store and exposure.

`install_on_box` picks the version (default: the controller's own MLflow), the backend
store (SQLite on the box, or the stack's database, which the provider finds: where it
is and its secret's ARN; the box itself reads the password), the
artifact store (the stack's bucket where the provider has one, else a directory on the
box) and, with --public, the basic-auth admin password kept on this machine; then runs
`remote.mlflow.server.install`.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from remote.changes import Changed
from remote.errors import ConfigError
from remote.mlflow import server, store
from remote.mlflow.spec import ServerSpec, controller_version, s3_artifacts
from remote.providers.base import Database, Provider
from remote.settings import BoxSettings, expand_home
from remote.system.run import Connection

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
    provider: Provider,
    address: str,
    *,
    backend: str = "sqlite",
    version: str = "",
    public: bool = False,
    allowed_hosts: tuple[str, ...] = (),
    secrets_dir: Path | None = None,
    database: Database | None = None,
    say: Callable[[str], None] = print,
) -> Changed:
    """Install or update MLflow on the box; `database` stands in for the provider's.

    Everything is checked before the first change on the box.
    """
    version = version or controller_version() or ""
    if not version:
        raise ConfigError("No MLflow on this machine to copy the version of: give --version.")
    hosts = allowed_hosts or ((address,) if public else ())
    # Validated (version, backend, hosts) before anything is asked of AWS or the box.
    spec = ServerSpec(version=version, backend=backend, public=public, allowed_hosts=hosts)
    bucket = provider.artifact_bucket()
    if bucket:
        spec = dataclasses.replace(spec, artifacts=s3_artifacts(bucket))
    password = admin_password(settings, secrets_dir) if public else None
    if backend != "rds":
        return server.install(conn, spec, admin_password=password, say=say)
    db = database or provider.database()
    return server.install(
        conn,
        spec,
        database=db,
        admin_password=password,
        before_switch=lambda: store.check_database(conn, db, spec.python),
        say=say,
    )
