"""The real `fab box.*` commands, in subprocesses, against a moto server.

This is the whole controller path a user runs: Fabric's config loading (fabric.yaml and
FABRIC_BOX_* variables), the tasks, the provider over HTTP with AWS_ENDPOINT_URL, and the
ssh entry written to a temporary ssh dir.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FAB = Path(sys.executable).parent / "fab"
REGION = "eu-west-1"
STACK = "ci"
NAME = "mlops-ci"
FAB_TIMEOUT_S = 120

Describe = Callable[[Any, str], dict[str, Any]]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def fab_ssh_dir(home: Path) -> Path:
    return home / "box-ssh"


@pytest.fixture
def fab_env(moto_server: str, home: Path, fab_ssh_dir: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "FABRIC_", "INVOKE_"))
    }
    env.update(
        HOME=str(home),
        AWS_ENDPOINT_URL=moto_server,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(home / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-aws-credentials"),
        FABRIC_BOX_PROVIDER="aws",
        FABRIC_BOX_STACK=STACK,
        FABRIC_BOX_NAME=NAME,
        # Both set explicitly: `~` means the password database's home, not $HOME.
        FABRIC_BOX_SSH_DIR=str(fab_ssh_dir),
        FABRIC_BOX_KEY=str(home / "keys" / NAME),
    )
    return env


@pytest.fixture
def server_ec2(moto_server: str) -> Any:
    """A client of the moto server, to seed and inspect what `fab` acts on."""
    return boto3.client(
        "ec2",
        endpoint_url=moto_server,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def box(server_ec2: Any, seed: Callable[..., Any]) -> Any:
    return seed(server_ec2, name=NAME, stack=STACK)


def fab(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FAB), "-r", str(REPO_ROOT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=FAB_TIMEOUT_S,
        check=False,
    )


def test_fab_lists_the_box_tasks_with_their_summaries(fab_env: dict[str, str]) -> None:
    result = fab(fab_env, "-l")

    assert result.returncode == 0, result.stderr
    for name, summary in [
        ("box.start", "Start the box"),
        ("box.stop", "Stop the box"),
        ("box.status", "Show the box's state"),
        ("box.ssh-config", "Point `ssh <name>`"),
        ("box.allow-my-ip", "Allow SSH to the AWS box"),
        ("box.keygen", "Create the box's ssh key pair"),
        ("box.forget-host-key", "Forget the box's pinned host key"),
        ("box.create", "Create the local box"),
        ("box.destroy", "Destroy the local box"),
    ]:
        line = next((ln for ln in result.stdout.splitlines() if ln.split()[:1] == [name]), "")
        assert summary in line, f"{name}: {line!r}"


def test_start_status_stop_round_trip(
    fab_env: dict[str, str], server_ec2: Any, box: Any, fab_ssh_dir: Path, describe: Describe
) -> None:
    old_ip = describe(server_ec2, box.instance_id)["PublicIpAddress"]
    server_ec2.stop_instances(InstanceIds=[box.instance_id])

    started = fab(fab_env, "box.start", "--ssh-timeout", "0")

    assert started.returncode == 0, started.stderr
    instance = describe(server_ec2, box.instance_id)
    new_ip = instance["PublicIpAddress"]
    assert instance["State"]["Name"] == "running"
    assert new_ip != old_ip
    assert f"({box.instance_id}) is running at {new_ip}" in started.stdout
    assert f"Waiting for {box.instance_id} to be running" in started.stderr
    entry = (fab_ssh_dir / "mlops-box" / f"{NAME}.conf").read_text()
    assert f"Host {NAME}\n" in entry and f"HostName {new_ip}\n" in entry
    assert "Include " in (fab_ssh_dir / "config").read_text()

    status = fab(fab_env, "box.status")

    assert status.returncode == 0, status.stderr
    assert "state:     running" in status.stdout
    assert f"id:        {box.instance_id}" in status.stdout
    assert "type:      t3.xlarge" in status.stdout
    assert f"address:   {new_ip}" in status.stdout
    assert "uptime:" in status.stdout

    stopped = fab(fab_env, "box.stop")

    assert stopped.returncode == 0, stopped.stderr
    assert describe(server_ec2, box.instance_id)["State"]["Name"] == "stopped"
    assert f"({box.instance_id}) is stopped" in stopped.stdout

    again = fab(fab_env, "box.stop")

    assert again.returncode == 0, again.stderr
    assert "is already stopped" in again.stdout


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs OpenSSH's ssh client")
def test_openssh_resolves_the_alias_to_the_new_address(
    fab_env: dict[str, str], server_ec2: Any, box: Any, fab_ssh_dir: Path, describe: Describe
) -> None:
    result = fab(fab_env, "box.start", "--ssh-timeout", "0")
    assert result.returncode == 0, result.stderr

    resolved = subprocess.run(
        ["ssh", "-F", str(fab_ssh_dir / "config"), "-G", NAME],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.splitlines()

    assert f"hostname {describe(server_ec2, box.instance_id)['PublicIpAddress']}" in resolved


def test_ssh_config_of_a_stopped_box_fails_and_writes_nothing(
    fab_env: dict[str, str], server_ec2: Any, box: Any, fab_ssh_dir: Path
) -> None:
    server_ec2.stop_instances(InstanceIds=[box.instance_id])

    result = fab(fab_env, "box.ssh-config")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Box {NAME} ({box.instance_id}) is stopped and has no address: start it with "
        "`fab box.start`, which writes the ssh entry too."
    ]
    assert not (fab_ssh_dir / "mlops-box" / f"{NAME}.conf").exists()


def test_ssh_config_of_a_running_box_writes_the_entry(
    fab_env: dict[str, str], server_ec2: Any, box: Any, fab_ssh_dir: Path, describe: Describe
) -> None:
    result = fab(fab_env, "box.ssh-config")

    assert result.returncode == 0, result.stderr
    ip = describe(server_ec2, box.instance_id)["PublicIpAddress"]
    assert f"HostName {ip}\n" in (fab_ssh_dir / "mlops-box" / f"{NAME}.conf").read_text()


def test_no_box_is_one_line_on_stderr_and_exit_1(
    fab_env: dict[str, str], server_ec2: Any, seed: Callable[..., Any], fab_ssh_dir: Path
) -> None:
    seed(server_ec2, name=NAME, stack="someone-elses")

    for task in ("box.status", "box.start"):
        result = fab(fab_env, task)

        assert result.returncode == 1, task
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert lines[0].startswith(f"No EC2 instance tagged Project=mlops-box, Stack={STACK}")
        assert "`pulumi up`" in lines[0]
        assert result.stdout == ""
    assert not fab_ssh_dir.exists()


def test_allow_my_ip_narrows_ssh_and_warns_about_drift(
    fab_env: dict[str, str], server_ec2: Any, box: Any
) -> None:
    result = fab(fab_env, "box.allow-my-ip", "--ip", "203.0.113.9")

    assert result.returncode == 0, result.stderr
    assert "now allowed from 203.0.113.9/32 only" in result.stdout
    assert "next `pulumi up` resets" in result.stdout
    rules = server_ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [box.group_id]}]
    )["SecurityGroupRules"]
    assert [r["CidrIpv4"] for r in rules if not r["IsEgress"] and r["FromPort"] == 22] == [
        "203.0.113.9/32"
    ]


def test_create_on_aws_points_at_pulumi(fab_env: dict[str, str]) -> None:
    result = fab(fab_env, "box.create")

    assert result.returncode == 1
    assert "run `pulumi up` on stack ci" in result.stderr
    assert "Traceback" not in result.stderr
