"""What `pulumi up` creates for one ML box, in the order it depends on itself."""

import pulumi
import pulumi_aws as aws

from infra.box import Box, BoxArgs
from infra.config import load_config
from infra.database import MlflowDatabase, MlflowDatabaseArgs
from infra.identity import BoxRole, BoxRoleArgs
from infra.network import BoxSecurityGroup, BoxSecurityGroupArgs
from infra.storage import ArtifactBucket, ArtifactBucketArgs
from remote import contract

# Validated before anything is declared: a bad setting stops here, with nothing created.
config = load_config()
name = config.box_name

# The account's default VPC: a personal box needs no network of its own.
vpc = aws.ec2.get_vpc_output(default=True)
subnets = aws.ec2.get_subnets_output(
    filters=vpc.id.apply(
        lambda vpc_id: [
            aws.ec2.GetSubnetsFilterArgs(name="vpc-id", values=[vpc_id]),
            aws.ec2.GetSubnetsFilterArgs(name="default-for-az", values=["true"]),
        ]
    )
)
subnet_ids = subnets.ids.apply(sorted)

ssh = BoxSecurityGroup(
    name,
    BoxSecurityGroupArgs(
        vpc_id=vpc.id,
        ssh_allowed_cidrs=config.ssh_allowed_cidrs,
        https_allowed_cidrs=config.https_allowed_cidrs,
        tags=config.tags,
    ),
)
artifacts = ArtifactBucket(name, ArtifactBucketArgs(box_name=name, tags=config.tags))

database = None
if config.database is not None:
    database = MlflowDatabase(
        name,
        MlflowDatabaseArgs(
            box_name=name,
            settings=config.database,
            vpc_id=vpc.id,
            subnet_ids=subnet_ids,
            box_security_group_id=ssh.group.id,
            tags=config.tags,
        ),
    )

role = BoxRole(
    name,
    BoxRoleArgs(
        bucket_arn=artifacts.bucket.arn,
        db_secret_arn=database.secret_arn if database else None,
        tags=config.tags,
    ),
)

wiring: dict[str, pulumi.Input[str]] = {
    contract.TAG_MLFLOW_BACKEND: config.mlflow_backend,
    contract.TAG_ARTIFACT_BUCKET: artifacts.bucket.bucket,
}
if database:
    wiring[contract.TAG_DB_INSTANCE] = database.instance.identifier

box = Box(
    name,
    BoxArgs(
        config=config,
        subnet_id=subnet_ids.apply(lambda ids: ids[0]),
        security_group_ids=[ssh.group.id],
        instance_profile=role.profile.name,
        wiring_tags=wiring,
    ),
)

pulumi.export("boxName", name)
pulumi.export("instanceId", box.instance.id)
pulumi.export("publicIp", box.public_ip)
pulumi.export("publicDns", box.public_dns)
pulumi.export("sshUser", config.ssh_user)
pulumi.export("region", aws.get_region_output().region)
pulumi.export("artifactBucket", artifacts.bucket.bucket)
pulumi.export("mlflowBackend", config.mlflow_backend)
if database:
    pulumi.export("dbEndpoint", database.endpoint)
    pulumi.export("dbSecretArn", database.secret_arn)
