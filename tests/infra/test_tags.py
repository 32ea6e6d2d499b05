"""Every taggable resource carries Project and Stack: the fab tasks find things by them."""

from __future__ import annotations

import inspect

import boto3
import pulumi_aws as aws
import pytest

from tests.infra.conftest import REGION, Deploy

EXPECTED = {"Project": "mlops-box", "Stack": "dev"}


def resource_class(typ: str) -> type:
    """aws:ec2/keyPair:KeyPair -> pulumi_aws.ec2.KeyPair."""
    module, name = typ.split(":")[1].split("/")[0], typ.split(":")[2]
    return getattr(getattr(aws, module), name)


def accepts_tags(typ: str) -> bool:
    return "tags" in inspect.signature(resource_class(typ)._internal_init).parameters


@pytest.mark.parametrize("backend", ["sqlite", "rds"])
def test_every_taggable_resource_is_declared_with_the_tags(deploy: Deploy, backend: str) -> None:
    deployment = deploy(mlflowBackend=backend, elasticIp=True)
    taggable = [d for d in deployment.mocks.declared if accepts_tags(d.typ)]
    assert len(taggable) >= 8
    for declared in taggable:
        tags = declared.inputs.get("tags", {})
        assert EXPECTED.items() <= tags.items(), f"{declared.typ} {declared.name} lacks tags"


def test_tags_reach_aws(deploy: Deploy) -> None:
    exports = deploy(mlflowBackend="rds").exports
    ec2 = boto3.client("ec2", region_name=REGION)
    (reservation,) = ec2.describe_instances(InstanceIds=[exports["instanceId"]])["Reservations"]
    instance = reservation["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert EXPECTED.items() <= tags.items() and tags["Name"] == "mlops-zoomcamp"
    volume_id = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    assert EXPECTED.items() <= {t["Key"]: t["Value"] for t in volume["Tags"]}.items()
    bucket_tags = boto3.client("s3", region_name=REGION).get_bucket_tagging(
        Bucket=exports["artifactBucket"]
    )["TagSet"]
    assert EXPECTED.items() <= {t["Key"]: t["Value"] for t in bucket_tags}.items()
    rds = boto3.client("rds", region_name=REGION)
    (db,) = rds.describe_db_instances()["DBInstances"]
    db_tags = rds.list_tags_for_resource(ResourceName=db["DBInstanceArn"])["TagList"]
    assert EXPECTED.items() <= {t["Key"]: t["Value"] for t in db_tags}.items()
