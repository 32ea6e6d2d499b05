"""Where MLflow keeps its runs: the backend store (SQLite on the box, or RDS PostgreSQL).

The controller side finds the store (from AWS, by the box's tags) and writes nothing; the
checks and the schema upgrade run on the box, through `remote/agent/mlflow_db.py`, because
only the box can reach a private RDS instance. The URI, password included, travels only
inside the root-only env file the MLflow server reads: never in argv, a log or a message.

Env file format: systemd EnvironmentFile lines, written by `env_file_line`.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from botocore.exceptions import ClientError
from fabric import Connection

from remote.agent import mlflow_db as agent
from remote.aws_session import RETRY_CONFIG, aws_errors, session
from remote.errors import (
    DatabaseAuthError,
    DatabaseError,
    DatabaseNotConfigured,
    DatabaseNotFound,
    DatabaseNotReady,
    DatabaseSecretError,
    DatabaseUnreachable,
    SchemaUpgradeError,
)
from remote.providers.aws import find_instance
from remote.settings import BoxSettings

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import InstanceTypeDef
    from mypy_boto3_rds import RDSClient
    from mypy_boto3_rds.type_defs import DBInstanceTypeDef
    from mypy_boto3_secretsmanager import SecretsManagerClient

TAG_BACKEND = "mlops-box:mlflow-backend"
TAG_ARTIFACT_BUCKET = "mlops-box:artifact-bucket"
TAG_DB_INSTANCE = "mlops-box:db-instance"
DEFAULT_SQLITE_PATH = "/var/lib/mlflow/mlflow.db"
DEFAULT_DB_NAME = "mlflow"  # infra/database.py DB_NAME
# Where the agent lives on the box: a copied file, run by the MLflow environment's Python.
AGENT_SOURCE = Path(agent.__file__)
AGENT_PATH = "/opt/mlflow/agent/mlflow_db.py"
AGENT_TIMEOUT_S = 600  # a schema upgrade of a big database can take minutes

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FAILURES: dict[int, type[DatabaseError]] = {
    agent.EXIT_UNREACHABLE: DatabaseUnreachable,
    agent.EXIT_AUTH: DatabaseAuthError,
    agent.EXIT_NO_DATABASE: DatabaseNotFound,
    agent.EXIT_UPGRADE: SchemaUpgradeError,
}


@dataclass(frozen=True)
class SqliteStore:
    """A SQLite file on the box."""

    path: str = DEFAULT_SQLITE_PATH

    def uri(self) -> str:
        return f"sqlite:///{self.path}"  # an absolute path gives sqlite:////var/...


@dataclass(frozen=True)
class PostgresStore:
    """A PostgreSQL database; the password stays out of repr() and every message."""

    host: str
    port: int
    dbname: str
    user: str
    password: str = field(repr=False)

    def uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user, password = quote(self.user, safe=""), quote(self.password, safe="")
        return f"postgresql+psycopg2://{user}:{password}@{host}:{self.port}/{self.dbname}"


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
    escaped = "".join("\\" + ch if ch in agent.SHELL_NEED_ESCAPE else ch for ch in value)
    return f'{key}="{escaped}"'


# -- from AWS -------------------------------------------------------------------------


def find_rds_store(settings: BoxSettings) -> PostgresStore:
    """The RDS database `pulumi up` made for this box, with its current master password.

    box instance (by tags) -> tag mlops-box:db-instance -> DescribeDBInstances (endpoint,
    status, MasterUserSecret) -> GetSecretValue -> {"username", "password"}.
    """
    if settings.provider != "aws":
        raise DatabaseNotConfigured(
            f"box.provider is {settings.provider}, which has no RDS database: use the sqlite "
            "backend, or set box.provider to aws."
        )
    sess = session(settings)
    with aws_errors("create AWS clients"):
        ec2: EC2Client = sess.client("ec2", config=RETRY_CONFIG)
        rds: RDSClient = sess.client("rds", config=RETRY_CONFIG)
        secrets: SecretsManagerClient = sess.client("secretsmanager", config=RETRY_CONFIG)
    instance = find_instance(ec2, settings)
    db_id = _tags(instance).get(TAG_DB_INSTANCE)
    if not db_id:
        backend = _tags(instance).get(TAG_BACKEND) or "sqlite"
        raise DatabaseNotConfigured(
            f"Box {settings.name} ({instance['InstanceId']}) was created with the {backend} "
            "MLflow backend and has no RDS database: run `pulumi config set mlflowBackend "
            "rds && pulumi up`, then retry."
        )
    db = _describe_db(rds, db_id, settings)
    status = db.get("DBInstanceStatus", "unknown")
    if status != "available":
        hint = (
            f"start it with `aws rds start-db-instance --db-instance-identifier {db_id}`"
            if status == "stopped"
            else "wait until it is (a new instance takes 5 to 15 minutes)"
        )
        raise DatabaseNotReady(
            f"RDS instance {db_id} is {status}, not available: {hint}, then retry."
        )
    endpoint = db.get("Endpoint") or {}
    if not endpoint.get("Address"):
        raise DatabaseNotReady(f"RDS instance {db_id} has no endpoint yet: wait, then retry.")
    arn = (db.get("MasterUserSecret") or {}).get("SecretArn")
    if not arn:
        raise DatabaseSecretError(
            f"RDS instance {db_id} has no AWS-managed master password: it must be created "
            "with manage_master_user_password (as infra/database.py does); run `pulumi up`."
        )
    username, password = _read_master_secret(secrets, arn, db_id)
    return PostgresStore(
        host=endpoint["Address"],
        port=int(endpoint.get("Port") or 5432),
        dbname=db.get("DBName") or DEFAULT_DB_NAME,
        user=username,
        password=password,
    )


def find_artifact_bucket(settings: BoxSettings) -> str | None:
    """The S3 bucket `pulumi up` made for MLflow's artifacts; None for the local box."""
    if settings.provider != "aws":
        return None
    with aws_errors("create an EC2 client"):
        ec2 = session(settings).client("ec2", config=RETRY_CONFIG)
    return _tags(find_instance(ec2, settings)).get(TAG_ARTIFACT_BUCKET) or None


