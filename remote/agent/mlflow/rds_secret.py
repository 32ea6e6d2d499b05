"""MLflow's store URI for the RDS backend, from the database's secret, read by the box itself.

`rds-env CONFIG ENV_FILE` is mlflow.service's start step (ExecStartPre, as root): it
reads the database's coordinates from CONFIG (host, port, dbname, RDS instance, secret
ARN and region: nothing secret, written by the install), reads the secret with boto3's
standard credential chain (on EC2 the instance role, through the instance metadata
service; AWS_ENDPOINT_URL and the other standard variables are honoured), and writes
MLFLOW_BACKEND_STORE_URI into ENV_FILE (0600 root), which systemd then reads for the
server. So the password reaches the box from AWS only, at every start: a password that
RDS rotated is picked up by a restart. The install runs the same command before it
switches a server to a database, so both fail with the same sentences.

Run with the MLflow environment's Python (it has boto3). The password appears in no
answer, message or argv: only in ENV_FILE.
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass
from typing import Any

from ..system.envfile import env_file_line
from ..system.failure import AgentFailure
from ..system.files import write_text
from .store import URI_KEY, postgres_uri

KIND_CONFIG = "rds-config"
KIND_NO_BOTO3 = "no-driver"
KIND_NO_CREDENTIALS = "secret-no-credentials"
KIND_DENIED = "secret-denied"
KIND_MISSING = "secret-missing"
KIND_MALFORMED = "secret-malformed"
KIND_SECRET = "secret-error"
# The failures of reading the secret itself (the controller maps them to one error class).
SECRET_KINDS = (KIND_NO_CREDENTIALS, KIND_DENIED, KIND_MISSING, KIND_MALFORMED, KIND_SECRET)
# A start step must not hang the unit: a few quick tries, then a clear failure (systemd's
# Restart=on-failure tries again later).
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 10
MAX_ATTEMPTS = 3
_AGAIN = "then run `fab mlflow.install --backend rds` again"


@dataclass(frozen=True)
class Coordinates:
    """Where the database is and which secret holds its master user's credentials."""

    host: str
    port: int
    dbname: str
    instance: str
    secret_arn: str
    region: str


def write_env(config_path: str, env_path: str) -> dict[str, Any]:
    """Read the secret named in `config_path`; write the store URI into `env_path`."""
    db = read_config(config_path)
    user, password = parse_secret(read_secret(db), db)
    # User and password are URL-quoted; read_config refused control characters elsewhere.
    uri = postgres_uri(user, password, db.host, db.port, db.dbname)
    write_text(env_path, env_file_line(URI_KEY, uri) + "\n", mode=0o600, dir_mode=0o700)
    return {
        "message": f"Wrote the store URI of {user}@{db.host}:{db.port}/{db.dbname} "
        f"(password from {db.secret_arn}) to {env_path}."
    }


