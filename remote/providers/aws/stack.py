"""The stack's wiring, read from AWS: the box's artifact bucket and its RDS database.

`pulumi up` tags the instance with the names of its bucket and database
(`remote.contract.TAG_*`); these functions follow the tags, so nothing is ever read from
a saved file. The database's password is read from its RDS-managed secret.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from remote.contract import DB_NAME, TAG_ARTIFACT_BUCKET, TAG_DB_INSTANCE, TAG_MLFLOW_BACKEND
from remote.errors import (
    DatabaseNotConfigured,
    DatabaseNotFound,
    DatabaseNotReady,
    DatabaseSecretError,
)
from remote.providers.aws.instances import find_instance
from remote.providers.aws.session import RETRY_CONFIG, aws_errors, session
from remote.providers.base import Database
from remote.settings import BoxSettings

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import InstanceTypeDef
    from mypy_boto3_rds import RDSClient
    from mypy_boto3_rds.type_defs import DBInstanceTypeDef
    from mypy_boto3_secretsmanager import SecretsManagerClient


def find_database(settings: BoxSettings) -> Database:
    """The RDS database `pulumi up` made for this box, with its current master password.

    box instance (by tags) -> tag mlops-box:db-instance -> DescribeDBInstances (endpoint,
    status, MasterUserSecret) -> GetSecretValue -> {"username", "password"}.
    """
    sess = session(settings)
    with aws_errors("create AWS clients"):
        ec2: EC2Client = sess.client("ec2", config=RETRY_CONFIG)
        rds: RDSClient = sess.client("rds", config=RETRY_CONFIG)
        secrets: SecretsManagerClient = sess.client("secretsmanager", config=RETRY_CONFIG)
    instance = find_instance(ec2, settings)
    db_id = _tags(instance).get(TAG_DB_INSTANCE)
    if not db_id:
        backend = _tags(instance).get(TAG_MLFLOW_BACKEND) or "sqlite"
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
    return Database(
        host=endpoint["Address"],
        port=int(endpoint.get("Port") or 5432),
        dbname=db.get("DBName") or DB_NAME,
        user=username,
        password=password,
    )


def find_artifact_bucket(settings: BoxSettings) -> str | None:
    """The S3 bucket `pulumi up` made for MLflow's artifacts, if the box is tagged with one."""
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
