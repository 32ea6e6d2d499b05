"""The optional RDS backend: created exactly when asked for, private, and wired to the box."""

from __future__ import annotations

import boto3

from tests.infra.conftest import REGION, Deploy
from tests.infra.moto_mocks import policy_document

RDS_TYPES = {
    "aws:rds/instance:Instance",
    "aws:rds/subnetGroup:SubnetGroup",
}


def the_db() -> dict:
    (db,) = boto3.client("rds", region_name=REGION).describe_db_instances()["DBInstances"]
    return db


def test_sqlite_backend_creates_no_database_resources(deploy: Deploy) -> None:
    deployment = deploy(mlflowBackend="sqlite")
    assert not RDS_TYPES & {d.typ for d in deployment.mocks.declared}
    assert boto3.client("rds", region_name=REGION).describe_db_instances()["DBInstances"] == []
    # Only the box's own group: no database group waiting for a database.
    groups = boto3.client("ec2", region_name=REGION).describe_security_groups()["SecurityGroups"]
    assert [g["Description"] for g in groups if g["GroupName"] != "default"] == [
        "mlops-box: SSH from the allowed networks only"
    ]


def test_rds_backend_is_private_encrypted_backed_up_and_protected(deploy: Deploy) -> None:
    deployment = deploy(mlflowBackend="rds")
    db = the_db()
    assert db["Engine"] == "postgres"
    assert db["EngineVersion"].split(".")[0] == "16"
    assert (db["DBName"], db["MasterUsername"]) == ("mlflow", "mlflow")
    assert db["PubliclyAccessible"] is False
    assert db["StorageEncrypted"] is True
    assert db["BackupRetentionPeriod"] == 7
    assert db["DeletionProtection"] is True
    assert db["CopyTagsToSnapshot"] is True
    assert len(db["DBSubnetGroup"]["Subnets"]) >= 2
    # With its own subnet group the database is private by AWS's default too, and minor
    # (security) upgrades are on by default; the program states both so that no default
    # is relied on.
    (declared,) = deployment.declared("aws:rds/instance:Instance")
    assert declared.inputs["publiclyAccessible"] is False
    assert declared.inputs["autoMinorVersionUpgrade"] is True


def test_deletion_protection_is_configurable(deploy: Deploy) -> None:
    deploy(mlflowBackend="rds", dbDeletionProtection=False, dbSkipFinalSnapshot=True)
    assert the_db()["DeletionProtection"] is False


def test_master_password_is_managed_by_aws_never_a_literal(deploy: Deploy) -> None:
    deployment = deploy(mlflowBackend="rds")
    (declared,) = deployment.declared("aws:rds/instance:Instance")
    assert declared.inputs["manageMasterUserPassword"] is True
    assert "password" not in declared.inputs and "passwordWo" not in declared.inputs
    secret_arn = the_db()["MasterUserSecret"]["SecretArn"]
    assert deployment.exports["dbSecretArn"] == secret_arn
    secret = boto3.client("secretsmanager", region_name=REGION).describe_secret(SecretId=secret_arn)
    assert secret["ARN"] == secret_arn


def test_postgres_is_reachable_only_from_the_box_group(deploy: Deploy) -> None:
    deployment = deploy(mlflowBackend="rds")
    ec2 = boto3.client("ec2", region_name=REGION)
    (reservation,) = ec2.describe_instances(InstanceIds=[deployment.exports["instanceId"]])[
        "Reservations"
    ]
    (box_group,) = reservation["Instances"][0]["SecurityGroups"]
    (db_group,) = the_db()["VpcSecurityGroups"]
    (permission,) = ec2.describe_security_groups(GroupIds=[db_group["VpcSecurityGroupId"]])[
        "SecurityGroups"
    ][0]["IpPermissions"]
    assert (permission["FromPort"], permission["ToPort"]) == (5432, 5432)
    assert permission["IpRanges"] == [] and permission.get("Ipv6Ranges", []) == []
    assert [p["GroupId"] for p in permission["UserIdGroupPairs"]] == [box_group["GroupId"]]


def box_role_statements() -> list[dict]:
    iam = boto3.client("iam", region_name=REGION)
    (role,) = [r for r in iam.list_roles()["Roles"] if r["RoleName"].startswith("mlops-zoomcamp")]
    (policy_name,) = iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
    document = policy_document(
        iam.get_role_policy(RoleName=role["RoleName"], PolicyName=policy_name)["PolicyDocument"]
    )
    return list(document["Statement"])


def grants_secrets(statement: dict) -> bool:
    actions = statement["Action"]
    actions = [actions] if isinstance(actions, str) else actions
    return any(a == "*" or a.lower().startswith("secretsmanager:") for a in actions)


def test_box_role_reads_only_the_database_secret(deploy: Deploy) -> None:
    """The box reads this secret itself when MLflow starts: the role may read it and
    describe it, nothing else, and no other secret (moto cannot evaluate this resource
    scope, so the document itself is checked)."""
    deployment = deploy(mlflowBackend="rds")
    secret_statements = [s for s in box_role_statements() if grants_secrets(s)]
    assert [s["Resource"] for s in secret_statements] == [deployment.exports["dbSecretArn"]]
    assert [s["Effect"] for s in secret_statements] == ["Allow"]
    assert set(secret_statements[0]["Action"]) <= {
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
    }


def test_without_a_database_the_box_role_reads_no_secret(deploy: Deploy) -> None:
    deploy(mlflowBackend="sqlite")
    assert not [s for s in box_role_statements() if grants_secrets(s)]


def test_database_wiring_is_discoverable_from_the_instance_tags(deploy: Deploy) -> None:
    exports = deploy(mlflowBackend="rds").exports
    ec2 = boto3.client("ec2", region_name=REGION)
    (reservation,) = ec2.describe_instances(InstanceIds=[exports["instanceId"]])["Reservations"]
    tags = {t["Key"]: t["Value"] for t in reservation["Instances"][0]["Tags"]}
    assert tags["mlops-box:mlflow-backend"] == "rds"
    (db,) = boto3.client("rds", region_name=REGION).describe_db_instances(
        DBInstanceIdentifier=tags["mlops-box:db-instance"]
    )["DBInstances"]
    assert db["MasterUserSecret"]["SecretArn"] == exports["dbSecretArn"]
    assert exports["dbEndpoint"] == f"{db['Endpoint']['Address']}:{db['Endpoint']['Port']}"