def read_config(path: str) -> Coordinates:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        db = Coordinates(
            host=data["host"],
            port=data["port"],
            dbname=data["dbname"],
            instance=data["instance"],
            secret_arn=data["secret_arn"],
            region=data["region"],
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AgentFailure(
            KIND_CONFIG,
            f"Cannot read the database coordinates in {path} ({type(exc).__name__}): "
            f"{_AGAIN} to rewrite them.",
        ) from None
    texts = (db.host, db.dbname, db.instance, db.secret_arn, db.region)
    if not all(isinstance(t, str) and t and t.isprintable() for t in texts) or not (
        isinstance(db.port, int) and 0 < db.port < 65536
    ):
        raise AgentFailure(KIND_CONFIG, f"{path} has an empty or mistyped field: {_AGAIN}.")
    return db


def read_secret(db: Coordinates) -> str:
    """The secret's string, read as the box's own AWS identity; AgentFailure with a kind."""
    try:
        boto3 = importlib.import_module("boto3")
        botocore_config = importlib.import_module("botocore.config")
        exceptions = importlib.import_module("botocore.exceptions")
    except ImportError:
        raise AgentFailure(
            KIND_NO_BOTO3, f"{sys.executable} has no boto3 to read the database secret: {_AGAIN}."
        ) from None
    config = botocore_config.Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
    )
    try:
        client = boto3.session.Session().client(
            "secretsmanager", region_name=db.region, config=config
        )
        answer = client.get_secret_value(SecretId=db.secret_arn)
    except exceptions.NoCredentialsError:
        raise AgentFailure(
            KIND_NO_CREDENTIALS,
            f"The box has no AWS credentials to read the database secret {db.secret_arn}: "
            "its instance role comes from the instance metadata service, so check that the "
            "instance has the stack's instance profile (`pulumi up` attaches it) and that "
            f"IMDS answers on the box, {_AGAIN}.",
        ) from None
    except exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 403:
            code = "AccessDenied"  # forbidden, whatever the body says (an endpoint policy...)
        raise AgentFailure(*secret_failure(code, db)) from None
    except exceptions.BotoCoreError as exc:  # endpoint unreachable, timeouts, bad answers
        raise AgentFailure(
            KIND_SECRET,
            f"The box cannot reach Secrets Manager in {db.region} to read the database secret "
            f"({type(exc).__name__}: {exc}): check the box's outbound HTTPS (security group "
            f"egress, DNS), {_AGAIN}.",
        ) from None
    secret = answer.get("SecretString")
    if not isinstance(secret, str):
        raise AgentFailure(KIND_MALFORMED, _malformed(db))
    return secret


def secret_failure(code: str, db: Coordinates) -> tuple[str, str]:
    """(kind, sentence) for an error code AWS answered GetSecretValue with."""
    arn, instance = db.secret_arn, db.instance
    if code in ("AccessDeniedException", "AccessDenied"):
        return KIND_DENIED, (
            f"The box's instance role may not read the database secret {arn} (AWS said "
            f"{code}): allow it secretsmanager:GetSecretValue on that secret (infra/identity.py "
            f"does; run `pulumi up`) and kms:Decrypt if the secret uses your own KMS key, "
            f"{_AGAIN}."
        )
    if code == "ResourceNotFoundException":
        return KIND_MISSING, (
            f"The database secret {arn} does not exist: let RDS manage the master password "
            f"again (`aws rds modify-db-instance --db-instance-identifier {instance} "
            f"--manage-master-user-password --apply-immediately`), {_AGAIN}."
        )
    if code == "InvalidRequestException":
        return KIND_MISSING, (
            f"The database secret {arn} is scheduled for deletion: restore it with "
            f"`aws secretsmanager restore-secret --secret-id {arn}`, {_AGAIN}."
        )
    if code == "DecryptionFailure":
        return KIND_DENIED, (
            f"AWS cannot decrypt the database secret {arn}: check that its KMS key is "
            f"enabled and that the box's instance role may use it (kms:Decrypt), {_AGAIN}."
        )
    return KIND_SECRET, f"Cannot read the database secret {arn}: AWS said {code}; {_AGAIN}."


def parse_secret(secret: str, db: Coordinates) -> tuple[str, str]:
    """(username, password) from the secret as RDS stores it; never shows its content."""
    try:
        data = json.loads(secret)
        username, password = data["username"], data["password"]
    except (ValueError, KeyError, TypeError):
        raise AgentFailure(KIND_MALFORMED, _malformed(db)) from None
    if not (isinstance(username, str) and username and isinstance(password, str) and password):
        raise AgentFailure(KIND_MALFORMED, _malformed(db))
    return username, password


def _malformed(db: Coordinates) -> str:
    return (
        f"The database secret {db.secret_arn} is not JSON with a username and a password: "
        f"let RDS manage it again (`aws rds modify-db-instance --db-instance-identifier "
        f"{db.instance} --manage-master-user-password --apply-immediately`), {_AGAIN}."
    )
