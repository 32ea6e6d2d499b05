"""The real `fab box.*` commands, in subprocesses, against a moto server.

This is the whole controller path a user runs: Fabric's config loading (fabric.yaml and
FABRIC_BOX_* variables), the tasks, the provider over HTTP with AWS_ENDPOINT_URL, and the
ssh entry written to a temporary ssh dir. The fixtures are in fab_cli.py.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.remote.fab_cli import NAME, STACK, fab

Describe = Callable[[Any, str], dict[str, Any]]


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

    # --ssh-timeout 0: the key (absent here) is checked first when start waits for SSH.
    for task in (["box.status"], ["box.start", "--ssh-timeout", "0"]):
        result = fab(fab_env, *task)

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
    result = fab(fab_env, "box.allow-my-ip", "--ip", "81.2.69.142")

    assert result.returncode == 0, result.stderr
    assert "now allowed from 81.2.69.142/32 only" in result.stdout
    assert "next `pulumi up` resets" in result.stdout
    rules = server_ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [box.group_id]}]
    )["SecurityGroupRules"]
    assert [r["CidrIpv4"] for r in rules if not r["IsEgress"] and r["FromPort"] == 22] == [
        "81.2.69.142/32"
    ]


def test_create_on_aws_points_at_pulumi(fab_env: dict[str, str]) -> None:
    result = fab(fab_env, "box.create")

    assert result.returncode == 1
    assert "run `pulumi up` on stack ci" in result.stderr
    assert "Traceback" not in result.stderr


def test_start_refuses_to_pin_a_key_the_console_does_not_vouch_for(
    fab_env: dict[str, str], server_ec2: Any, box: Any, fab_ssh_dir: Path
) -> None:
    # moto's console output is a kernel log without cloud-init's fingerprint block, so
    # nothing vouches for the key of whatever answers at the instance's address.
    assert fab(fab_env, "box.keygen").returncode == 0  # start checks the key before waiting
    result = fab(fab_env, "box.start", "--ssh-timeout", "2")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"The console output of {box.instance_id} vouched for no SSH host key of {NAME}"
    )
    assert last.endswith("run `fab box.start --trust-first-key` to pin the first key it offers.")
    assert "Waiting for the SSH host key fingerprints" in result.stderr
    assert not (fab_ssh_dir / "mlops-box" / "known_hosts").exists()


def test_start_help_explains_trust_first_key(fab_env: dict[str, str]) -> None:
    result = fab(fab_env, "--help", "box.start")

    assert result.returncode == 0, result.stderr
    assert "--trust-first-key" in result.stdout
    assert "pin the first key the box offers" in " ".join(result.stdout.split())


def test_start_with_trust_first_key_skips_the_console_wait_and_tries_ssh(
    fab_env: dict[str, str], server_ec2: Any, box: Any, fab_ssh_dir: Path
) -> None:
    # The opt-in reaches the library: the console is looked at once, not waited for, and
    # the start goes on to SSH (nothing answers at moto's made-up address, so it times out).
    assert fab(fab_env, "box.keygen").returncode == 0  # start checks the key before waiting
    result = fab(fab_env, "box.start", "--trust-first-key", "--ssh-timeout", "2")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "Waiting for the SSH host key fingerprints" not in result.stderr
    assert f"waiting for SSH on {NAME}" in result.stderr.strip().splitlines()[-1]
    assert not (fab_ssh_dir / "mlops-box" / "known_hosts").exists()
