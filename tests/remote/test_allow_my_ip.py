"""`allow_my_ip`: the box's SSH rules become exactly this machine's address.

The echo service is a tiny http.server on 127.0.0.1: tests never ask the internet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from remote.errors import ProviderError, PublicAddressError
from remote.providers.aws.security_group import allow_my_ip, pulumi_drift_hint
from remote.settings import BoxSettings
from tests.remote.http_answer import Answering, answering

# Global unicast addresses: the only kind allow_my_ip accepts (the TEST-NET ranges
# such as 203.0.113.0/24, and 2001:db8::/32, are not "global").
PUBLIC_IP = "81.2.69.160"
MY_IP = "81.2.69.142"
MY_IPV6 = "2a02:8010:0:1::5"


@pytest.fixture
def echo() -> Iterator[Answering]:
    """A local stand-in for checkip.amazonaws.com."""
    with answering(f"{PUBLIC_IP}\n".encode()) as service:
        yield service


@pytest.fixture
def group_id(ec2: Any, seeded_box: Any) -> str:
    """The box's group with SSH open to the world and a /24, and HTTPS to the world."""
    group = str(seeded_box.group_id)
    ec2.revoke_security_group_ingress(
        GroupId=group,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "IpRanges": [{"CidrIp": "198.51.100.0/24"}],
            }
        ],
    )
    for port, cidr in ((22, "0.0.0.0/0"), (22, "1.2.3.0/24"), (443, "0.0.0.0/0")):
        ec2.authorize_security_group_ingress(
            GroupId=group,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": port,
                    "ToPort": port,
                    "IpRanges": [{"CidrIp": cidr}],
                }
            ],
        )
    return group


def ingress(ec2: Any, group_id: str) -> set[tuple[int, str]]:
    """(port, source) of every ingress rule of the group, as AWS reports them."""
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])[
        "SecurityGroupRules"
    ]
    return {
        (r["FromPort"], r.get("CidrIpv4") or r.get("CidrIpv6")) for r in rules if not r["IsEgress"]
    }


def test_ssh_is_narrowed_to_the_given_ip_and_other_ports_are_kept(
    ec2: Any, group_id: str, settings: BoxSettings
) -> None:
    access = allow_my_ip(settings, ip=MY_IP, echo_url="http://127.0.0.1:9/")

    assert ingress(ec2, group_id) == {(22, f"{MY_IP}/32"), (443, "0.0.0.0/0")}
    assert access.changed
    message = access.describe()
    assert f"({group_id}) is now allowed from {MY_IP}/32 only" in message
    assert "0.0.0.0/0" in message and "1.2.3.0/24" in message


def test_a_second_run_changes_nothing(ec2: Any, group_id: str, settings: BoxSettings) -> None:
    allow_my_ip(settings, ip=MY_IP, echo_url="http://127.0.0.1:9/")
    rules_before = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group_id]}]
    )["SecurityGroupRules"]

    again = allow_my_ip(settings, ip=MY_IP, echo_url="http://127.0.0.1:9/")

    rules_after = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group_id]}]
    )["SecurityGroupRules"]
    assert not again.changed
    assert f"already allowed from {MY_IP}/32 only" in again.describe()
    assert {r["SecurityGroupRuleId"] for r in rules_after} == {
        r["SecurityGroupRuleId"] for r in rules_before
    }


def test_the_address_comes_from_the_echo_url(
    ec2: Any, group_id: str, settings: BoxSettings, echo: Answering
) -> None:
    access = allow_my_ip(settings, ip=None, echo_url=echo.url)

    assert echo.requests == 1
    assert access.cidr == f"{PUBLIC_IP}/32"
    assert ingress(ec2, group_id) == {(22, f"{PUBLIC_IP}/32"), (443, "0.0.0.0/0")}


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ("<html>Service Unavailable</html>", "is not one IP address"),
        ("", "is not one IP address"),
        ("10.1.2.3\n", "10.1.2.3, which is not a public address"),
        ("198.51.100.0/24\n", "is not one IP address"),
        ("224.0.0.1\n", r"224.0.0.1, which is not a public address \(multicast\)"),
        ("0.0.0.0\n", r"0.0.0.0, which is not a public address \(unspecified\)"),
    ],
)
def test_a_bad_echo_answer_is_refused_and_changes_nothing(
    ec2: Any, group_id: str, settings: BoxSettings, echo: Answering, answer: str, error: str
) -> None:
    echo.body = answer.encode()
    before = ingress(ec2, group_id)

    with pytest.raises(PublicAddressError, match=error) as caught:
        allow_my_ip(settings, ip=None, echo_url=echo.url)

    assert "--ip" in str(caught.value)
    assert ingress(ec2, group_id) == before


def test_an_unreachable_echo_url_says_to_pass_the_ip(
    ec2: Any, group_id: str, settings: BoxSettings, echo: Answering
) -> None:
    echo.server.server_close()  # nothing listens there any more
    before = ingress(ec2, group_id)

    with pytest.raises(PublicAddressError, match=r"Could not ask .* pass it with --ip"):
        allow_my_ip(settings, ip=None, echo_url=echo.url)

    assert ingress(ec2, group_id) == before


