"""Shared fixtures for tests/remote: fake AWS (moto), temporary project and ssh dirs.

Nothing here touches the real ~/.ssh, ~/.aws or the internet.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from remote.settings import BoxSettings, load_settings

# The `fab` subprocess fixtures, for the modules that run the real CLI.
from tests.remote.fab_cli import box, fab_env, fab_ssh_dir, home, project, server_ec2

__all__ = ["box", "fab_env", "fab_ssh_dir", "home", "project", "server_ec2"]

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
STACK = "test"
BOX_NAME = "mlops-test"
MOTO_SERVER_START_TIMEOUT_S = 30


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A copy of the project's Pulumi.yaml and sshconfig.template, and no stack file."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("Pulumi.yaml", "sshconfig.template"):
        shutil.copy(REPO_ROOT / name, project / name)
    return project


@pytest.fixture
def ssh_dir(tmp_path: Path) -> Path:
    """An empty, private stand-in for ~/.ssh."""
    path = tmp_path / "ssh"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def box_config(ssh_dir: Path, tmp_path: Path) -> dict[str, Any]:
    """Fabric's `box` section for an AWS box in the fake account; tests may edit it."""
    return {
        "provider": "aws",
        "stack": STACK,
        "name": BOX_NAME,
        "region": REGION,
        "user": "ubuntu",
        "key": str(tmp_path / "keys" / BOX_NAME),
        "ssh_dir": str(ssh_dir),
    }


@pytest.fixture
def make_settings(box_config: dict[str, Any], project_dir: Path) -> Callable[..., BoxSettings]:
    """Build BoxSettings from `box_config` with keyword overrides."""

    def make(**overrides: Any) -> BoxSettings:
        return load_settings({**box_config, **overrides}, project_dir=project_dir)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., BoxSettings]) -> BoxSettings:
    return make_settings()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Fake credentials and region; no profile, endpoint or ~/.aws files leak in."""
    for name in list(os.environ):
        if name.startswith(("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN")):
            monkeypatch.delenv(name)
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config-absent"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials-absent"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def aws(aws_env: dict[str, str]) -> Iterator[None]:
    """moto's AWS, for every service, around the test."""
    with mock_aws():
        yield


@pytest.fixture
def ec2(aws_env: dict[str, str]) -> Iterator[Any]:
    """An EC2 client on moto's in-process fake AWS."""
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


@dataclass(frozen=True)
class SeededBox:
    instance_id: str
    group_id: str
    subnet_id: str
    vpc_id: str


def seed_box(
    client: Any,
    *,
    name: str = BOX_NAME,
    stack: str = STACK,
    public_ip: bool = True,
    instance_type: str = "t3.xlarge",
) -> SeededBox:
    """Create what `pulumi up` would: a tagged security group with an SSH rule and a
    tagged instance in a subnet that gives it a public IP (or not)."""
    tags = {"Project": "mlops-box", "Stack": stack}
    vpc_id = client.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet_id = client.create_subnet(VpcId=vpc_id, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    client.modify_subnet_attribute(SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": public_ip})
    group_id = client.create_security_group(
        GroupName=f"{name}-{stack}-sg",
        Description="mlops-box: SSH from the allowed networks only",
        VpcId=vpc_id,
        TagSpecifications=[
            {"ResourceType": "security-group", "Tags": _tag_list({**tags, "Name": name})}
        ],
    )["GroupId"]
    client.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "IpRanges": [{"CidrIp": "198.51.100.0/24", "Description": "SSH"}],
            }
        ],
    )
    # One of the Ubuntu images moto ships; a filter keeps the (big) image list out of it.
    image_id = client.describe_images(
        Owners=["amazon"], Filters=[{"Name": "name", "Values": ["*ubuntu*"]}]
    )["Images"][0]["ImageId"]
    instance = client.run_instances(
        ImageId=image_id,
        MinCount=1,
        MaxCount=1,
        InstanceType=instance_type,
        SubnetId=subnet_id,
        SecurityGroupIds=[group_id],
        TagSpecifications=[{"ResourceType": "instance", "Tags": _tag_list({**tags, "Name": name})}],
    )["Instances"][0]
    return SeededBox(instance["InstanceId"], group_id, subnet_id, vpc_id)


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


@pytest.fixture
def seeded_box(ec2: Any) -> SeededBox:
    """The box as `pulumi up` leaves it: running, tagged, with a public IP."""
    return seed_box(ec2)


@pytest.fixture
def seed() -> Callable[..., SeededBox]:
    """`seed_box` for tests that seed through their own client (a moto server's)."""
    return seed_box


def describe_instance(client: Any, instance_id: str) -> dict[str, Any]:
    """The instance as the (fake) EC2 API reports it now."""
    reservations = client.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return dict(reservations[0]["Instances"][0])


@pytest.fixture
def describe() -> Callable[[Any, str], dict[str, Any]]:
    """`describe_instance(client, instance_id)`, for asserting the state in (fake) AWS."""
    return describe_instance


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def moto_server_url() -> Iterator[str]:
    """A real moto server in its own process, for code run in subprocesses (`fab`)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + MOTO_SERVER_START_TIMEOUT_S
    try:
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"moto server exited early: {err}")
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"moto server did not answer on {url}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


@pytest.fixture
def moto_server(moto_server_url: str) -> str:
    """The module's moto server, emptied before each test."""
    request = urllib.request.Request(f"{moto_server_url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    return moto_server_url
