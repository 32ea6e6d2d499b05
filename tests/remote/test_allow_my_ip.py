"""`allow_my_ip`: the box's SSH rules become exactly this machine's address.

The echo service is a tiny http.server on 127.0.0.1: tests never ask the internet.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from remote.errors import PublicAddressError
from remote.providers.aws.security_group import allow_my_ip, pulumi_drift_hint
from remote.settings import BoxSettings

# A global unicast address (TEST-NET ranges such as 203.0.113.0/24 are not "global").
PUBLIC_IP = "81.2.69.160"


class Echo:
    """A local stand-in for checkip.amazonaws.com answering `body`."""

    def __init__(self) -> None:
        self.body = f"{PUBLIC_IP}\n"
        self.requests = 0
        echo = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                echo.requests += 1
                data = echo.body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"


@pytest.fixture
def echo() -> Iterator[Echo]:
    service = Echo()
    thread = threading.Thread(target=service.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        service.server.shutdown()
        service.server.server_close()
        thread.join(timeout=5)


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
    access = allow_my_ip(settings, ip="203.0.113.9", echo_url="http://127.0.0.1:9/")

    assert ingress(ec2, group_id) == {(22, "203.0.113.9/32"), (443, "0.0.0.0/0")}
    assert access.changed
    message = access.describe()
    assert f"({group_id}) is now allowed from 203.0.113.9/32 only" in message
    assert "0.0.0.0/0" in message and "1.2.3.0/24" in message


def test_a_second_run_changes_nothing(ec2: Any, group_id: str, settings: BoxSettings) -> None:
    allow_my_ip(settings, ip="203.0.113.9", echo_url="http://127.0.0.1:9/")
    rules_before = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group_id]}]
    )["SecurityGroupRules"]

    again = allow_my_ip(settings, ip="203.0.113.9", echo_url="http://127.0.0.1:9/")

    rules_after = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group_id]}]
    )["SecurityGroupRules"]
    assert not again.changed
    assert "already allowed from 203.0.113.9/32 only" in again.describe()
    assert {r["SecurityGroupRuleId"] for r in rules_after} == {
        r["SecurityGroupRuleId"] for r in rules_before
    }


def test_the_address_comes_from_the_echo_url(
    ec2: Any, group_id: str, settings: BoxSettings, echo: Echo
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
    ],
)
def test_a_bad_echo_answer_is_refused_and_changes_nothing(
    ec2: Any, group_id: str, settings: BoxSettings, echo: Echo, answer: str, error: str
) -> None:
    echo.body = answer
    before = ingress(ec2, group_id)

    with pytest.raises(PublicAddressError, match=error) as caught:
        allow_my_ip(settings, ip=None, echo_url=echo.url)

    assert "--ip" in str(caught.value)
    assert ingress(ec2, group_id) == before


def test_an_unreachable_echo_url_says_to_pass_the_ip(
    ec2: Any, group_id: str, settings: BoxSettings, echo: Echo
) -> None:
    echo.server.server_close()  # nothing listens there any more
    before = ingress(ec2, group_id)

    with pytest.raises(PublicAddressError, match=r"Could not ask .* pass it with --ip"):
        allow_my_ip(settings, ip=None, echo_url=echo.url)

    assert ingress(ec2, group_id) == before


def test_a_bad_ip_argument_is_refused(ec2: Any, group_id: str, settings: BoxSettings) -> None:
    before = ingress(ec2, group_id)

    with pytest.raises(PublicAddressError, match=r"--ip gave '1.2.3.0/24', which is not one IP"):
        allow_my_ip(settings, ip="1.2.3.0/24", echo_url="http://127.0.0.1:9/")

    assert ingress(ec2, group_id) == before


def test_an_ipv6_address_gets_a_128_rule(ec2: Any, group_id: str, settings: BoxSettings) -> None:
    access = allow_my_ip(settings, ip="2001:db8::5", echo_url="http://127.0.0.1:9/")

    assert access.cidr == "2001:db8::5/128"
    assert ingress(ec2, group_id) == {(22, "2001:db8::5/128"), (443, "0.0.0.0/0")}


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

    access = allow_my_ip(settings, ip="203.0.113.9", echo_url="http://127.0.0.1:9/")

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

    access = allow_my_ip(settings, ip="203.0.113.9", echo_url="http://127.0.0.1:9/")

    assert access.group_id == group_id
    assert ingress(ec2, other) == {(22, "0.0.0.0/0")}


def test_the_hint_says_pulumi_up_resets_it(settings: BoxSettings) -> None:
    hint = pulumi_drift_hint(settings, "203.0.113.9/32")

    assert "next `pulumi up` resets" in hint
    assert "sshAllowedCidrs" in hint and "203.0.113.9/32" in hint and "--stack test" in hint


def test_box_tasks_need_no_echo_when_ip_given(
    ec2: Any, group_id: str, make_settings: Callable[..., BoxSettings], echo: Echo
) -> None:
    allow_my_ip(make_settings(), ip="203.0.113.9", echo_url=echo.url)

    assert echo.requests == 0
