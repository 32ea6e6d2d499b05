"""`install(conn, spec)`: MLflow as a systemd service on the box, idempotently.

The server runs from its own virtualenv (/opt/mlflow/venvs/<version>-<lock>) as the
system user `mlflow`, bound to 127.0.0.1. One probe reads
everything that decides what to do (files, venv, service state); then only what differs
is changed, and the service is restarted only if something changed.

The venv holds exactly a lock (remote/system/venv.py) and is named by the version and the
lock's key: a new version or lock goes into a new venv while the old server keeps
running; only once it is complete is the service switched over (schema upgraded, unit
rewritten, restarted), and the old venv removed. So an unknown version or a failed
download leaves the running server and its data alone.

With RDS this machine never holds the database password: the install writes where the
database is (RDS_CONFIG), and the unit's start step, on the box, reads the secret and
writes the store URI at every start. The schema upgrade runs that same step first.

A little over 300 lines on purpose: the install and its roll-back share the probe's
facts and the kept files, and read best as one flow.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from remote.changes import Changed
from remote.errors import MlopsBoxError, WaitTimeout
from remote.locks import Lock
from remote.mlflow import store
from remote.mlflow.spec import (
    CONFIG_DIR,
    DATA_DIR,
    ENV_FILE,
    LOCAL_ARTIFACTS,
    MLFLOW_USER,
    RDS_CONFIG,
    RDS_ENV_FILE,
    SQLITE_DB,
    STATE_FILE,
    UNIT_FILE,
    UNIT_NAME,
    VENV_ROOT,
    ServerSpec,
    render_env,
    render_rds_config,
    render_state,
    render_unit,
    store_env_file,
)
from remote.providers.base import Database
from remote.system import files, systemd
from remote.system.agent import ensure_agent
from remote.system.files import RemoteFile
from remote.system.run import Connection, check, key_values, run, sh, sudo, tail
from remote.system.venv import READY_MARKER, ensure_env
from remote.waiting import wait_for

HEALTH_TIMEOUT_S = 180
HEALTH_POLL_S = 2.0
# Suffix of a file's previous version, kept on the box while a new configuration starts.
PREVIOUS = ".mlops-box-prev"


class MlflowInstallError(MlopsBoxError):
    """MLflow could not be installed, configured or started on the box."""


@dataclass(frozen=True)
class InstallFacts:
    """What the probe found."""

    layout_ok: bool
    venv_ready: bool
    installed_version: str | None  # what the state file says runs now; None if nothing
    active: bool
    enabled: bool
    db_exists: bool
    files: dict[str, files.FileState | None]


def desired_files(spec: ServerSpec, database: Database | None) -> list[RemoteFile]:
    """The unit first, then the files it reads: the env file, the state file and, with
    RDS, the database's coordinates (`database`, required then)."""
    if (spec.backend == "rds") != (database is not None):
        raise ValueError("a database is given exactly for the rds backend")
    wanted = [
        RemoteFile(UNIT_FILE, render_unit(spec).encode(), 0o644),
        RemoteFile(ENV_FILE, render_env(spec).encode(), 0o600),
        RemoteFile(STATE_FILE, render_state(spec).encode(), 0o644),
    ]
    if database is not None:
        wanted.append(RemoteFile(RDS_CONFIG, render_rds_config(database).encode(), 0o644))
    return wanted


def probe_script(spec: ServerSpec) -> str:
    marker = shlex.quote(f"{spec.venv}/{READY_MARKER}")
    wanted = shlex.quote(spec.lock_key)
    return (
        f"if id -u {MLFLOW_USER} >/dev/null 2>&1 && "
        f'[ "$(stat -c %U {DATA_DIR} {LOCAL_ARTIFACTS} 2>/dev/null | sort -u)" = {MLFLOW_USER} ] '
        f"&& [ -d {CONFIG_DIR} ]; then echo layout=yes; else echo layout=no; fi; "
        f'if [ "$(cat {marker} 2>/dev/null)" = {wanted} ]; then echo venv=yes; '
        f"else echo venv=no; fi; "
        f"echo \"state=$(tr -d '\\n' < {STATE_FILE} 2>/dev/null)\"; "
        f'echo "active=$(systemctl is-active {UNIT_NAME} 2>/dev/null)"; '
        f'echo "enabled=$(systemctl is-enabled {UNIT_NAME} 2>/dev/null)"; '
        f"if [ -f {SQLITE_DB} ]; then echo db=yes; else echo db=no; fi"
    )


