"""Does the box's security group let a network reach the front door's port (443)?

The rule itself is the stack's: `pulumi up` makes one per entry of httpsAllowedCidrs.
This only reads the group, so `fab deploy.expose` can say whether clients in the network
it was given get through, and the command that lets them if not.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from remote.contract import FRONT_DOOR_PORT
from remote.providers.aws.security_group import box_security_group, describe_rule, ingress_rules
from remote.providers.base import AccessCheck
from remote.settings import BoxSettings

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import SecurityGroupRuleTypeDef


def front_door_access(
    ec2: EC2Client, settings: BoxSettings, cidr: ipaddress.IPv4Network
) -> AccessCheck:
    group_id = box_security_group(ec2, settings)
    admitting = [r for r in ingress_rules(ec2, group_id) if _admits(r, cidr)]
    if admitting:
        return AccessCheck(
            True,
            f"The box's security group {group_id} lets {cidr} reach port {FRONT_DOOR_PORT} "
            f"({describe_rule(admitting[0])}).",
        )
    return AccessCheck(
        False,
        f"The box's security group {group_id} does not let {cidr} reach port "
        f"{FRONT_DOOR_PORT} yet: the front door is ready, the firewall is closed.",
        follow_up=(
            f"Open it with `pulumi config set --path 'httpsAllowedCidrs[0]' {cidr} "
            f"--stack {settings.stack} && pulumi up`."
        ),
    )


def _admits(rule: SecurityGroupRuleTypeDef, cidr: ipaddress.IPv4Network) -> bool:
    """The rule opens the front door's port to every address of `cidr`."""
    protocol = rule.get("IpProtocol")
    port_ok = protocol == "-1" or (
        protocol == "tcp" and rule.get("FromPort", 0) <= FRONT_DOOR_PORT <= rule.get("ToPort", 0)
    )
    source = rule.get("CidrIpv4")
    return port_ok and source is not None and cidr.subnet_of(ipaddress.IPv4Network(source))
