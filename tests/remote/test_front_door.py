"""The front door without a box: what --cidr accepts, the files rendered for nginx, the
token and pin kept on this machine, the security-group check on (fake) AWS, and the
`fab` tasks refusing bad input in one line before they touch anything."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from remote.deploy import front_door
from remote.deploy.client_files import ClientFiles, Pin
from remote.errors import ConfigError
from remote.providers.aws.provider import AwsProvider
from remote.settings import BoxSettings
from tests.remote.conftest import REPO_ROOT, SeededBox
from tests.remote.factories import settings_in

TOKEN = "tok_" + "A1b2-" * 8


@pytest.mark.parametrize("text", ["203.0.113.7/32", "10.213.0.0/16", " 198.51.100.0/24 "])
def test_a_cidr_is_an_ipv4_network(text: str) -> None:
    assert front_door.parse_cidr(text) == ipaddress.IPv4Network(text.strip())


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("10.0.0.1/8", "is not a network"),  # host bits set
        ("203.0.113.7/33", "is not a network"),
        ("", "is not a network"),
        ("all", "is not a network"),
        ("1.2.3.4/32; rm -rf /", "is not a network"),
        ("2001:db8::/64", "IPv4 only"),
    ],
)
def test_anything_else_is_refused_in_one_sentence(text: str, said: str) -> None:
    with pytest.raises(ConfigError) as refused:
        front_door.parse_cidr(text)
    assert said in str(refused.value) and "\n" not in str(refused.value)


def test_the_site_admits_the_network_and_forwards_without_the_credential() -> None:
    site = front_door.render_site(ipaddress.IPv4Network("203.0.113.0/24"))
    assert "listen 443 ssl default_server;" in site
    assert "    203.0.113.0/24 1;" in site and "default 0;" in site
    assert "ssl_certificate /etc/mlops-box/front-door/server.pem;" in site
    assert "include /etc/mlops-box/front-door/token.conf;" in site
    assert 'proxy_set_header Authorization "";' in site
    assert "proxy_pass http://127.0.0.1:8000;" in site
    assert "location /mlflow/ {\n        proxy_pass http://127.0.0.1:5000/;" in site
    # The CIDR check comes before the token check: strangers never get to try a token.
    assert site.index("return 403") < site.index("include /etc/mlops-box/front-door/token")


def test_the_token_is_only_in_its_own_file() -> None:
    token_file = front_door.render_token(TOKEN)
    assert f'if ($http_authorization != "Bearer {TOKEN}") {{' in token_file
    assert TOKEN not in front_door.render_site(ipaddress.IPv4Network("203.0.113.0/24"))
    assert TOKEN not in front_door.render_state(ipaddress.IPv4Network("203.0.113.0/24"))


@pytest.mark.parametrize("token", ["short", 'x" ) { return 200; } #' + "a" * 40, "a b" * 20])
def test_a_token_that_could_change_the_config_is_refused(token: str) -> None:
    with pytest.raises(ConfigError, match=r"delete it and run `fab deploy\.expose` again"):
        front_door.render_token(token)


def test_the_certificate_unit_runs_the_agent_before_nginx() -> None:
    unit = front_door.render_cert_unit()
    assert "Before=nginx.service" in unit and "WantedBy=nginx.service" in unit
    assert "-m mlops_agent front-door-cert --dir /etc/mlops-box/front-door" in unit
    assert "Environment=PYTHONPATH=/opt/mlops-box/agent/" in unit


def test_urls_name_the_host_as_clients_type_it() -> None:
    assert front_door.base_url("198.51.100.7") == "https://198.51.100.7"
    assert front_door.base_url("2001:db8::7") == "https://[2001:db8::7]"


def test_the_token_is_made_once_0600_and_kept(tmp_path: Path) -> None:
    files = ClientFiles.of(settings_in(tmp_path))
    first = files.read_token()
    assert files.token.stat().st_mode & 0o777 == 0o600
    assert files.token.parent.stat().st_mode & 0o777 == 0o700
    assert files.read_token() == first and len(first) >= 43


def test_two_runs_at_once_keep_one_token(tmp_path: Path) -> None:
    files = ClientFiles.of(settings_in(tmp_path))
    seen: list[str] = []
    runs = [threading.Thread(target=lambda: seen.append(files.read_token())) for _ in range(8)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert len(set(seen)) == 1 and seen[0] == files.token.read_text().strip()


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    files = ClientFiles.of(settings_in(tmp_path))
    files.read_token()
    files.token.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        files.read_token()


def test_the_ca_and_the_pin_are_saved_and_read_back(tmp_path: Path) -> None:
    files = ClientFiles.of(settings_in(tmp_path))
    assert files.pinned() is None
    pin = Pin("sha256//abc=", "00ff", "11ee", ("198.51.100.7", "box.example"))
    files.save(b"-----BEGIN CERTIFICATE-----\n", pin)
    assert files.pinned() == pin
    assert files.ca.read_bytes() == b"-----BEGIN CERTIFICATE-----\n"
    assert files.ca.name == "mlops-test-ca.pem" and files.pin.name == "mlops-test-front-door.json"


def open_https(ec2: Any, group_id: str, cidr: str) -> None:
    ec2.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": cidr}]}
        ],
    )


def test_on_aws_a_network_inside_an_https_rule_is_admitted(
    ec2: Any, seeded_box: SeededBox, settings: BoxSettings
) -> None:
    open_https(ec2, seeded_box.group_id, "198.51.100.0/24")
    access = AwsProvider(settings, ec2=ec2).front_door_access(
        ipaddress.IPv4Network("198.51.100.7/32")
    )
    assert access.allowed and access.follow_up is None
    assert seeded_box.group_id in access.summary and "198.51.100.0/24" in access.summary


@pytest.mark.parametrize("rule", [None, "198.51.100.0/25", "203.0.113.0/24"])
def test_on_aws_a_network_no_https_rule_covers_gets_the_pulumi_command(
    ec2: Any, seeded_box: SeededBox, settings: BoxSettings, rule: str | None
) -> None:
    if rule:
        open_https(ec2, seeded_box.group_id, rule)
    # The seeded SSH rule admits 198.51.100.0/24 on port 22 only: it does not count.
    access = AwsProvider(settings, ec2=ec2).front_door_access(
        ipaddress.IPv4Network("198.51.100.0/24")
    )
    assert not access.allowed
    assert access.follow_up == (
        "Open it with `pulumi config set --path 'httpsAllowedCidrs[0]' 198.51.100.0/24 "
        "--stack test && pulumi up`."
    )


def fab(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `fab` CLI, on a local box that does not exist, with private dirs."""
    env = {
        **os.environ,
        "FABRIC_BOX_PROVIDER": "local",
        "FABRIC_BOX_NAME": "mlops-nobox",
        "FABRIC_BOX_KEY": str(tmp_path / "keys" / "k"),
        "FABRIC_BOX_SSH_DIR": str(tmp_path / "ssh"),
        "FABRIC_BOX_SECRETS_DIR": str(tmp_path / "secrets"),
        "FABRIC_BOX_LOCAL_ROOT": str(tmp_path / "root"),
    }
    return subprocess.run(
        [str(Path(sys.executable).with_name("fab")), "-r", str(REPO_ROOT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["deploy.expose"], "Give --cidr NETWORK"),
        (["deploy.expose", "--cidr", "10.0.0.0/8", "--off"], "Give --cidr NETWORK"),
        (["deploy.expose", "--cidr", "10.0.0.1/8"], "--cidr '10.0.0.1/8' is not a network"),
        (["deploy.expose", "--cidr", "::/0"], "IPv4 only"),
        (["mlflow.install", "--cidr", "10.0.0.0/8"], "--cidr goes with --public"),
        (["mlflow.install", "--public", "--cidr", "x"], "--cidr 'x' is not a network"),
    ],
)
def test_bad_input_is_refused_in_one_line_before_anything_changes(
    tmp_path: Path, args: list[str], said: str
) -> None:
    result = fab(tmp_path, *args)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and said in result.stderr
    assert not (tmp_path / "secrets").exists() and not (tmp_path / "root").exists()
