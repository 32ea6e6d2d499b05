"""Seed moto with what `pulumi up` makes for the rds backend: a tagged box and its RDS.

Used by tests/remote (find_rds_store on moto) and by box tests that point the real local
box at a real PostgreSQL: moto's RDS endpoint is a made-up hostname, not a server, so such
a test takes the store find_rds_store returns and replaces only host and port with the
real server's (`dataclasses.replace(store, host=..., port=...)`); user, database name and
password still come from moto's RDS and Secrets Manager, as in production.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3

from tests.remote.conftest import BOX_NAME, REGION, STACK, SeededBox, seed_box

DB_INSTANCE_ID = "mlops-test-mlflow-0a1b2c3"


@dataclass(frozen=True)
class SeededRds:
    box: SeededBox
    db_instance_id: str
    secret_arn: str
    endpoint: str
    port: int


def seed_rds_box(
    *,
    username: str = "mlflow",
    password: str | None = None,
    dbname: str = "mlflow",
    name: str = BOX_NAME,
    stack: str = STACK,
    region: str = REGION,
    bucket: str = "mlops-test-artifacts",
    db_instance_id: str = DB_INSTANCE_ID,
) -> SeededRds:
    """Inside an active `mock_aws()`: the box tagged for rds, its RDS instance with an
    AWS-managed master password, and (if `password` is given) that secret set to
    {"username": username, "password": password}, as RDS itself stores it."""
    ec2: Any = boto3.client("ec2", region_name=region)
    rds: Any = boto3.client("rds", region_name=region)
    box = seed_box(ec2, name=name, stack=stack)
    db = rds.create_db_instance(
        DBInstanceIdentifier=db_instance_id,
        Engine="postgres",
        EngineVersion="16.3",
        DBInstanceClass="db.t4g.micro",
        AllocatedStorage=20,
        DBName=dbname,
        MasterUsername=username,
        ManageMasterUserPassword=True,
        Port=5432,
    )["DBInstance"]
    arn = db["MasterUserSecret"]["SecretArn"]
    if password is not None:
        secrets: Any = boto3.client("secretsmanager", region_name=region)
        secret = json.dumps({"username": username, "password": password})
        secrets.put_secret_value(SecretId=arn, SecretString=secret)
    ec2.create_tags(
        Resources=[box.instance_id],
        Tags=[
            {"Key": "mlops-box:mlflow-backend", "Value": "rds"},
            {"Key": "mlops-box:artifact-bucket", "Value": bucket},
            {"Key": "mlops-box:db-instance", "Value": db_instance_id},
        ],
    )
    endpoint = rds.describe_db_instances(DBInstanceIdentifier=db_instance_id)["DBInstances"][0]
    return SeededRds(
        box=box,
        db_instance_id=db_instance_id,
        secret_arn=arn,
        endpoint=endpoint["Endpoint"]["Address"],
        port=int(endpoint["Endpoint"]["Port"]),
    )