def _tags(instance: InstanceTypeDef) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", []) if "Key" in t and "Value" in t}


def _describe_db(rds: RDSClient, db_id: str, settings: BoxSettings) -> DBInstanceTypeDef:
    with aws_errors(f"describe RDS instance {db_id}"):
        try:
            found: list[DBInstanceTypeDef] = rds.describe_db_instances(DBInstanceIdentifier=db_id)[
                "DBInstances"
            ]
        except rds.exceptions.DBInstanceNotFoundFault:
            found = []
    if not found:
        raise DatabaseNotFound(
            f"The box is tagged with RDS instance {db_id}, which does not exist in "
            f"{settings.region}: run `pulumi up` to create it again (or `pulumi config set "
            "mlflowBackend sqlite && pulumi up` to go without it)."
        )
    return found[0]


def _read_master_secret(secrets: SecretsManagerClient, arn: str, db_id: str) -> tuple[str, str]:
    with aws_errors(f"read the master password secret of {db_id}"):
        try:
            secret = secrets.get_secret_value(SecretId=arn)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "Unknown")
            raise DatabaseSecretError(_secret_failure(code, arn, db_id)) from None
    try:
        data = json.loads(secret.get("SecretString") or "")
        username, password = data["username"], data["password"]
        if not (isinstance(username, str) and isinstance(password, str) and password):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise DatabaseSecretError(
            f"The master password secret {arn} of RDS instance {db_id} is not JSON with a "
            "username and a password: let RDS manage it again with `aws rds modify-db-instance "
            f"--db-instance-identifier {db_id} --manage-master-user-password`."
        ) from None
    return username, password