@pytest.mark.parametrize(
    ("ip", "kind"),
    [
        ("0.0.0.0", "unspecified"),
        ("127.0.0.1", "loopback"),
        ("224.0.0.1", "multicast"),
        ("10.1.2.3", "private or special-purpose"),
        ("100.64.0.1", "private or special-purpose"),  # carrier-grade NAT
        ("203.0.113.9", "private or special-purpose"),  # documentation
        ("169.254.169.254", "link-local"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("ff02::1", "multicast"),
        ("fe80::1", "link-local"),
        ("::ffff:81.2.69.160", "reserved"),  # IPv4-mapped: not an IPv6 source
        ("fd00::1", "private or special-purpose"),
    ],
)
def test_an_ip_that_is_not_global_unicast_is_refused_and_changes_nothing(
    ec2: Any, group_id: str, settings: BoxSettings, ip: str, kind: str
) -> None:
    before = ingress(ec2, group_id)

    with pytest.raises(PublicAddressError) as caught:
        allow_my_ip(settings, ip=ip, echo_url="http://127.0.0.1:9/")

    assert str(caught.value) == (
        f"--ip is {ip}, which is not a public address ({kind}): pass this machine's public "
        "address with --ip, e.g. --ip $(curl -s https://checkip.amazonaws.com)."
    )
    assert ingress(ec2, group_id) == before


def test_a_refused_new_rule_leaves_the_old_ones_in_place(
    ec2: Any, group_id: str, settings: BoxSettings
) -> None:
    # AWS allows 60 inbound rules per group: fill it up, and the new SSH rule is refused.
    # The old SSH rules must still be there: SSH must never be left with no rule at all.
    for port in range(1000, 1000 + 60 - len(ingress(ec2, group_id))):
        ec2.authorize_security_group_ingress(
            GroupId=group_id,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": port,
                    "ToPort": port,
                    "IpRanges": [{"CidrIp": "198.51.100.0/24"}],
                }
            ],
        )
    before = ingress(ec2, group_id)

    with pytest.raises(ProviderError, match="RulesPerSecurityGroupLimitExceeded") as caught:
        allow_my_ip(settings, ip=MY_IP, echo_url="http://127.0.0.1:9/")

    assert str(caught.value).startswith(f"Cannot allow SSH from {MY_IP}/32 in {group_id}:")
    assert ingress(ec2, group_id) == before
    assert {(22, "0.0.0.0/0"), (22, "1.2.3.0/24")} <= before


def test_a_bad_ip_argument_is_refused(ec2: Any, group_id: str, settings: BoxSettings) -> None:
    before = ingress(ec2, group_id)

    with pytest.raises(PublicAddressError, match=r"--ip gave '1.2.3.0/24', which is not one IP"):
        allow_my_ip(settings, ip="1.2.3.0/24", echo_url="http://127.0.0.1:9/")

    assert ingress(ec2, group_id) == before


def test_an_ipv6_address_gets_a_128_rule(ec2: Any, group_id: str, settings: BoxSettings) -> None:
    access = allow_my_ip(settings, ip=MY_IPV6, echo_url="http://127.0.0.1:9/")

    assert access.cidr == f"{MY_IPV6}/128"
    assert ingress(ec2, group_id) == {(22, f"{MY_IPV6}/128"), (443, "0.0.0.0/0")}


def test_wider_rules_that_admit_ssh_are_reported_not_removed(
    ec2: Any, group_id: str, settings: BoxSettings
) -> None:
    ec2.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 0,
                "ToPort": 1024,
                "IpRanges": [{"CidrIp": "10.0.0.0/8"}],
            }
        ],
    )

    access = allow_my_ip(settings, ip=MY_IP, echo_url="http://127.0.0.1:9/")

    assert (0, "10.0.0.0/8") in ingress(ec2, group_id)
    assert "tcp 0-1024 from 10.0.0.0/8" in access.describe()


def test_the_box_group_is_found_among_the_instance_groups(
    ec2: Any, seeded_box: Any, group_id: str, settings: BoxSettings
) -> None:
    # A second, untagged group on the instance, with its own SSH rule (e.g. a bastion's).
    other = ec2.create_security_group(
        GroupName="extra", Description="extra", VpcId=seeded_box.vpc_id
    )["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=other,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            }
        ],
    )
    ec2.modify_instance_attribute(InstanceId=seeded_box.instance_id, Groups=[other, group_id])

    access = allow_my_ip(settings, ip=MY_IP, echo_url="http://127.0.0.1:9/")

    assert access.group_id == group_id
    assert ingress(ec2, other) == {(22, "0.0.0.0/0")}


def test_the_hint_says_pulumi_up_resets_it(settings: BoxSettings) -> None:
    hint = pulumi_drift_hint(settings, f"{MY_IP}/32")

    assert "next `pulumi up` resets" in hint
    assert "sshAllowedCidrs" in hint and f"{MY_IP}/32" in hint and "--stack test" in hint


def test_box_tasks_need_no_echo_when_ip_given(
    ec2: Any, group_id: str, make_settings: Callable[..., BoxSettings], echo: Answering
) -> None:
    allow_my_ip(make_settings(), ip=MY_IP, echo_url=echo.url)

    assert echo.requests == 0
