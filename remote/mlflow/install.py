"""From the box's settings to a concrete MLflow install: which version and which stores.

`install_on_box` picks the version (default: the controller's own MLflow), the backend
store (SQLite on the box, or the stack's database, which the provider finds: where it
is and its secret's ARN; the box itself reads the password), the
artifact store (the stack's bucket where the provider has one, else a directory on the
box); then runs `remote.mlflow.server.install`. Exposure is the front door's business
(`remote.deploy.expose`): MLflow itself always listens on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from remote.changes import Changed
from remote.errors import ConfigError
from remote.mlflow import server, store
from remote.mlflow.spec import ServerSpec, controller_version, s3_artifacts
from remote.providers.base import Database, Provider
from remote.system.run import Connection


def install_on_box(
    conn: Connection,
    provider: Provider,
    *,
    backend: str = "sqlite",
    version: str = "",
    database: Database | None = None,
    say: Callable[[str], None] = print,
) -> Changed:
    """Install or update MLflow on the box; `database` stands in for the provider's.

    Everything is checked before the first change on the box.
    """
    version = version or controller_version() or ""
    if not version:
        raise ConfigError("No MLflow on this machine to copy the version of: give --version.")
    # Validated (version, backend) before anything is asked of AWS or the box.
    spec = ServerSpec(version=version, backend=backend)
    bucket = provider.artifact_bucket()
    if bucket:
        spec = dataclasses.replace(spec, artifacts=s3_artifacts(bucket))
    if backend != "rds":
        return server.install(conn, spec, say=say)
    db = database or provider.database()
    return server.install(
        conn,
        spec,
        database=db,
        before_switch=lambda: store.check_database(conn, db, spec.python),
        say=say,
    )
