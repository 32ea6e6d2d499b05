"""`install(conn, spec, store_uri)`: MLflow as a systemd service on the box, idempotently.

The server runs from its own virtualenv per version (/opt/mlflow/venvs/<version>) as the
system user `mlflow`, bound to 127.0.0.1 unless exposure is asked for. One probe reads
everything that decides what to do (files, venv, service state); then only what differs
is changed, and the service is restarted only if something changed.

A new version goes into a new venv while the old server keeps running; only once pip
succeeded is the service switched over (schema upgraded, unit rewritten, restarted). So
an unknown version or a failed download leaves the running server and its data alone.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from invoke.exceptions import CommandTimedOut

from remote import remote_files
from remote.errors import MlopsBoxError, WaitTimeout
from remote.mlflow_config import (
    AUTH_CONFIG,
    CONFIG_DIR,
    DATA_DIR,
    DEFAULT_PORT,
    ENV_FILE,
    LOCAL_ARTIFACTS,
    MLFLOW_USER,
    READY_MARKER,
    SQLITE_DB,
    UNIT_FILE,
    UNIT_NAME,
    VENV_ROOT,
    ServerSpec,
    render_auth_config,
    render_env,
    render_unit,
)
from remote.remote_files import RemoteFile
from remote.waiting import wait_for

Connection = Any  # fabric.Connection

PIP_TIMEOUT_S = 1800
HEALTH_TIMEOUT_S = 180
HEALTH_POLL_S = 2.0
# Suffix of a file's previous version, kept on the box while a new configuration starts.
PREVIOUS = ".mlops-box-prev"
# pip's lines worth showing while it works (its full output is hundreds of lines).
_PIP_PROGRESS = "'^(Collecting (mlflow|psycopg2|boto3)|Installing collected|Successfully|ERROR)'"
# The Python code that upgrades the schema, run by `run_with_store_env`: the URI is only
# in the environment systemd reads from ENV_FILE.
_UPGRADE = (
    "import os, mlflow.store.db.utils as u\n"
    "e = u.create_sqlalchemy_engine_with_retry(os.environ['MLFLOW_BACKEND_STORE_URI'])\n"
    "u._upgrade_db(e)\n"
    "e.dispose()\n"
)


class MlflowInstallError(MlopsBoxError):
    """MLflow could not be installed, configured or started on the box."""


@dataclass
class Changed:
    """What an install changed on the box; falsy when nothing."""

    changes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.changes)

    def add(self, what: str) -> None:
        self.changes.append(what)


@dataclass(frozen=True)
class InstallFacts:
    """What the probe found."""

    layout_ok: bool
    venv_ready: bool
    venv_usable: bool  # a finished venv of this version, with other extra packages
    unit_version: str | None  # the version the current unit runs, None if no unit
    active: bool
    enabled: bool
    db_exists: bool
    files: dict[str, remote_files.FileState | None]


def desired_files(spec: ServerSpec, store_uri: str, admin_password: str | None) -> list[RemoteFile]:
    files = [
        RemoteFile(UNIT_FILE, render_unit(spec).encode(), 0o644),
        RemoteFile(ENV_FILE, render_env(spec, store_uri, admin_password).encode(), 0o600),
    ]
    if spec.public:
        files.append(RemoteFile(AUTH_CONFIG, render_auth_config().encode(), 0o644))
    return files


def probe_script(spec: ServerSpec) -> str:
    marker = shlex.quote(f"{spec.venv}/{READY_MARKER}")
    wanted = shlex.quote(" ".join(spec.requirements))
    return (
        f"if id -u {MLFLOW_USER} >/dev/null 2>&1 && "
        f'[ "$(stat -c %U {DATA_DIR} {LOCAL_ARTIFACTS} 2>/dev/null | sort -u)" = {MLFLOW_USER} ] '
        f"&& [ -d {CONFIG_DIR} ]; then echo layout=yes; else echo layout=no; fi; "
        f'if [ "$(cat {marker} 2>/dev/null)" = {wanted} ]; then echo venv=yes; '
        f"elif [ -f {marker} ]; then echo venv=partial; else echo venv=no; fi; "
        f"echo \"unit_version=$(grep -o '{VENV_ROOT}/[^/]*' {UNIT_FILE} 2>/dev/null "
        "| head -n 1 | sed 's|.*/||')\"; "
        f'echo "active=$(systemctl is-active {UNIT_NAME} 2>/dev/null)"; '
        f'echo "enabled=$(systemctl is-enabled {UNIT_NAME} 2>/dev/null)"; '
        f"if [ -f {SQLITE_DB} ]; then echo db=yes; else echo db=no; fi"
    )


def probe(conn: Connection, spec: ServerSpec, files: list[RemoteFile]) -> InstallFacts:
    result = conn.run(f"sudo -n sh -c {shlex.quote(probe_script(spec))}", hide=True, warn=True)
    values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    if not result.ok or "db" not in values:
        raise MlflowInstallError(
            f"Cannot inspect MLflow on the box ({result.stderr.strip()}): check that the login "
            "user may run sudo without a password."
        )
    return InstallFacts(
        layout_ok=values["layout"] == "yes",
        venv_ready=values["venv"] == "yes",
        venv_usable=values["venv"] == "partial",
        unit_version=values["unit_version"] or None,
        active=values["active"] == "active",
        enabled=values["enabled"] == "enabled",
        db_exists=values["db"] == "yes",
        files=remote_files.probe(conn, [f.path for f in files]),
    )


def install(
    conn: Connection,
    spec: ServerSpec,
    store_uri: str,
    *,
    admin_password: str | None = None,
    before_switch: Callable[[], None] | None = None,
    upgrade_schema: Callable[[], None] | None = None,
    say: Callable[[str], None] = print,
) -> Changed:
    """Install or update MLflow per `spec`; restart only if something changed.

    `before_switch` runs once the venv is ready and before anything the running server
    uses changes (the RDS check goes there). `upgrade_schema` replaces the built-in
    schema upgrade (run when the version changes on an existing database).
    """
    files = desired_files(spec, store_uri, admin_password)
    facts = probe(conn, spec, files)
    changed = Changed()
    if not facts.layout_ok:
        _make_layout(conn)
        changed.add(f"system user {MLFLOW_USER} and {DATA_DIR}")
    if not facts.venv_ready:
        _make_venv(conn, spec, say, fresh=not facts.venv_usable)
        changed.add(f"MLflow {spec.version} in {spec.venv}")
    stale = [f for f in files if not f.matches(facts.files[f.path])]
    version_changed = facts.unit_version is not None and facts.unit_version != spec.version
    if not stale and facts.active and facts.enabled and not changed:
        say(f"MLflow {spec.version} is installed and running; nothing changed")
        return changed
    if before_switch is not None:
        before_switch()
    # SQLite: MLflow itself creates a new database's tables, but refuses to start on an
    # old schema. RDS: the database may predate this box, so also on a first install.
    migrate = (version_changed and facts.db_exists) or (
        spec.backend == "rds" and (version_changed or facts.unit_version is None)
    )
    if migrate and facts.active:
        _sudo(conn, f"systemctl stop {UNIT_NAME}", "stop mlflow.service")
    # A working server whose schema stays as it is can be rolled back if the new
    # configuration does not start: keep its files (copies stay root-only, like them).
    can_roll_back = facts.active and not migrate
    kept = [f.path for f in stale if facts.files[f.path] is not None] if can_roll_back else []
    if kept:
        copies = "; ".join(f"cp -p {p} {p}{PREVIOUS}" for p in kept)
        _sudo(conn, f"sh -c {shlex.quote(copies)}", "keep the previous configuration")
    _write_files(conn, stale)
    changed.changes += [f.path for f in stale]
    if migrate:
        say(f"Upgrading the database schema for MLflow {spec.version}")
        if upgrade_schema is not None:
            upgrade_schema()
        else:
            run_with_store_env(conn, spec.python, _UPGRADE, what="upgrade the database schema")
    if any(f.path == UNIT_FILE for f in stale):
        _sudo(conn, "systemctl daemon-reload", "reload systemd")
    if not facts.enabled:
        _sudo(conn, f"systemctl enable --quiet {UNIT_NAME}", "enable mlflow.service")
        changed.add("enabled at boot")
    changed.add("restarted" if facts.active else "started")
    try:
        _sudo(conn, f"systemctl restart {UNIT_NAME}", "start mlflow.service")
        wait_healthy(conn, spec.port, fresh_start=True)
    except MlflowInstallError as exc:
        if not can_roll_back:
            raise
        _roll_back(conn, kept, [f.path for f in stale if f.path not in kept])
        raise MlflowInstallError(
            f"{exc} Rolled back: the previous MLflow server runs again, with its data."
        ) from None
    if kept:
        _sudo(conn, "rm -f " + " ".join(f"{p}{PREVIOUS}" for p in kept), "remove old copies")
    if version_changed:
        _sudo(conn, f"rm -rf {shlex.quote(f'{VENV_ROOT}/{facts.unit_version}')}", "remove old venv")
    return changed


def _roll_back(conn: Connection, kept: list[str], new: list[str]) -> None:
    """Put the previous files back (and remove ones that did not exist), restart, check."""
    script = "; ".join(
        [f"mv -f {p}{PREVIOUS} {p}" for p in kept]
        + [f"rm -f {p}" for p in new]
        + ["systemctl daemon-reload", f"systemctl restart {UNIT_NAME}"]
    )
    _sudo(conn, f"sh -c {shlex.quote(script)}", "roll back to the previous configuration")
    wait_healthy(conn, DEFAULT_PORT, fresh_start=True)


def run_with_store_env(conn: Connection, python: str, code: str, *, what: str) -> str:
    """Run Python `code` on the box as the mlflow user with ENV_FILE's environment.

    systemd-run reads ENV_FILE exactly as the service does, so the backend store URI
    reaches the code through its environment, never through argv. Returns its stdout.
    """
    command = (
        f"sudo -n systemd-run --quiet --wait --pipe --collect -p User={MLFLOW_USER} "
        f"-p EnvironmentFile={ENV_FILE} -p WorkingDirectory={DATA_DIR} "
        f"{shlex.quote(python)} -c {shlex.quote(code)}"
    )
    result = conn.run(command, hide=True, warn=True, timeout=PIP_TIMEOUT_S)
    if not result.ok:
        raise MlflowInstallError(f"Could not {what} on the box: {_tail(result)}")
    return str(result.stdout)


def wait_healthy(
    conn: Connection, port: int, timeout_s: float = HEALTH_TIMEOUT_S, *, fresh_start: bool = False
) -> None:
    """Wait for the server's /health on the box; on timeout, say why with its last log lines.

    Right after a `systemctl (re)start`, which resets the unit's restart count, a crash
    (systemd restarting it: Restart=on-failure) ends the wait at once, not at the timeout.
    """

    def healthy() -> bool | None:
        check = conn.run(
            f"curl -fsS -m 5 http://127.0.0.1:{port}/health >/dev/null || "
            f"systemctl show -p ActiveState -p NRestarts {UNIT_NAME}",
            hide=True,
            warn=True,
        )
        if check.ok and not check.stdout.strip():
            return True
        shown = dict(line.split("=", 1) for line in check.stdout.splitlines() if "=" in line)
        # Exited (inactive, failed) or restarted by systemd after a crash.
        crashed = shown.get("ActiveState") in ("inactive", "failed") or shown.get(
            "NRestarts", "0"
        ) not in ("", "0")
        if fresh_start and crashed:
            raise MlflowInstallError(f"mlflow.service crashed while starting. {_log(conn)}")
        return None

    try:
        wait_for(
            healthy,
            what=f"MLflow's /health on the box (127.0.0.1:{port})",
            timeout_s=timeout_s,
            poll_s=HEALTH_POLL_S,
        )
    except WaitTimeout as exc:
        raise MlflowInstallError(f"{exc} {_log(conn)}") from None


def _log(conn: Connection) -> str:
    log = conn.run(
        f"sudo -n journalctl -u {UNIT_NAME} -n 6 --no-pager -o cat", hide=True, warn=True
    )
    lines = " | ".join(line.strip() for line in log.stdout.strip().splitlines())
    return f"Its last log lines: {lines}. See `journalctl -u {UNIT_NAME}` on the box."


def _make_layout(conn: Connection) -> None:
    script = (
        "set -e; "
        f"id -u {MLFLOW_USER} >/dev/null 2>&1 || useradd --system --user-group "
        f"--home-dir {DATA_DIR} --no-create-home --shell /usr/sbin/nologin {MLFLOW_USER}; "
        f"install -d -m 750 -o {MLFLOW_USER} -g {MLFLOW_USER} {DATA_DIR} {LOCAL_ARTIFACTS}; "
        f"install -d -m 755 {CONFIG_DIR} {VENV_ROOT}"
    )
    _sudo(conn, f"sh -c {shlex.quote(script)}", f"create the {MLFLOW_USER} user")


def _make_venv(
    conn: Connection, spec: ServerSpec, say: Callable[[str], None], *, fresh: bool
) -> None:
    """pip-install the requirements: into a new venv, or (fresh=False) into the finished
    venv of the same version, which the running server may be using: only added to."""
    venv = shlex.quote(spec.venv)
    reqs = " ".join(shlex.quote(r) for r in spec.requirements)
    say(f"Installing {' '.join(spec.requirements)} into {spec.venv} (a minute or two)...")
    if fresh:
        _sudo(conn, f"sh -c 'rm -rf {venv} && python3 -m venv {venv}'", "create the venv")
    try:
        result = conn.run(
            f"sudo -n -H {venv}/bin/pip install --disable-pip-version-check --progress-bar off "
            f"--no-input {reqs} 2>&1 | grep --line-buffered -E {_PIP_PROGRESS} | cut -c1-160"
            "; exit ${PIPESTATUS[0]}",
            warn=True,
            timeout=PIP_TIMEOUT_S,
            shell="/bin/bash",
        )
    except CommandTimedOut:
        if fresh:
            _sudo(conn, f"rm -rf {venv}", "remove the half-made venv")
        raise MlflowInstallError(
            f"pip did not finish within {PIP_TIMEOUT_S}s: check the box's network to PyPI."
        ) from None
    if not result.ok:
        if fresh:
            _sudo(conn, f"rm -rf {venv}", "remove the half-made venv")
        if "No matching distribution" in result.stdout or "Could not find a version" in (
            result.stdout
        ):
            raise MlflowInstallError(
                f"MLflow {spec.version} is not on PyPI: pick a release from "
                "https://pypi.org/project/mlflow/#history, or leave out --version to get the "
                "controller's. The running server (if any) and its data were left as they were."
            )
        raise MlflowInstallError(
            f"pip could not install {' '.join(spec.requirements)}: {_tail(result)}. "
            "The running server (if any) was left as it was."
        )
    marker = f"{spec.venv}/{READY_MARKER}"
    remote_files.write(conn, RemoteFile(marker, " ".join(spec.requirements).encode(), 0o644))


def _write_files(conn: Connection, files: list[RemoteFile]) -> None:
    for wanted in files:
        remote_files.write(conn, wanted)


def _sudo(conn: Connection, command: str, what: str) -> None:
    result = conn.run(f"sudo -n {command}", hide=True, warn=True)
    if not result.ok:
        raise MlflowInstallError(f"Could not {what} on the box: {_tail(result)}")


def _tail(result: Any) -> str:
    text = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return " | ".join(text[-3:]) or f"exit status {result.exited}"
