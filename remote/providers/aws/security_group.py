"""Let this machine, and only this machine, reach the box's SSH port.

The home IP changes; `pulumi up` with a new sshAllowedCidrs is the lasting fix, and
`fab box.allow-my-ip` the quick one: it sets the SSH rules of the box's security group to
exactly this machine's public address. Pulumi sees that as drift, and its next `up` puts
sshAllowedCidrs back, so the caller prints `PULUMI_DRIFT_HINT`.
"""

from __future__ import annotations

import ipaddress
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from remote.contract import PROJECT, SSH_PORT, TAG_PROJECT, TAG_STACK
from remote.errors import ProviderError, PublicAddressError
from remote.providers.aws.instances import find_instance
from remote.providers.aws.session import aws_errors, ec2_client
from remote.providers.base import DEFAULT_ECHO_URL
from remote.settings import BoxSettings

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import SecurityGroupRuleTypeDef, SecurityGroupTypeDef

ECHO_TIMEOUT_S = 10
# An echo service answers with one address; anything longer is not one.
ECHO_MAX_BYTES = 100
RULE_DESCRIPTION = "SSH from this machine (fab box.allow-my-ip)"

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# What to do about a bad address, whichever source gave it.
PASS_IP = f"pass this machine's public address with --ip, e.g. --ip $(curl -s {DEFAULT_ECHO_URL})."


@dataclass(frozen=True)
class SshAccess:
    """What `allow_my_ip` did to the group's SSH rules."""

    group_id: str
    cidr: str
    added: bool
    revoked: tuple[str, ...] = ()
    # Rules that also admit SSH (wider port ranges, all traffic) but serve other ports
    # too, so they are reported rather than revoked.
    wider: tuple[str, ...] = field(default=())

    @property
    def changed(self) -> bool:
        return self.added or bool(self.revoked)

    def describe(self) -> str:
        if not self.changed:
            text = f"SSH to the box ({self.group_id}) is already allowed from {self.cidr} only."
        else:
            parts = [f"SSH to the box ({self.group_id}) is now allowed from {self.cidr} only"]
            if self.revoked:
                parts.append(f"removed {', '.join(self.revoked)}")
            text = "; ".join(parts) + "."
        if self.wider:
            text += f" Also still open to SSH, via wider rules: {', '.join(self.wider)}."
        return text


def pulumi_drift_hint(settings: BoxSettings, cidr: str) -> str:
    """Say that the next `pulumi up` undoes the change, and how to make it last."""
    return (
        f"Note: the next `pulumi up` resets SSH access to sshAllowedCidrs; to keep this, run "
        f"`pulumi config set --path 'sshAllowedCidrs[0]' {cidr} --stack {settings.stack}` "
        "(and drop other entries)."
    )


def allow_my_ip(
    settings: BoxSettings,
    ip: str | None,
    echo_url: str = DEFAULT_ECHO_URL,
    *,
    ec2: EC2Client | None = None,
) -> SshAccess:
    """Make the box's SSH rules exactly this machine's address (/32 or /128).

    The address is `ip` if given, else what `echo_url` answers; either must be a global
    unicast address, checked before any AWS call: the group admits traffic from the
    internet, so a private, loopback, multicast or unspecified address would only lock
    SSH out. The new rule is added before the old ones go, so a failure half-way never
    locks SSH out completely.
    """
    address = parse_address(ip, source="--ip") if ip else fetch_public_ip(echo_url)
    client = ec2 if ec2 is not None else ec2_client(settings)
    group_id = box_security_group(client, settings)
    family = "CidrIpv4" if address.version == 4 else "CidrIpv6"
    cidr = str(ipaddress.ip_network(address))
    rules = ingress_rules(client, group_id)

    ssh_rules = [r for r in rules if _is_ssh_only(r)]
    keep = [r for r in ssh_rules if r.get(family) == cidr]
    added = False
    if not keep:
        ranges: Any = {
            "IpRanges" if family == "CidrIpv4" else "Ipv6Ranges": [
                {family.replace("Ipv4", "Ip"): cidr, "Description": RULE_DESCRIPTION}
            ]
        }
        with aws_errors(f"allow SSH from {cidr} in {group_id}"):
            client.authorize_security_group_ingress(
                GroupId=group_id,
                IpPermissions=[
                    {"IpProtocol": "tcp", "FromPort": SSH_PORT, "ToPort": SSH_PORT, **ranges}
                ],
            )
        added = True
    keep_ids = {r["SecurityGroupRuleId"] for r in keep[:1]}
    # Duplicates of the kept rule go too: "exactly this address" means one rule.
    revoke = [r for r in ssh_rules if r["SecurityGroupRuleId"] not in keep_ids]
    if revoke:
        with aws_errors(f"remove the other SSH rules of {group_id}"):
            client.revoke_security_group_ingress(
                GroupId=group_id, SecurityGroupRuleIds=[r["SecurityGroupRuleId"] for r in revoke]
            )
    wider = [r for r in rules if _admits_ssh(r) and not _is_ssh_only(r)]
    return SshAccess(
        group_id=group_id,
        cidr=cidr,
        added=added,
        revoked=tuple(describe_rule(r) for r in revoke),
        wider=tuple(describe_rule(r) for r in wider),
    )


def parse_address(text: str, *, source: str) -> IpAddress:
    """Parse one global unicast IP address (a /32 or /128 suffix is accepted), naming
    `source` if bad."""
    value = text.strip()
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        network = None
    if network is None or network.num_addresses != 1:
        raise PublicAddressError(
            f"{source} gave {value[:60]!r}, which is not one IP address: {PASS_IP}"
        )
    address = network.network_address
    kind = not_public(address)
    if kind:
        said = "is" if source == "--ip" else "answered"
        raise PublicAddressError(
            f"{source} {said} {value}, which is not a public address ({kind}): {PASS_IP}"
        )
    return address


