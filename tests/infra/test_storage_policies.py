"""The artifact bucket, checked in moto's S3."""

from __future__ import annotations

import json

import boto3

from tests.infra.conftest import REGION, Deploy


def test_artifact_bucket_is_private_encrypted_versioned_owner_enforced(deploy: Deploy) -> None:
    bucket = deploy().exports["artifactBucket"]
    s3 = boto3.client("s3", region_name=REGION)
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert rule["BucketKeyEnabled"] is True
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    ownership = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert ownership == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_artifact_bucket_refuses_plain_http(deploy: Deploy) -> None:
    bucket = deploy().exports["artifactBucket"]
    policy = json.loads(
        boto3.client("s3", region_name=REGION).get_bucket_policy(Bucket=bucket)["Policy"]
    )
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert set(statement["Resource"]) == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}


def test_the_box_names_its_bucket_in_its_tags(deploy: Deploy) -> None:
    """The fab tasks find the wiring from AWS alone, starting from the tagged instance."""
    exports = deploy().exports
    ec2 = boto3.client("ec2", region_name=REGION)
    (reservation,) = ec2.describe_instances(InstanceIds=[exports["instanceId"]])["Reservations"]
    tags = {t["Key"]: t["Value"] for t in reservation["Instances"][0]["Tags"]}
    assert tags["mlops-box:artifact-bucket"] == exports["artifactBucket"]
    assert tags["mlops-box:mlflow-backend"] == "sqlite"
    assert "mlops-box:db-instance" not in tags
