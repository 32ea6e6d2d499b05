"""`fab mlflow.*`: the MLflow tracking server on the box."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from invoke import Collection

from remote.mlflow.backup import backup as backup_db
from remote.mlflow.install import admin_password_path, install_on_box
from remote.mlflow.spec import DEFAULT_PORT, controller_version, parse_allowed_hosts
from remote.mlflow.status import status as read_status
from remote.ssh.tunnel import tunnel
from remote.tasks._common import box_connection, box_of, say, task, user_errors


@task(
    help={
        "backend": "sqlite (a database on the box, the default) or rds (the stack's RDS).",
        "version": f"MLflow version for the box (default: this machine's, "
        f"{controller_version() or 'none found'}).",
        "public": "Listen on all addresses, behind MLflow's basic auth (off by default). "
        "Plain HTTP for now: the basic-auth user and password travel UNENCRYPTED, so "
        "use it only on a network you trust; `fab mlflow.ui` tunnels over SSH instead.",
        "allowed_hosts": "With --public: comma-separated host names clients use, no "
        "wildcards (default: the box's current address).",
    }
)
@user_errors
def install(
    c: Any,
    backend: str = "sqlite",
    version: str = "",
    public: bool = False,
    allowed_hosts: str = "",
) -> None:
    """Install MLflow on the box as a service on 127.0.0.1:5000 (idempotent)."""
    hosts = parse_allowed_hosts(allowed_hosts)
    settings, provider = box_of(c)
    address = provider.address()
    with box_connection(settings, provider) as conn:
        changed = install_on_box(
            conn,
            settings,
            provider,
            address,
            backend=backend,
            version=version,
            public=public,
            allowed_hosts=hosts,
            say=say,
        )
    if changed:
        say(f"MLflow on {settings.name} changed: {changed}")
    if public:
        say(
            f"MLflow listens on {address}:{DEFAULT_PORT} behind basic auth (user admin, "
            f"password in {admin_password_path(settings)}), over plain HTTP: the password "
            f"travels unencrypted. Open TCP {DEFAULT_PORT} to your address only, in the "
            "box's security group (the one sshAllowedCidrs controls)."
        )
    say("Open the UI: `fab mlflow.ui`, then http://127.0.0.1:5000")


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
    try:
        with (
            box_connection(settings, provider) as conn,
            tunnel(
                conn,
                port,
                DEFAULT_PORT,
                health_path="/health",
                what="MLflow",
                hint="Is MLflow running? See `fab mlflow.status`, or `fab mlflow.install`.",
            ) as url,
        ):
            say(f"MLflow UI: {url} (tunnel to {settings.name}; Ctrl-C to close)")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        say("Tunnel closed")


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