def not_public(address: IpAddress) -> str | None:
    """Why `address` cannot be a machine's address on the internet; None if it can be.

    `is_global` alone admits multicast (224.0.0.1 is "global") and IPv4-mapped IPv6.
    """
    for kind, test in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("multicast", address.is_multicast),
        ("link-local", address.is_link_local),
        ("reserved", address.is_reserved),
        ("private or special-purpose", not address.is_global),
    ):
        if test:
            return kind
    return None


def fetch_public_ip(echo_url: str, timeout_s: float = ECHO_TIMEOUT_S) -> IpAddress:
    """Ask an echo service (checkip.amazonaws.com by default) for this machine's address."""
    if not echo_url.startswith(("https://", "http://")):
        raise PublicAddressError(f"--echo-url {echo_url!r} is not an http(s) URL.")
    try:
        with urllib.request.urlopen(echo_url, timeout=timeout_s) as response:
            body = response.read(ECHO_MAX_BYTES + 1)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PublicAddressError(
            f"Could not ask {echo_url} for this machine's public address ({reason}): "
            "pass it with --ip."
        ) from None
    text = body.decode("utf-8", errors="replace")
    if len(body) > ECHO_MAX_BYTES:
        text = text[:ECHO_MAX_BYTES]
    return parse_address(text, source=echo_url)


def box_security_group(ec2: EC2Client, settings: BoxSettings) -> str:
    """The id of the box instance's security group that carries its SSH rules.

    Preferred: the group tagged Project=mlops-box and Stack=<stack> (what `pulumi up`
    made); else the only group of the instance with an SSH rule.
    """
    instance = find_instance(ec2, settings)
    group_ids = [g["GroupId"] for g in instance.get("SecurityGroups", []) if "GroupId" in g]
    if not group_ids:
        raise ProviderError(f"{instance['InstanceId']} has no security group to allow SSH in.")
    with aws_errors(f"read the security groups of {instance['InstanceId']}"):
        groups = ec2.describe_security_groups(GroupIds=group_ids)["SecurityGroups"]
    tagged = [g for g in groups if _is_ours(g, settings)]
    if len(tagged) == 1:
        return tagged[0]["GroupId"]
    candidates = tagged or groups
    with_ssh = [g for g in candidates if _group_admits_ssh(g)]
    if len(with_ssh) == 1:
        return with_ssh[0]["GroupId"]
    ids = ", ".join(g["GroupId"] for g in (with_ssh or candidates))
    raise ProviderError(
        f"Cannot tell which security group of {instance['InstanceId']} holds its SSH rule "
        f"(candidates: {ids}): tag the right one Project={PROJECT}, "
        f"Stack={settings.stack}, or run `pulumi up`."
    )


def _is_ours(group: SecurityGroupTypeDef, settings: BoxSettings) -> bool:
    tags = {t.get("Key"): t.get("Value") for t in group.get("Tags", [])}
    return tags.get(TAG_PROJECT) == PROJECT and tags.get(TAG_STACK) == settings.stack


def _group_admits_ssh(group: SecurityGroupTypeDef) -> bool:
    for perm in group.get("IpPermissions", []):
        protocol = perm.get("IpProtocol")
        if protocol == "-1":
            return True
        if protocol == "tcp" and perm.get("FromPort", 0) <= SSH_PORT <= perm.get("ToPort", 0):
            return True
    return False


def ingress_rules(ec2: EC2Client, group_id: str) -> Sequence[SecurityGroupRuleTypeDef]:
    """The group's inbound rules, one per source."""
    rules: list[SecurityGroupRuleTypeDef] = []
    with aws_errors(f"read the rules of {group_id}"):
        pages = ec2.get_paginator("describe_security_group_rules").paginate(
            Filters=[{"Name": "group-id", "Values": [group_id]}]
        )
        for page in pages:
            rules.extend(page.get("SecurityGroupRules", []))
    return [r for r in rules if not r.get("IsEgress") and r.get("GroupId") == group_id]


def _is_ssh_only(rule: SecurityGroupRuleTypeDef) -> bool:
    return (
        rule.get("IpProtocol") == "tcp"
        and rule.get("FromPort") == SSH_PORT
        and rule.get("ToPort") == SSH_PORT
    )


def _admits_ssh(rule: SecurityGroupRuleTypeDef) -> bool:
    if rule.get("IpProtocol") == "-1":
        return True
    return rule.get("IpProtocol") == "tcp" and (
        rule.get("FromPort", 0) <= SSH_PORT <= rule.get("ToPort", 0)
    )


def describe_rule(rule: SecurityGroupRuleTypeDef) -> str:
    source = (
        rule.get("CidrIpv4")
        or rule.get("CidrIpv6")
        or rule.get("PrefixListId")
        or rule.get("ReferencedGroupInfo", {}).get("GroupId")
        or "?"
    )
    protocol = "all traffic" if rule.get("IpProtocol") == "-1" else rule.get("IpProtocol")
    ports = "" if rule.get("IpProtocol") == "-1" else f" {rule.get('FromPort')}"
    if rule.get("FromPort") != rule.get("ToPort") and ports:
        ports += f"-{rule.get('ToPort')}"
    return f"{rule['SecurityGroupRuleId']} ({protocol}{ports} from {source})"
