"""What the MLflow server on the box should look like: paths, arguments and files, as text.

Pure functions only (no SSH): `ServerSpec` says what is wanted, and the renderers turn
it into the systemd unit, the environment file and the basic-auth config that
`remote.mlflow_server.install` then puts on the box.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.metadata
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from remote.errors import ConfigError
from remote.mlflow_backend import SqliteStore, env_file_line

BACKENDS = ("sqlite", "rds")
MLFLOW_USER = "mlflow"
VENV_ROOT = "/opt/mlflow/venvs"
DATA_DIR = "/var/lib/mlflow"
SQLITE_DB = f"{DATA_DIR}/mlflow.db"
LOCAL_ARTIFACTS = f"{DATA_DIR}/artifacts"
AUTH_DB = f"{DATA_DIR}/basic_auth.db"
CONFIG_DIR = "/etc/mlflow"
ENV_FILE = f"{CONFIG_DIR}/mlflow.env"
AUTH_CONFIG = f"{CONFIG_DIR}/basic_auth.ini"
UNIT_NAME = "mlflow.service"
UNIT_FILE = f"/etc/systemd/system/{UNIT_NAME}"
DEFAULT_PORT = 5000
DEFAULT_WORKERS = 2
ADMIN_USER = "admin"
# Written into a venv once pip succeeded: a half-made venv is never taken as installed.
READY_MARKER = ".mlops-box-ready"
TEMPLATE = Path(__file__).with_name("templates") / "mlflow.service.j2"

# A PEP 440 release as people type it: 3.17.2, 3.0.0rc1, 2.22.1.post1.
_VERSION = re.compile(r"\d+(\.\d+){0,3}((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?")
_HOST = re.compile(r"[A-Za-z0-9*.:\[\]-]+")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class ServerSpec:
    """The wanted MLflow server: version, backend, artifact store and exposure."""

    version: str
    backend: str = "sqlite"
    # s3://<bucket>/mlflow on AWS, else a directory on the box.
    artifacts: str = LOCAL_ARTIFACTS
    public: bool = False
    allowed_hosts: tuple[str, ...] = ()
    port: int = DEFAULT_PORT
    workers: int = DEFAULT_WORKERS

    def __post_init__(self) -> None:
        check_version(self.version)
        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend is {self.backend!r}: use one of {', '.join(BACKENDS)}.")
        if not (self.artifacts.startswith("s3://") or self.artifacts.startswith("/")):
            raise ConfigError(f"The artifact store {self.artifacts!r} is not s3:// or a path.")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"The MLflow port {self.port} is not a TCP port.")
        for host in self.allowed_hosts:
            if not _HOST.fullmatch(host):
                raise ConfigError(
                    f"--allowed-hosts has {host!r}: give host names or addresses, "
                    "comma-separated (with an optional :port)."
                )
        if self.public and not self.allowed_hosts:
            raise ConfigError("--public needs the host names clients will use (allowed hosts).")

    @property
    def venv(self) -> str:
        return f"{VENV_ROOT}/{self.version}"

    @property
    def python(self) -> str:
        return f"{self.venv}/bin/python"

    @property
    def bind_host(self) -> str:
        return "0.0.0.0" if self.public else "127.0.0.1"

    @property
    def requirements(self) -> tuple[str, ...]:
        """What pip installs into the venv (also the ready marker's content)."""
        extra = []
        if self.backend == "rds":
            extra.append("psycopg2-binary")
        if self.artifacts.startswith("s3://"):
            extra.append("boto3")
        # basic-auth's CSRF checks need Flask-WTF, which only the `auth` extra brings.
        mlflow = f"mlflow[auth]=={self.version}" if self.public else f"mlflow=={self.version}"
        return (mlflow, *extra)


def check_version(version: str) -> str:
    if not _VERSION.fullmatch(version):
        raise ConfigError(
            f"--version is {version!r}: give an MLflow release such as "
            f"{controller_version() or '3.1.0'} (see https://pypi.org/project/mlflow/#history)."
        )
    return version


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
        spec.bind_host,
        "--port",
        str(spec.port),
        "--workers",
        str(spec.workers),
        "--serve-artifacts",
        "--artifacts-destination",
        spec.artifacts,
    ]
    if spec.public:
        args += ["--app-name", "basic-auth", "--allowed-hosts", ",".join(allowed_hosts(spec))]
    return args


def allowed_hosts(spec: ServerSpec) -> list[str]:
    """The Host headers MLflow accepts: the given names (bare and with the port), and the
    loopback names the SSH tunnel and the health check use."""
    hosts: list[str] = []
    for host in spec.allowed_hosts:
        hosts.append(host)
        if ":" not in host.rsplit("]", 1)[-1]:  # no port given: also accept ours
            hosts.append(f"{host}:{spec.port}")
    hosts += ["localhost", f"localhost:{spec.port}", "127.0.0.1", f"127.0.0.1:{spec.port}"]
    return list(dict.fromkeys(hosts))


def render_unit(spec: ServerSpec) -> str:
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    template = env.from_string(TEMPLATE.read_text())
    return template.render(
        version=spec.version,
        user=MLFLOW_USER,
        env_file=ENV_FILE,
        data_dir=DATA_DIR,
        exec_start=" ".join(server_args(spec)),
    )


def render_env(spec: ServerSpec, store_uri: str, admin_password: str | None = None) -> str:
    """The EnvironmentFile: the backend store URI, and basic auth's settings with --public."""
    values = {"MLFLOW_BACKEND_STORE_URI": store_uri}
    if spec.public:
        if not admin_password:
            raise ConfigError("--public needs an admin password for MLflow's basic auth.")
        values["MLFLOW_AUTH_CONFIG_PATH"] = AUTH_CONFIG
        values["MLFLOW_AUTH_ADMIN_USERNAME"] = ADMIN_USER
        values["MLFLOW_AUTH_ADMIN_PASSWORD"] = admin_password
        # basic-auth's CSRF protection signs with this; derived, so a re-install is a no-op.
        values["MLFLOW_FLASK_SERVER_SECRET_KEY"] = hmac.new(
            admin_password.encode(), b"mlops-box flask secret key", hashlib.sha256
        ).hexdigest()
    lines = ["# Written by mlops-box (`fab mlflow.install`); read by systemd for mlflow.service."]
    try:
        lines += [env_file_line(key, value) for key, value in values.items()]
    except ValueError as exc:
        raise ConfigError(f"Cannot write the MLflow environment file: {exc}.") from None
    return "\n".join(lines) + "\n"


def render_auth_config() -> str:
    """basic-auth's ini; the admin's password is in the environment file, not here."""
    return (
        "# Written by mlops-box (`fab mlflow.install --public`).\n"
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{AUTH_DB}\n"
        f"admin_username = {ADMIN_USER}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )


def sqlite_uri(path: str = SQLITE_DB) -> str:
    return SqliteStore(path).uri()
