"""`fab mlflow.*`: the MLflow tracking server on the box.

Thin adapters: each task reads the settings, connects to the running box over its
pinned host key, calls a library function and prints what happened.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from typing import Any

from fabric import task
from invoke import Collection

from remote.errors import TunnelError
from remote.mlflow_config import DEFAULT_PORT, controller_version
from remote.mlflow_setup import admin_password_path, install_on_box
from remote.mlflow_status import backup as backup_db
from remote.mlflow_status import status as read_status
from remote.tasks.box import box_connection, running_address, say, settings_of, user_errors
from remote.waiting import wait_for

UI_READY_TIMEOUT_S = 20


@task(
    help={
        "backend": "sqlite (a database on the box, the default) or rds (the stack's RDS).",
        "version": f"MLflow version for the box (default: this machine's, "
        f"{controller_version() or 'none found'}).",
        "public": "Listen on all addresses, behind MLflow's basic auth (off by default).",
        "allowed_hosts": "With --public: comma-separated host names clients use "
        "(default: the box's current address).",
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
    settings = settings_of(c)
    address = running_address(settings)
    hosts = tuple(h.strip() for h in allowed_hosts.split(",") if h.strip())
    with box_connection(settings) as conn:
        changed = install_on_box(
            conn,
            settings,
            address,
            backend=backend,
            version=version,
            public=public,
            allowed_hosts=hosts,
            say=say,
        )
    if changed:
        say(f"MLflow on {settings.name} changed: {', '.join(changed.changes)}")
    if public:
        say(
            f"MLflow listens on {address}:{DEFAULT_PORT} behind basic auth (user admin, "
            f"password in {admin_password_path(settings)}). Open TCP {DEFAULT_PORT} to your "
            "address in the box's security group (the one sshAllowedCidrs controls)."
        )
    say("Open the UI: `fab mlflow.ui`, then http://127.0.0.1:5000")


@task
@user_errors
def status(c: Any) -> None:
    """Show MLflow's service state, version, backend, artifact store, experiments and runs."""
    settings = settings_of(c)
    with box_connection(settings) as conn:
        say(read_status(conn).describe(settings.name))


@task(help={"port": f"Local port of the tunnel (default {DEFAULT_PORT})."})
@user_errors
def ui(c: Any, port: int = DEFAULT_PORT) -> None:
    """Tunnel http://127.0.0.1:<port> to MLflow on the box until Ctrl-C."""
    settings = settings_of(c)
    url = f"http://127.0.0.1:{port}"
    try:
        with box_connection(settings) as conn:
            try:
                tunnel = conn.forward_local(port, remote_port=DEFAULT_PORT, remote_host="127.0.0.1")
                tunnel.__enter__()
            except OSError as exc:
                raise TunnelError(
                    f"Cannot listen on 127.0.0.1:{port} ({exc.strerror}): pick another --port."
                ) from None
            try:
                wait_for(
                    lambda: _answers(f"{url}/health"),
                    what=f"MLflow through the tunnel ({url})",
                    timeout_s=UI_READY_TIMEOUT_S,
                    hint="Is MLflow running? See `fab mlflow.status`, or `fab mlflow.install`.",
                )
                say(f"MLflow UI: {url} (tunnel to {settings.name}; Ctrl-C to close)")
                while True:
                    time.sleep(3600)
            finally:
                tunnel.__exit__(None, None, None)
    except KeyboardInterrupt:
        say("Tunnel closed")


def _answers(url: str) -> bool | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return True if response.status == 200 else None
    except OSError:
        return None


@task(help={"dest": "Directory on this machine for the copy (default: the current one)."})
@user_errors
def backup(c: Any, dest: str = ".") -> None:
    """Copy MLflow's SQLite database from the box, consistently (RDS: use snapshots)."""
    settings = settings_of(c)
    with box_connection(settings) as conn:
        made = backup_db(conn, Path(dest).expanduser().absolute(), settings.name)
    say(
        f"Backed up {made.experiments} experiments, {made.runs} runs "
        f"({made.size / 1e6:.1f} MB) to {made.path}"
    )


mlflow = Collection("mlflow", install, status, ui, backup)