def _secret_failure(code: str, arn: str, db_id: str) -> str:
    if code == "ResourceNotFoundException":
        return (
            f"The master password secret of RDS instance {db_id} ({arn}) does not exist: "
            f"recreate it with `aws rds modify-db-instance --db-instance-identifier {db_id} "
            "--manage-master-user-password --apply-immediately`."
        )
    if code in ("AccessDeniedException", "AccessDenied"):
        return (
            f"Your AWS identity may not read the master password secret {arn} of RDS "
            f"instance {db_id}: allow it secretsmanager:GetSecretValue (and kms:Decrypt on "
            "the secret's key)."
        )
    if code == "InvalidRequestException":
        return (
            f"The master password secret {arn} of RDS instance {db_id} is scheduled for "
            f"deletion: restore it with `aws secretsmanager restore-secret --secret-id {arn}`."
        )
    if code == "DecryptionFailure":
        return (
            f"AWS cannot decrypt the master password secret {arn} of RDS instance {db_id}: "
            "check that its KMS key is enabled and that you may use it (kms:Decrypt)."
        )
    return f"Cannot read the master password secret {arn} of RDS instance {db_id}: AWS said {code}."


# -- on the box -------------------------------------------------------------------------


def install_agent(conn: Connection) -> bool:
    """Copy the agent to AGENT_PATH (root-owned, 0644) unless it is there; return if changed."""
    source = AGENT_SOURCE.read_bytes()
    probe = conn.run(f"sha256sum {AGENT_PATH}", hide=True, warn=True)
    if probe.ok and probe.stdout.split()[:1] == [hashlib.sha256(source).hexdigest()]:
        return False
    staged = conn.run("mktemp", hide=True).stdout.strip()
    try:
        conn.put(io.BytesIO(source), remote=staged)
        conn.run(
            f"sudo -n install -D -o root -g root -m 0644 {shlex.quote(staged)} {AGENT_PATH}",
            hide=True,
        )
    finally:
        conn.run(f"rm -f {shlex.quote(staged)}", hide=True, warn=True)
    return True


def check_postgres(conn: Connection, env_file: str, python: str) -> None:
    """Connect, from the box, to the store named in `env_file`; DatabaseError if it cannot.

    `python` is the MLflow environment's interpreter on the box (it has sqlalchemy and
    psycopg2). Unreachable, refused password and missing database each get their class.
    """
    _run_agent(conn, "check", env_file, python)


def check_store(conn: Connection, store: PostgresStore | SqliteStore, python: str) -> None:
    """`check_postgres` for a store that is not in the env file yet (check before switching).

    The URI goes into a private temporary env file of the login user (mktemp: 0600), which
    the agent reads as root and which is removed afterwards.
    """
    staged = conn.run("mktemp", hide=True).stdout.strip()
    try:
        line = env_file_line(agent.URI_KEY, store.uri()) + "\n"
        conn.put(io.BytesIO(line.encode()), remote=staged)
        check_postgres(conn, staged, python)
    finally:
        conn.run(f"rm -f {shlex.quote(staged)}", hide=True, warn=True)


def upgrade_schema(conn: Connection, env_file: str, python: str) -> None:
    """Create or upgrade MLflow's schema in the store named in `env_file`, from the box.

    The same calls as `mlflow db upgrade`, without the URI in argv; it checks the
    connection first, so failures are the same classified DatabaseErrors.
    """
    _run_agent(conn, "upgrade", env_file, python)


def _run_agent(conn: Connection, command: str, env_file: str, python: str) -> str:
    install_agent(conn)
    argv = ["sudo", "-n", python, AGENT_PATH, command, "--env-file", env_file]
    result = conn.run(shlex.join(argv), hide=True, warn=True, timeout=AGENT_TIMEOUT_S)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    sentence = lines[-1].strip() if lines else ""
    if result.exited == agent.EXIT_OK:
        return sentence
    if result.exited in _FAILURES:
        raise _FAILURES[result.exited](sentence)
    if result.exited in (agent.EXIT_ENV_FILE, agent.EXIT_NO_DRIVER, agent.EXIT_DB_ERROR):
        raise DatabaseError(sentence)
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    last = errors[-1].strip() if errors else sentence or "no output"
    raise DatabaseError(
        f"The database agent failed on the box (`{python} {AGENT_PATH} {command}` exited "
        f"{result.exited}): {last}. Check that {python} exists (install MLflow first)."
    )
