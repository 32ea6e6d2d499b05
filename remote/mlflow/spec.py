"""What the MLflow server on the box should look like: paths, arguments and files, as text.

Pure functions only (no SSH): `ServerSpec` says what is wanted, and the renderers turn
it into the systemd unit, the environment file, the RDS coordinates and the state file
(what was installed, read back by `mlflow.status`) that `remote.mlflow.server` then puts
on the box.

The server listens on 127.0.0.1 only. Clients elsewhere reach it through an SSH tunnel
(`fab mlflow.ui`) or, opted in, the TLS front door (`fab deploy.expose`), whose bearer
token is the one credential: MLflow's own basic auth would need the same Authorization
header, which a client can fill with only one of the two.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from remote import contract, locks
from remote.agent.mlflow.store import URI_KEY
from remote.agent.system.envfile import env_file_line
from remote.errors import ConfigError
from remote.providers.base import Database
from remote.system import agent, templates

BACKENDS = ("sqlite", "rds")
# MLflow 3's server-side job execution (GenAI scorer jobs, trace roll-ups, none of which
# this tool uses) starts a job runner with ten huey workers beside the server: on a
# 2-core box that is most of a start's CPU and slows every restart. Off.
SERVER_SETTINGS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
MLFLOW_USER = "mlflow"
VENV_ROOT = contract.MLFLOW_VENVS_DIR
DATA_DIR = contract.MLFLOW_DATA_DIR
SQLITE_DB = contract.MLFLOW_SQLITE_DB
LOCAL_ARTIFACTS = f"{DATA_DIR}/artifacts"
CONFIG_DIR = contract.MLFLOW_CONFIG_DIR
ENV_FILE = contract.MLFLOW_ENV_FILE
# RDS: where the database is (not secret, written by the install), and the env file with
# the store URI, password included, that the unit's start step writes from the secret at
# every start. In /run (RAM): the password is never on the box's disk.
RDS_CONFIG = f"{CONFIG_DIR}/rds.json"
RUN_DIR = contract.MLFLOW_RUN_DIR
RDS_ENV_FILE = f"{RUN_DIR}/rds.env"
# What was installed, for `mlflow.status`: written with the unit, never parsed out of it.
STATE_FILE = f"{CONFIG_DIR}/server.json"
UNIT_NAME = contract.MLFLOW_UNIT
UNIT_FILE = f"{contract.SYSTEMD_UNIT_DIR}/{UNIT_NAME}"
DEFAULT_PORT = contract.MLFLOW_PORT
DEFAULT_WORKERS = 2
BIND_HOST = "127.0.0.1"
# What the server's environment holds besides MLflow, whatever the backend: one lock for
# every box (psycopg2 for RDS; boto3 for S3 artifacts and the RDS start step's secret).
SERVER_EXTRAS = ("boto3", "psycopg2-binary")
TEMPLATE = "mlflow.service.j2"
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class ServerSpec:
    """The wanted MLflow server: version, backend and artifact store."""

    version: str
    backend: str = "sqlite"
    # s3://<bucket>/mlflow on AWS, else a directory on the box.
    artifacts: str = LOCAL_ARTIFACTS
    port: int = DEFAULT_PORT
    workers: int = DEFAULT_WORKERS
    # The key of the lock its environment holds: a new lock is a new venv beside the old.
    lock_key: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "version", check_version(self.version))
        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend is {self.backend!r}: use one of {', '.join(BACKENDS)}.")
        if not (self.artifacts.startswith("s3://") or self.artifacts.startswith("/")):
            raise ConfigError(f"The artifact store {self.artifacts!r} is not s3:// or a path.")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"The MLflow port {self.port} is not a TCP port.")

    @property
    def venv(self) -> str:
        return f"{VENV_ROOT}/{self.version}" + (f"-{self.lock_key}" if self.lock_key else "")

    @property
    def python(self) -> str:
        return f"{self.venv}/bin/python"

    @property
    def requirements(self) -> tuple[str, ...]:
        """What its environment asks for; the lock says exactly what it holds."""
        return (f"mlflow=={self.version}", *SERVER_EXTRAS)


def check_version(version: str) -> str:
    """A release as pip names it (PEP 440, normalised); ConfigError for anything else.

    Epochs and local versions are refused: no MLflow release has one, and the version
    names a directory on the box.
    """
    try:
        parsed = Version(version)
    except InvalidVersion:
        parsed = None
    if parsed is None or parsed.epoch or parsed.local:
        raise ConfigError(
            f"--version is {version!r}: give an MLflow release such as "
            f"{default_version()} (see https://pypi.org/project/mlflow/#history)."
        )
    return str(parsed)


def default_version() -> str:
    """The release the box's server runs unless told otherwise: the one its lock holds,
    which is the controller's locked MLflow client (a test keeps the two equal)."""
    return locks.box_lock(locks.MLFLOW_SERVER).version_of("mlflow")


