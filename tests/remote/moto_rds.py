"""Seed moto with what `pulumi up` makes for the rds backend: a tagged box and its RDS.

Used by tests/remote (find_rds_store on moto) and by box tests that point the real local
box at a real PostgreSQL: moto's RDS endpoint is a made-up hostname, not a server, so such
a test takes the database find_rds_store returns and replaces only host and port with the
real server's (`dataclasses.replace(db, host=..., port=...)`); the secret holding the user
and password is still moto's, which the box reads as in production.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3

from remote.providers.base import Database
from tests.remote.conftest import BOX_NAME, REGION, STACK, SeededBox, seed_box

DB_INSTANCE_ID = "mlops-test-mlflow-0a1b2c3"
# What the provider's database() gives for an RDS box: where it is, which secret.
EXAMPLE_DATABASE = Database(
    host="mlops.abc.eu-west-1.rds.amazonaws.com",
    port=5432,
    dbname="mlflow",
    instance="mlops-mlflow-0a1b",
    secret_arn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1-AbCd",
    region="eu-west-1",
)


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
    client: Callable[[str], Any] | None = None,
) -> SeededRds:
    """Inside an active `mock_aws()` (or through `client(service)`, a moto server's
    clients): the box tagged for rds, its RDS instance with an AWS-managed master
    password, and (if `password` is given) that secret set to
    {"username": username, "password": password}, as RDS itself stores it."""
    client = client or (lambda service: boto3.client(service, region_name=region))
    ec2: Any = client("ec2")
    rds: Any = client("rds")
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
        secrets: Any = client("secretsmanager")
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


def iam_user(policy: str) -> dict[str, str]:
    """A moto IAM user with `policy` as its only permission: its access key."""
    iam: Any = boto3.client("iam", region_name=REGION)
    name = f"user-{len(iam.list_users()['Users'])}"
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="only", PolicyDocument=policy)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
