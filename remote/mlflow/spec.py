"""What the MLflow server on the box should look like: paths, arguments and files, as text.

Pure functions only (no SSH): `ServerSpec` says what is wanted, and the renderers turn
it into the systemd unit, the environment file and the state file (what was installed,
read back by `mlflow.status`) that `remote.mlflow.server` then puts on the box.

The server listens on 127.0.0.1 only. Clients elsewhere reach it through an SSH tunnel
(`fab mlflow.ui`) or, opted in, the TLS front door (`fab deploy.expose`), whose bearer
token is the one credential: MLflow's own basic auth would need the same Authorization
header, which a client can fill with only one of the two.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from remote import contract
from remote.errors import ConfigError
from remote.system import templates

BACKENDS = ("sqlite", "rds")
MLFLOW_USER = "mlflow"
VENV_ROOT = "/opt/mlflow/venvs"
DATA_DIR = contract.MLFLOW_DATA_DIR
SQLITE_DB = contract.MLFLOW_SQLITE_DB
LOCAL_ARTIFACTS = f"{DATA_DIR}/artifacts"
CONFIG_DIR = contract.MLFLOW_CONFIG_DIR
ENV_FILE = contract.MLFLOW_ENV_FILE
# What was installed, for `mlflow.status`: written with the unit, never parsed out of it.
STATE_FILE = f"{CONFIG_DIR}/server.json"
UNIT_NAME = contract.MLFLOW_UNIT
UNIT_FILE = f"/etc/systemd/system/{UNIT_NAME}"
DEFAULT_PORT = contract.MLFLOW_PORT
DEFAULT_WORKERS = 2
BIND_HOST = "127.0.0.1"
# Written into a venv once pip succeeded: a half-made venv is never taken as installed.
READY_MARKER = ".mlops-box-ready"
TEMPLATE = "mlflow.service.j2"
# Inside double quotes systemd's EnvironmentFile= takes a backslash only before these.
_NEED_ESCAPE = '"\\`$'
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
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
        return f"{VENV_ROOT}/{self.version}"

    @property
    def python(self) -> str:
        return f"{self.venv}/bin/python"

    @property
    def requirements(self) -> tuple[str, ...]:
        """What pip installs into the venv (also the ready marker's content)."""
        extra = []
        if self.backend == "rds":
            extra.append("psycopg2-binary")
        if self.artifacts.startswith("s3://"):
            extra.append("boto3")
        return (f"mlflow=={self.version}", *extra)


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
            f"{controller_version() or '3.1.0'} (see https://pypi.org/project/mlflow/#history)."
        )
    return str(parsed)


def controller_version() -> str | None:
    """The MLflow version installed on this machine (mlflow-skinny or mlflow), if any."""
    for dist in ("mlflow-skinny", "mlflow"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


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


def render_unit(spec: ServerSpec) -> str:
    return templates.render(
        TEMPLATE,
        version=spec.version,
        user=MLFLOW_USER,
        env_file=ENV_FILE,
        data_dir=DATA_DIR,
        exec_start=" ".join(server_args(spec)),
    )


def render_state(spec: ServerSpec) -> str:
    """The state file: what this install was asked for, as `mlflow.status` shows it."""
    state = {
        "version": spec.version,
        "backend": spec.backend,
        "artifacts": spec.artifacts,
        "listen": f"{BIND_HOST}:{spec.port}",
    }
    return json.dumps(state, indent=2, sort_keys=True) + "\n"


def env_file_line(key: str, value: str) -> str:
    """One systemd EnvironmentFile line, `KEY="value"`, that reads back as exactly `value`.

    Double quotes keep spaces, `#`, `;`, `'` and `%` literal (an EnvironmentFile has no
    specifiers and no variable expansion); inside them a backslash is needed, and used,
    only before `"`, `\\`, `` ` `` and `$`. Newlines, carriage returns and NULs are refused:
    the file is line-oriented and no store URI needs them. No trailing newline.
    """
    if not _ENV_NAME.fullmatch(key):
        raise ValueError(f"{key!r} is not a valid environment variable name")
    if any(ch in value for ch in "\n\r\0"):
        raise ValueError(f"the value of {key} contains a newline, carriage return or NUL")
    escaped = "".join("\\" + ch if ch in _NEED_ESCAPE else ch for ch in value)
    return f'{key}="{escaped}"'


def render_env(store_uri: str) -> str:
    """The EnvironmentFile: the backend store URI (a secret with RDS), root-only."""
    lines = ["# Written by mlops-box (`fab mlflow.install`); read by systemd for mlflow.service."]
    try:
        lines.append(env_file_line("MLFLOW_BACKEND_STORE_URI", store_uri))
    except ValueError as exc:
        raise ConfigError(f"Cannot write the MLflow environment file: {exc}.") from None
    return "\n".join(lines) + "\n"


def sqlite_uri(path: str = SQLITE_DB) -> str:
    return f"sqlite:///{path}"  # an absolute path gives sqlite:////var/...
