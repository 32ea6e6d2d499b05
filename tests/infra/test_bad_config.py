"""Bad settings: one clear error naming the setting and the value, and nothing declared."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from infra.config import InfraConfigError, parse_config
from tests.infra.conftest import PUBLIC_KEY, REGION, Deploy, schema_defaults


def nothing_exists_in_aws() -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    assert ec2.describe_instances()["Reservations"] == []
    assert [g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]] == ["default"]
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    assert boto3.client("s3", region_name=REGION).list_buckets()["Buckets"] == []
    assert boto3.client("iam", region_name=REGION).list_roles()["Roles"] == []


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"sshAllowedCidrs": ["10.0.0/8"]}, "mlops-box:sshAllowedCidrs = '10.0.0/8'"),
        ({"sshAllowedCidrs": ["10.0.0.1/8"]}, "mlops-box:sshAllowedCidrs = '10.0.0.1/8'"),
        ({"sshAllowedCidrs": ["0.0.0.0/0"]}, "allowSshFromAnywhere true"),
        ({"sshAllowedCidrs": ["203.0.113.7/32", "::/0"]}, "mlops-box:sshAllowedCidrs = '::/0'"),
        ({"sshAllowedCidrs": []}, "mlops-box:sshAllowedCidrs"),
        ({"mlflowBackend": "mysql"}, "mlops-box:mlflowBackend = 'mysql': use `sqlite` or `rds`"),
        ({"volumeSizeGb": 0}, "mlops-box:volumeSizeGb = '0'"),
        ({"volumeSizeGb": -30}, "mlops-box:volumeSizeGb = '-30'"),
        ({"volumeSizeGb": "big"}, "mlops-box:volumeSizeGb = 'big': give a whole number"),
        ({"sshPublicKeyPath": "/nonexistent/key.pub"}, "fab box.keygen"),
        ({"httpsAllowedCidrs": ["0.0.0.0/0"]}, "allowHttpsFromAnywhere true"),
        ({"httpsAllowedCidrs": ["10.0.0.0/15"]}, "10.0.0.0/15 is wider than a /16"),
        ({"httpsAllowedCidrs": ["2001:db8::/32"]}, "2001:db8::/32 is wider than a /48"),
        (
            {"httpsAllowedCidrs": ["10.0.0.0/16", "10.9.0.0/17"]},
            "together they hold 1.5 times the addresses of a /16",
        ),
        ({"httpsAllowedCidrs": ["198.51.100.7/24"]}, "httpsAllowedCidrs = '198.51.100.7/24'"),
        ({"httpsAllowedCidrs": "198.51.100.7/32"}, "give a list of CIDRs"),
        ({"ami": "ubuntu"}, "mlops-box:ami = 'ubuntu'"),
    ],
)
def test_bad_setting_stops_before_any_resource(
    deploy: Deploy, settings: dict, expected: str
) -> None:
    with pytest.raises(InfraConfigError) as error:
        deploy(**settings)
    message = str(error.value)
    assert expected in message
    assert "\n" not in message
    nothing_exists_in_aws()


def raw(**overrides: str) -> dict[str, str]:
    values = {key.split(":", 1)[1]: value for key, value in schema_defaults().items()}
    values["sshAllowedCidrs"] = '["203.0.113.7/32"]'
    values.update(overrides)
    return values


def test_missing_public_key_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pub"
    with pytest.raises(InfraConfigError, match=r"sshPublicKeyPath = '.*nope\.pub': cannot read"):
        parse_config(raw(sshPublicKeyPath=str(missing)), stack="dev")


def test_a_private_key_is_not_taken_for_a_public_one(tmp_path: Path) -> None:
    private = tmp_path / "id"
    private.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n...\n")
    with pytest.raises(InfraConfigError, match="not an OpenSSH public key"):
        parse_config(raw(sshPublicKeyPath=str(private)), stack="dev")


def test_good_settings_parse(tmp_path: Path) -> None:
    key = tmp_path / "k.pub"
    key.write_text(PUBLIC_KEY)
    config = parse_config(
        raw(sshPublicKeyPath=str(key), sshAllowedCidrs='["198.51.100.0/24", "198.51.100.0/24"]'),
        stack="prod",
    )
    assert [str(n) for n in config.ssh_allowed_cidrs] == ["198.51.100.0/24"]
    assert config.tags == {"Project": "mlops-box", "Stack": "prod"}
    assert config.database is None and config.ami is None
    rds = parse_config(raw(sshPublicKeyPath=str(key), mlflowBackend="rds"), stack="dev")
    assert rds.database is not None and rds.database.deletion_protection is True