def s3_artifacts(bucket: str) -> str:
    if not _BUCKET.fullmatch(bucket):
        raise ConfigError(f"The artifact bucket name {bucket!r} is not a valid S3 bucket name.")
    return f"s3://{bucket}/mlflow"


def server_args(spec: ServerSpec) -> list[str]:
    """`mlflow server`'s argv: no backend store URI (it comes from the environment file)."""
    args = [
        f"{spec.venv}/bin/mlflow",
        "server",
        "--host",
        BIND_HOST,
        "--port",
        str(spec.port),
        "--workers",
        str(spec.workers),
        "--serve-artifacts",
        "--artifacts-destination",
        spec.artifacts,
    ]
    return args


def store_env_file(backend: str) -> str:
    """The env file that holds the backend store's URI: the server's own, or with RDS the
    one its start step writes."""
    return RDS_ENV_FILE if backend == "rds" else ENV_FILE


def start_step(spec: ServerSpec) -> str:
    """The RDS start step: the agent's `rds-env`, run by the MLflow venv's Python (it has
    boto3). The unit names this version's agent bundle, which must be on the box."""
    return agent.unit_command("rds-env", RDS_CONFIG, RDS_ENV_FILE, python=spec.python)


def render_unit(spec: ServerSpec) -> str:
    return templates.render(
        TEMPLATE,
        version=spec.version,
        user=MLFLOW_USER,
        env_file=ENV_FILE,
        data_dir=DATA_DIR,
        exec_start=" ".join(server_args(spec)),
        start_step=start_step(spec) if spec.backend == "rds" else "",
        rds_env_file=RDS_ENV_FILE,
    )


def render_rds_config(db: Database) -> str:
    """The database's coordinates for the start step: nothing secret (no user, no password)."""
    return json.dumps(dataclasses.asdict(db), indent=2, sort_keys=True) + "\n"


def render_state(spec: ServerSpec) -> str:
    """The state file: what this install was asked for, as `mlflow.status` shows it."""
    state = {
        "version": spec.version,
        "backend": spec.backend,
        "artifacts": spec.artifacts,
        "listen": f"{BIND_HOST}:{spec.port}",
        "python": spec.python,
    }
    return json.dumps(state, indent=2, sort_keys=True) + "\n"


def installed_python(state: dict[str, object]) -> str:
    """The Python of the server the state file describes (its MLflow client resolves
    models, reads the store). A state written before locks names only the version."""
    return str(state.get("python") or f"{VENV_ROOT}/{state['version']}/bin/python")


def render_env(spec: ServerSpec) -> str:
    """The server's EnvironmentFile: the SQLite store's URI (with RDS none: the start step
    writes the URI, password included, into a file of its own at every start), and the
    server's own settings (SERVER_SETTINGS)."""
    values = {} if spec.backend == "rds" else {URI_KEY: sqlite_uri()}
    values.update(SERVER_SETTINGS)
    lines = ["# Written by mlops-box (`fab mlflow.install`); read by systemd for mlflow.service."]
    try:
        lines += [env_file_line(key, value) for key, value in values.items()]
    except ValueError as exc:
        raise ConfigError(f"Cannot write the MLflow environment file: {exc}.") from None
    return "\n".join(lines) + "\n"


def sqlite_uri(path: str = SQLITE_DB) -> str:
    return f"sqlite:///{path}"  # an absolute path gives sqlite:////var/...