def probe(conn: Connection, spec: ServerSpec, wanted: list[RemoteFile]) -> InstallFacts:
    result = check(conn, sudo(sh(probe_script(spec))))
    values = key_values(result.stdout)
    if not result.ok or "db" not in values:
        raise MlflowInstallError(
            f"Cannot inspect MLflow on the box ({tail(result)}): check that the login "
            "user may run sudo without a password."
        )
    return InstallFacts(
        layout_ok=values["layout"] == "yes",
        venv_ready=values["venv"] == "yes",
        installed_version=installed_version(values["state"]),
        active=values["active"] == "active",
        enabled=values["enabled"] == "enabled",
        db_exists=values["db"] == "yes",
        files=files.probe(conn, [f.path for f in wanted]),
    )


def installed_version(state_json: str) -> str | None:
    """The version in the state file's text; None when there is none (or it is unreadable)."""
    try:
        version = json.loads(state_json).get("version") if state_json else None
    except (ValueError, AttributeError):
        return None
    return version if isinstance(version, str) and version else None


def install(
    conn: Connection,
    spec: ServerSpec,
    lock: Lock,
    *,
    database: Database | None = None,
    before_switch: Callable[[], None] | None = None,
    say: Callable[[str], None] = print,
) -> Changed:
    """Install or update MLflow per `spec`, its environment exactly `lock`; restart only
    if something changed.

    `database` is where the RDS backend is (only with it). `before_switch` runs once the
    venv is ready and before anything the running server uses changes (the RDS check
    goes there).
    """
    if spec.lock_key != lock.key:
        raise ValueError("the spec names another lock")
    wanted = desired_files(spec, database)
    facts = probe(conn, spec, wanted)
    changed = Changed()
    if not facts.layout_ok:
        _make_layout(conn)
        changed.add(f"system user {MLFLOW_USER} and {DATA_DIR}")
    if not facts.venv_ready:
        say(f"Installing MLflow {spec.version} into {spec.venv} from its lock...")
        ensure_env(conn, spec.venv, lock, say=say, error=MlflowInstallError)
        changed.add(f"MLflow {spec.version} in {spec.venv}")
    stale = [f for f in wanted if not f.matches(facts.files[f.path])]
    if not stale and facts.active and facts.enabled and not changed:
        # Right after a box start the service may still be starting: running means answering.
        wait_healthy(conn, spec.port)
        say(f"MLflow {spec.version} is installed and running; nothing changed")
        return changed
    if before_switch is not None:
        before_switch()
    previous = facts.installed_version
    version_changed = previous is not None and previous != spec.version
    # SQLite: MLflow itself creates a new database's tables, but refuses to start on an
    # old schema. RDS: the database may predate this box, so also on a first install.
    migrate = (version_changed and facts.db_exists) or (
        spec.backend == "rds" and (version_changed or previous is None)
    )
    if migrate and facts.active:
        systemd.systemctl(conn, "stop", UNIT_NAME, error=MlflowInstallError)
    # A working server whose schema stays as it is can be rolled back if the new
    # configuration does not start: keep its files (copies stay root-only, like them).
    can_roll_back = facts.active and not migrate
    kept = [f.path for f in stale if facts.files[f.path] is not None] if can_roll_back else []
    if kept:
        copies = "; ".join(f"cp -p {p} {p}{PREVIOUS}" for p in kept)
        _sudo(conn, sh(copies), "keep the previous configuration")
    if spec.backend == "rds":
        ensure_agent(conn)  # the unit's start step runs this version's bundle
    if migrate:
        # The schema upgrade reads the store from the env file the new server will use.
        for item in wanted:
            if item.path in (ENV_FILE, RDS_CONFIG):
                files.write(conn, item)
        if spec.backend == "rds":
            say(store.write_rds_env(conn, spec.python))
        say(f"Upgrading the database schema for MLflow {spec.version}")
        say(store.upgrade_schema(conn, spec.python, store_env_file(spec.backend)))
    unit, *companions = wanted
    try:
        changed.merge(
            systemd.ensure_unit(
                conn,
                UNIT_NAME,
                unit.content.decode(),
                companions=companions,
                error=MlflowInstallError,
            )
        )
        wait_healthy(conn, spec.port, fresh_start=True)
    except MlflowInstallError as exc:
        if not can_roll_back:
            raise
        _roll_back(conn, spec.port, kept, [f.path for f in stale if f.path not in kept])
        raise MlflowInstallError(
            f"{exc} Rolled back: the previous MLflow server runs again, with its data."
        ) from None
    if kept:
        _sudo(conn, "rm -f " + " ".join(f"{p}{PREVIOUS}" for p in kept), "remove old copies")
    if spec.backend != "rds":  # a server moved off RDS leaves no trace of the database
        _sudo(conn, f"rm -f {RDS_CONFIG} {RDS_ENV_FILE}", "remove the RDS settings")
    if changed:  # the server runs from this venv now: the ones it ran from before go
        others = f"find {VENV_ROOT} -mindepth 1 -maxdepth 1 ! -path {shlex.quote(spec.venv)}"
        _sudo(conn, sh(f"{others} -exec rm -rf {{}} +"), "remove the old venvs")
    return changed


