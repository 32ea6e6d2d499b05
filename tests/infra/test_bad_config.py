"""Bad settings: one clear error naming the setting and the value, and nothing declared."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from infra.config import BOX_NAME_MAX, InfraConfigError, parse_config
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
        (
            {"sshAllowedCidrs": ["203.0.113.7/32", "::/0"]},
            "sshAllowedCidrs = '203.0.113.7/32, ::/0': ::/0 is wider than a /48",
        ),
        ({"sshAllowedCidrs": []}, "mlops-box:sshAllowedCidrs"),
        (
            {"sshAllowedCidrs": ["10.0.0.0/17", "10.0.128.0/17", "10.1.0.0/17"]},
            "together they hold 1.5 times the addresses of a /16",
        ),
        ({"boxName": "my_box"}, "mlops-box:boxName = 'my_box': use lowercase letters"),
        ({"boxName": "sthree-box"}, "S3 reserves bucket names starting with sthree-"),
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


FROM_ANYWHERE_FIX = (
    "which counts as SSH from anywhere; narrow the CIDRs to your own network (e.g. your /32: "
    "`fab box.allow-my-ip` finds it), or opt in with "
    "`pulumi config set allowSshFromAnywhere true`."
)


@pytest.mark.parametrize(
    ("cidrs", "reason"),
    [
        (["10.0.0.0/15"], "10.0.0.0/15 is wider than a /16"),
        (["0.0.0.0/1", "128.0.0.0/1"], "0.0.0.0/1 is wider than a /16"),
        (["2001:db8::/47"], "2001:db8::/47 is wider than a /48"),
        (
            ["10.0.0.0/17", "10.0.128.0/17", "10.1.0.0/17"],
            "together they hold 1.5 times the addresses of a /16",
        ),
        (
            ["2001:db8::/48", "2001:db8:1::/48", "203.0.113.7/32"],
            "together they hold 2 times the addresses of a /48",
        ),
    ],
)
def test_ssh_from_too_wide_networks_needs_the_opt_in(
    public_key_file: Path, cidrs: list[str], reason: str
) -> None:
    settings = raw(sshPublicKeyPath=str(public_key_file), sshAllowedCidrs=json.dumps(cidrs))
    with pytest.raises(InfraConfigError) as error:
        parse_config(settings, stack="dev")
    assert str(error.value) == (
        f"Invalid setting mlops-box:sshAllowedCidrs = {', '.join(cidrs)!r}: {reason}, "
        + FROM_ANYWHERE_FIX
    )
    opted_in = parse_config({**settings, "allowSshFromAnywhere": "true"}, stack="dev")
    assert [str(n) for n in opted_in.ssh_allowed_cidrs] == cidrs


@pytest.mark.parametrize(
    "cidrs",
    [
        ["10.0.0.0/16"],
        ["203.0.113.7/32"],
        ["2001:db8::/48"],
        # Overlaps are counted once: the /32 inside the /16 adds nothing.
        ["10.0.0.0/16", "10.0.7.7/32", "10.0.0.0/16"],
        # Exactly one /16 in total, and each IP version has its own allowance.
        ["10.0.0.0/17", "10.0.128.0/17", "2001:db8::/48"],
    ],
)
def test_networks_up_to_a_slash_16_need_no_opt_in(public_key_file: Path, cidrs: list[str]) -> None:
    config = parse_config(
        raw(sshPublicKeyPath=str(public_key_file), sshAllowedCidrs=json.dumps(cidrs)), stack="dev"
    )
    assert [str(n) for n in config.ssh_allowed_cidrs] == list(dict.fromkeys(cidrs))


BOX_NAME_RULE = (
    "use lowercase letters, digits and single hyphens, starting with a letter and ending with "
    "a letter or digit, e.g. mlops-zoomcamp (it also names the S3 bucket and the RDS database)."
)
BOX_NAME_LENGTH = (
    f"use at most {BOX_NAME_MAX} characters (the bucket and database names made from it may "
    "not exceed 63)."
)


@pytest.mark.parametrize(
    ("name", "fix"),
    [
        ("my_box", BOX_NAME_RULE),
        ("MyBox", BOX_NAME_RULE),
        ("my.box", BOX_NAME_RULE),
        ("-box", BOX_NAME_RULE),
        ("box-", BOX_NAME_RULE),
        ("a--b", BOX_NAME_RULE),
        ("1box", BOX_NAME_RULE),
        ("a" * (BOX_NAME_MAX + 1), BOX_NAME_LENGTH),
    ],
)
def test_box_name_must_make_valid_bucket_and_database_names(
    public_key_file: Path, name: str, fix: str
) -> None:
    with pytest.raises(InfraConfigError) as error:
        parse_config(raw(sshPublicKeyPath=str(public_key_file), boxName=name), stack="dev")
    assert str(error.value) == f"Invalid setting mlops-box:boxName = {name!r}: {fix}"


def test_the_longest_box_name_fits_every_name_made_from_it(deploy: Deploy) -> None:
    """moto checks bucket names and RDS identifiers, with the provider's suffix length."""
    name = "mlops-zoomcamp-experiments-01"
    assert len(name) == BOX_NAME_MAX
    exports = deploy(boxName=name, mlflowBackend="rds", dbDeletionProtection=False).exports
    assert exports["artifactBucket"].startswith(f"{name}-mlflow-")
    assert len(exports["artifactBucket"]) == 63
    (db,) = boto3.client("rds", region_name=REGION).describe_db_instances()["DBInstances"]
    assert db["DBInstanceIdentifier"].startswith(f"{name}-mlflow-")
    assert len(db["DBInstanceIdentifier"]) == 63
    roles = boto3.client("iam", region_name=REGION).list_roles()["Roles"]
    assert all(len(r["RoleName"]) <= 64 for r in roles)


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
    assert config.box_name == "mlops-zoomcamp"
    assert config.tags == {"Project": "mlops-box", "Stack": "prod"}
    assert config.database is None and config.ami is None
    rds = parse_config(raw(sshPublicKeyPath=str(key), mlflowBackend="rds"), stack="dev")
    assert rds.database is not None and rds.database.deletion_protection is True
