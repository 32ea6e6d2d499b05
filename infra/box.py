"""The box itself: key pair, image, instance and, when asked for, an Elastic IP."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.config import BoxConfig
from remote.contract import TAG_NAME

# Canonical's account, which publishes the official Ubuntu images.
CANONICAL_OWNER_ID = "099720109477"
UBUNTU_2404_AMD64 = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"


@dataclass(frozen=True)
class BoxArgs:
    config: BoxConfig
    subnet_id: pulumi.Input[str]
    security_group_ids: list[pulumi.Input[str]]
    instance_profile: pulumi.Input[str]
    # Tags the fab tasks read to find the box's wiring (bucket, database) from AWS alone.
    wiring_tags: dict[str, pulumi.Input[str]]


class Box(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: BoxArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops-box:index:Box", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = args.config
        self.key_pair = aws.ec2.KeyPair(
            f"{name}-key",
            key_name_prefix=f"{config.box_name}-",
            public_key=config.ssh_public_key,
            tags=config.tags,
            opts=child,
        )
        self.instance = aws.ec2.Instance(
            f"{name}-instance",
            ami=config.ami or ubuntu_ami(child),
            instance_type=config.instance_type,
            subnet_id=args.subnet_id,
            vpc_security_group_ids=args.security_group_ids,
            associate_public_ip_address=True,
            iam_instance_profile=args.instance_profile,
            key_name=self.key_pair.key_name,
            # IMDSv2 only: a stolen-credential SSRF cannot use a plain GET. Tags in the
            # metadata let the box read its own wiring later without extra IAM rights.
            metadata_options=aws.ec2.InstanceMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=1,
                instance_metadata_tags="enabled",
            ),
            root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                volume_type="gp3",
                volume_size=config.volume_size_gb,
                encrypted=True,
                delete_on_termination=True,
                tags=config.tags,
            ),
            # `shutdown -h` on the box stops it (the idle check relies on that), never terminates.
            instance_initiated_shutdown_behavior="stop",
            tags={**config.tags, TAG_NAME: config.box_name, **args.wiring_tags},
            opts=child,
        )
        self.elastic_ip: aws.ec2.Eip | None = None
        if config.elastic_ip:
            self.elastic_ip = aws.ec2.Eip(
                f"{name}-eip",
                domain="vpc",
                instance=self.instance.id,
                tags={**config.tags, TAG_NAME: config.box_name},
                opts=child,
            )
        self.public_ip = self.elastic_ip.public_ip if self.elastic_ip else self.instance.public_ip
        self.public_dns = (
            self.elastic_ip.public_dns if self.elastic_ip else self.instance.public_dns
        )
        self.register_outputs({"instance_id": self.instance.id, "public_ip": self.public_ip})


def ubuntu_ami(opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
    """The latest Ubuntu 24.04 LTS amd64 image published by Canonical."""
    image = aws.ec2.get_ami_output(
        owners=[CANONICAL_OWNER_ID],
        most_recent=True,
        filters=[
            aws.ec2.GetAmiFilterArgs(name="name", values=[UBUNTU_2404_AMD64]),
            aws.ec2.GetAmiFilterArgs(name="architecture", values=["x86_64"]),
            aws.ec2.GetAmiFilterArgs(name="virtualization-type", values=["hvm"]),
        ],
        opts=pulumi.InvokeOutputOptions(parent=opts.parent),
    )
    return image.id
