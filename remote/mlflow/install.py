"""From the box's settings to a concrete MLflow install: which version and which stores.

`install_on_box` picks the version and its lock (default: the release and lock kept in
the repository, the controller's own MLflow; another release is resolved on the box, and
refused there before any change when it cannot be had), the backend
store (SQLite on the box, or the stack's database, which the provider finds: where it
is and its secret's ARN; the box itself reads the password), the
artifact store (the stack's bucket where the provider has one, else a directory on the
box); then runs `remote.mlflow.server.install`. Exposure is the front door's business
(`remote.deploy.expose`): MLflow itself always listens on 127.0.0.1. `install` is the whole
of `fab mlflow.install`: its arguments checked, the install, and with `public` the front
door opened, over one connection.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from remote.changes import Changed
from remote.deploy.expose import Exposure, current_cidr, open_front_door
from remote.deploy.front_door import parse_cidr
from remote.errors import ConfigError
from remote.locks import MLFLOW_SERVER, Lock, box_lock
from remote.mlflow import server, store
from remote.mlflow.server import MlflowInstallError
from remote.mlflow.spec import ServerSpec, default_version, s3_artifacts
from remote.providers.base import Database, Provider
from remote.settings import BoxSettings
from remote.ssh.connection import box_connection
from remote.system import venv
from remote.system.run import Connection


@dataclass(frozen=True)
class Installed:
    """What `fab mlflow.install` did: the changes, and the front door when it is public."""

    changed: Changed
    exposure: Exposure | None

    def describe(self, name: str) -> list[str]:
        lines = [f"MLflow on {name} changed: {self.changed}"] if self.changed else []
        if self.exposure is not None:
            lines += self.exposure.describe()
        return [*lines, "Open the UI: `fab mlflow.ui`, then http://127.0.0.1:5000"]


def install(
    settings: BoxSettings,
    provider: Provider,
    *,
    backend: str = "sqlite",
    version: str = "",
    public: bool = False,
    cidr: str = "",
    say: Callable[[str], None] = print,
) -> Installed:
    """Install or update MLflow on the box; with `public`, open the front door to it too
    (for `cidr`, or the network it admits now). The arguments are checked first."""
    if cidr and not public:
        raise ConfigError("--cidr goes with --public (the network the front door admits).")
    network: ipaddress.IPv4Network | None = parse_cidr(cidr) if cidr else None
    with box_connection(settings, provider) as conn:
        if public and network is None:
            network = current_cidr(conn)
            if network is None:
                raise ConfigError(
                    "--public serves MLflow through the TLS front door, which is closed: "
                    "add --cidr NETWORK (e.g. 203.0.113.7/32) to open it for that network."
                )
        changed = install_on_box(conn, provider, backend=backend, version=version, say=say)
        exposure = open_front_door(conn, settings, provider, network, say=say) if network else None
    return Installed(changed, exposure)


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
    # Validated (version, backend) before anything is asked of AWS or the box.
    spec = ServerSpec(version=version or default_version(), backend=backend)
    bucket = provider.artifact_bucket()
    if bucket:
        spec = dataclasses.replace(spec, artifacts=s3_artifacts(bucket))
    lock = server_lock(conn, spec, say=say)
    spec = dataclasses.replace(spec, lock_key=lock.key)
    if backend != "rds":
        return server.install(conn, spec, lock, say=say)
    db = database or provider.database()
    return server.install(
        conn,
        spec,
        lock,
        database=db,
        before_switch=lambda: store.check_database(conn, db, spec.python),
        say=say,
    )


def server_lock(conn: Connection, spec: ServerSpec, *, say: Callable[[str], None]) -> Lock:
    """The repository's server lock for its release; another release's, resolved on the
    box once (preferring the repository's versions). Raises before any change when that
    release cannot be had."""
    kept = box_lock(MLFLOW_SERVER)
    if spec.version == kept.version_of("mlflow"):
        return kept
    try:
        return venv.resolve(
            conn,
            MLFLOW_SERVER,
            spec.version,
            spec.requirements,
            prefer=kept,
            say=say,
            error=MlflowInstallError,
        )
    except MlflowInstallError as exc:
        if "no version of mlflow" in str(exc) or "not found in the package registry" in str(exc):
            raise MlflowInstallError(
                f"MLflow {spec.version} is not on PyPI: pick a release from "
                "https://pypi.org/project/mlflow/#history, or leave out --version to get "
                f"{kept.version_of('mlflow')} (the controller's). The running server (if any) "
                "and its data were left as they were."
            ) from None
        raise MlflowInstallError(f"{exc} The running server (if any) was left as it was.") from None
