"""The box's security group: SSH from the allowed networks, and the TLS front door (443)
from httpsAllowedCidrs (none by default); nothing else inbound."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.config import Network
from remote.contract import FRONT_DOOR_PORT, SSH_PORT


@dataclass(frozen=True)
class BoxSecurityGroupArgs:
    vpc_id: pulumi.Input[str]
    ssh_allowed_cidrs: Sequence[Network]
    tags: dict[str, str]
    https_allowed_cidrs: Sequence[Network] = ()


class BoxSecurityGroup(pulumi.ComponentResource):
    """Security group of the box. Each rule is a resource of its own, so a rule can
    change (a new home IP) without replacing the group the instance uses."""

    def __init__(
        self, name: str, args: BoxSecurityGroupArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops-box:index:BoxSecurityGroup", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            description="mlops-box: SSH from the allowed networks only",
            vpc_id=args.vpc_id,
            tags={**args.tags, "Name": name},
            opts=child,
        )
        inbound = [("ssh", "SSH", SSH_PORT, n) for n in args.ssh_allowed_cidrs]
        # The front door's port, for `fab deploy.expose`: nginx there admits only TLS
        # clients with the box's bearer token.
        inbound += [
            ("https", "HTTPS front door (fab deploy.expose)", FRONT_DOOR_PORT, n)
            for n in args.https_allowed_cidrs
        ]
        for kind, description, port, network in inbound:
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-{kind}-{_slug(network)}",
                security_group_id=self.group.id,
                description=description,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                cidr_ipv4=str(network) if network.version == 4 else None,
                cidr_ipv6=str(network) if network.version == 6 else None,
                tags=args.tags,
                opts=child,
            )
        # The box installs packages and talks to S3; the provider drops AWS's implicit
        # allow-all egress, so it is declared here.
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-egress-ipv4",
            security_group_id=self.group.id,
            description="All outbound",
            ip_protocol="-1",
            cidr_ipv4="0.0.0.0/0",
            tags=args.tags,
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-egress-ipv6",
            security_group_id=self.group.id,
            description="All outbound",
            ip_protocol="-1",
            cidr_ipv6="::/0",
            tags=args.tags,
            opts=child,
        )
        self.register_outputs({"security_group_id": self.group.id})


def _slug(network: Network) -> str:
    return str(network).replace(".", "-").replace(":", "-").replace("/", "-")