def _roll_back(conn: Connection, port: int, kept: list[str], new: list[str]) -> None:
    """Put the previous files back (and remove ones that did not exist), restart, check."""
    script = "; ".join(
        [f"mv -f {p}{PREVIOUS} {p}" for p in kept]
        + [f"rm -f {p}" for p in new]
        + ["systemctl daemon-reload", f"systemctl restart {UNIT_NAME}"]
    )
    _sudo(conn, sh(script), "roll back to the previous configuration")
    wait_healthy(conn, port, fresh_start=True)


def answers_health(conn: Connection, listen: str) -> bool:
    """Whether the server at `listen` (host:port on the box) answers /health now."""
    return bool(check(conn, f"curl -fsS -m 5 http://{listen}/health >/dev/null").ok)


def wait_healthy(
    conn: Connection, port: int, timeout_s: float = HEALTH_TIMEOUT_S, *, fresh_start: bool = False
) -> None:
    """Wait for the server's /health on the box; on timeout, say why with its last log lines.

    Right after a `systemctl (re)start`, which resets the unit's restart count, a crash
    (systemd restarting it: Restart=on-failure) ends the wait at once, not at the timeout.
    """

    def healthy() -> bool | None:
        if answers_health(conn, f"127.0.0.1:{port}"):
            return True
        unit = systemd.state(conn, UNIT_NAME)
        crashed = unit.active in ("inactive", "failed") or unit.restarts > 0
        if fresh_start and crashed:
            raise MlflowInstallError(
                f"{UNIT_NAME} crashed while starting. {systemd.journal_tail(conn, UNIT_NAME)}"
            )
        return None

    try:
        wait_for(
            healthy,
            what=f"MLflow's /health on the box (127.0.0.1:{port})",
            timeout_s=timeout_s,
            poll_s=HEALTH_POLL_S,
        )
    except WaitTimeout as exc:
        raise MlflowInstallError(f"{exc} {systemd.journal_tail(conn, UNIT_NAME)}") from None


def _make_layout(conn: Connection) -> None:
    script = (
        "set -e; "
        f"id -u {MLFLOW_USER} >/dev/null 2>&1 || useradd --system --user-group "
        f"--home-dir {DATA_DIR} --no-create-home --shell /usr/sbin/nologin {MLFLOW_USER}; "
        f"install -d -m 750 -o {MLFLOW_USER} -g {MLFLOW_USER} {DATA_DIR} {LOCAL_ARTIFACTS}; "
        f"install -d -m 755 {CONFIG_DIR} {VENV_ROOT}"
    )
    _sudo(conn, sh(script), f"create the {MLFLOW_USER} user")


def _sudo(conn: Connection, command: str, what: str) -> None:
    run(conn, sudo(command), what=what, error=MlflowInstallError)
