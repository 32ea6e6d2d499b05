"""`fab mlflow.*`: the MLflow tracking server on the box."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from invoke import Collection

from remote.mlflow.backup import backup as backup_db
from remote.mlflow.install import install as install_mlflow
from remote.mlflow.spec import DEFAULT_PORT, default_version
from remote.mlflow.status import status as read_status
from remote.ssh.connection import box_connection
from remote.tasks._common import box_of, hold_tunnel, say, task, user_errors


@task(
    help={
        "backend": "sqlite (a database on the box, the default) or rds (the stack's RDS).",
        "version": f"MLflow release for the box (default: {default_version()}, the locked "
        "release, as on this machine; another is resolved on the box once).",
        "public": "Also serve MLflow at https://<box>/mlflow through the TLS front door "
        "(bearer token; see deploy.expose), opening it if needed. Off by default.",
        "cidr": "With --public: the network the front door admits (default: the one it "
        "admits now; needed when it is closed).",
    }
)
@user_errors
def install(
    c: Any, backend: str = "sqlite", version: str = "", public: bool = False, cidr: str = ""
) -> None:
    """Install MLflow on the box as a service on 127.0.0.1:5000 (idempotent)."""
    settings, provider = box_of(c)
    done = install_mlflow(
        settings, provider, backend=backend, version=version, public=public, cidr=cidr, say=say
    )
    for line in done.describe(settings.name):
        say(line)


@task
@user_errors
def status(c: Any) -> None:
    """Show MLflow's service state, version, backend, artifact store, experiments and runs."""
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        say(read_status(conn).describe(settings.name))


@task(help={"port": f"Local port of the tunnel (default {DEFAULT_PORT})."})
@user_errors
def ui(c: Any, port: int = DEFAULT_PORT) -> None:
    """Tunnel http://127.0.0.1:<port> to MLflow on the box until Ctrl-C."""
    settings, provider = box_of(c)
    hold_tunnel(
        settings,
        provider,
        local_port=port,
        remote_port=DEFAULT_PORT,
        health_path="/health",
        what="MLflow",
        hint="Is MLflow running? See `fab mlflow.status`, or `fab mlflow.install`.",
        ready=lambda url: f"MLflow UI: {url} (tunnel to {settings.name}; Ctrl-C to close)",
    )


@task(help={"dest": "Directory on this machine for the copy (default: the current one)."})
@user_errors
def backup(c: Any, dest: str = ".") -> None:
    """Copy MLflow's SQLite database from the box, consistently (RDS: use snapshots)."""
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        made = backup_db(conn, Path(dest).expanduser().absolute(), settings.name)
    say(
        f"Backed up {made.experiments} experiments, {made.runs} runs "
        f"({made.size / 1e6:.1f} MB) to {made.path}"
    )


mlflow = Collection("mlflow", install, status, ui, backup)
