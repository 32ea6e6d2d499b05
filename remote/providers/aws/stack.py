"""The stack's wiring, read from AWS: the box's artifact bucket and its RDS database.

`pulumi up` tags the instance with the names of its bucket and database
(`remote.contract.TAG_*`); these functions follow the tags, so nothing is ever read from
a saved file. The database's password is never read here: the box reads its RDS-managed
secret itself, with its instance role, when MLflow starts (remote/agent/mlflow/rds_secret.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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


def find_database(settings: BoxSettings) -> Database:
    """The RDS database `pulumi up` made for this box: its endpoint and its secret's ARN.

    box instance (by tags) -> tag mlops-box:db-instance -> DescribeDBInstances (endpoint,
    status, MasterUserSecret's ARN). No GetSecretValue: the box reads the secret.
    """
    sess = session(settings)
    with aws_errors("create AWS clients"):
        ec2: EC2Client = sess.client("ec2", config=RETRY_CONFIG)
        rds: RDSClient = sess.client("rds", config=RETRY_CONFIG)
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
    return Database(
        host=endpoint["Address"],
        port=int(endpoint.get("Port") or 5432),
        dbname=db.get("DBName") or DB_NAME,
        instance=db_id,
        secret_arn=arn,
        region=sess.region_name,
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
