"""The real `fab box.*` tasks on a real local box, checked with the real OpenSSH client.

This is the user's daily loop: create, start, `ssh <name>`, stop, start again at a new
address. Each `fab` runs in a subprocess with the box's settings in FABRIC_BOX_*
variables, exactly as a user would set them; only EC2 is replaced, by the local box.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from remote.settings import BoxSettings, load_settings
from remote.ssh import config_entry as ssh
from remote.ssh import known_hosts as host_keys
from remote.ssh.connection import connect
from tests.box.harness.local_box import REPO_ROOT, find_leftovers

pytestmark = pytest.mark.box

FAB = str(Path(sys.executable).with_name("fab"))
SUBNET = "10.216.0.0/16"


@dataclass
class FabBox:
    env: dict[str, str]
    settings: BoxSettings

    def fab(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [FAB, "-r", str(REPO_ROOT), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )
        if check:
            assert result.returncode == 0, f"fab {' '.join(args)}: {result.stdout}{result.stderr}"
        return result

    def ssh(self, *command: str) -> subprocess.CompletedProcess[str]:
        """The real OpenSSH client, through the generated entry and nothing else."""
        return subprocess.run(
            [
                "ssh",
                "-F",
                str(ssh.config_path(self.settings)),
                "-o",
                "BatchMode=yes",
                self.settings.name,
                *command,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    def rootfs(self) -> Path:
        return self.settings.local.root / self.settings.name / "rootfs"

    def rootfs_host_keys(self) -> list[tuple[str, str]]:
        """The public host keys `box.create` made in the box's tree, read on this machine."""
        found = []
        for pub in sorted((self.rootfs() / "etc/ssh").glob("ssh_host_*_key.pub")):
            key_type, blob = pub.read_text().split()[:2]
            found.append((key_type, blob))
        return sorted(found)

    def entry_address(self) -> str:
        match = re.search(r"^\s*HostName (\S+)$", ssh.entry_path(self.settings).read_text(), re.M)
        assert match, "the entry has no HostName line"
        return match.group(1)


@pytest.fixture(scope="module")
def fab_box(
    tmp_path_factory: pytest.TempPathFactory, local_settings: BoxSettings
) -> Iterator[FabBox]:
    base = tmp_path_factory.mktemp("fabbox")
    name = f"mlft-{secrets.token_hex(3)}"
    box = {
        "provider": "local",
        "name": name,
        "key": str(base / "keys" / name),
        "ssh_dir": str(base / "ssh"),
        "local": {
            "root": str(base / "boxes"),
            "subnet": SUBNET,
            "cache": str(local_settings.local.cache),
        },
    }
    env = {
        **os.environ,
        "FABRIC_BOX_PROVIDER": "local",
        "FABRIC_BOX_NAME": name,
        "FABRIC_BOX_KEY": box["key"],
        "FABRIC_BOX_SSH_DIR": box["ssh_dir"],
        "FABRIC_BOX_LOCAL_ROOT": box["local"]["root"],
        "FABRIC_BOX_LOCAL_SUBNET": SUBNET,
        "FABRIC_BOX_LOCAL_CACHE": box["local"]["cache"],
    }
    fab_box = FabBox(env=env, settings=load_settings(box, project_dir=REPO_ROOT))
    try:
        yield fab_box
    finally:
        fab_box.fab("box.destroy", check=False)
        assert find_leftovers(name) == []
        assert not ssh.entry_path(fab_box.settings).exists()


def test_create_makes_the_key_and_the_box(fab_box: FabBox) -> None:
    result = fab_box.fab("box.create")
    assert "Created the local box" in result.stdout
    assert fab_box.settings.key.stat().st_mode & 0o777 == 0o600
    # The project made the box's host keys: they are pinned now, before any connection.
    assert f"Pinned the host keys of {fab_box.settings.name}" in result.stdout
    made = fab_box.rootfs_host_keys()
    assert {key_type for key_type, _ in made} >= {"ssh-ed25519", "ssh-rsa"}
    assert sorted(host_keys.pinned_keys(fab_box.settings)) == made
    again = fab_box.fab("box.create")
    assert "already exists" in again.stdout
    assert "Pinned" not in again.stdout
    assert sorted(host_keys.pinned_keys(fab_box.settings)) == made


def test_start_leaves_a_working_pinned_ssh_entry(fab_box: FabBox) -> None:
    result = fab_box.fab("box.start")
    assert f"Ready: ssh {fab_box.settings.name}" in result.stdout
    address = fab_box.entry_address()
    assert address in result.stdout
    # Real OpenSSH: verifies the pinned key (StrictHostKeyChecking yes) and logs in.
    login = fab_box.ssh("hostname")
    assert login.returncode == 0, login.stderr
    assert login.stdout.strip() == fab_box.settings.name
    # The project's own Fabric connection, which refuses anything but the pinned key.
    with connect(fab_box.settings, address) as conn:
        assert conn.run("sudo -n id -u", hide=True).stdout.strip() == "0"
    status = fab_box.fab("box.status")
    assert "running" in status.stdout and address in status.stdout
    assert re.search(r"^disk: +[0-9.]+ of [0-9.]+ GB used \([0-9]+%\)", status.stdout, re.M)
    # The start trusted what create pinned and pinned nothing else.
    assert sorted(host_keys.pinned_keys(fab_box.settings)) == fab_box.rootfs_host_keys()


def test_stop_then_start_moves_the_entry_to_the_new_address(fab_box: FabBox) -> None:
    before = fab_box.entry_address()
    stop = fab_box.fab("box.stop")
    assert "stopped" in stop.stdout
    assert "stopped" in fab_box.fab("box.status").stdout
    assert "already stopped" in fab_box.fab("box.stop").stdout
    fab_box.fab("box.start")
    after = fab_box.entry_address()
    assert after != before
    login = fab_box.ssh("true")
    assert login.returncode == 0, login.stderr


def test_a_changed_host_key_is_refused_until_forgotten(fab_box: FabBox) -> None:
    # The box gets new host keys, as if it were replaced by another machine.
    regenerate = (
        "sudo rm -f /etc/ssh/ssh_host_* && sudo ssh-keygen -A && sudo systemctl restart ssh"
    )
    assert fab_box.ssh(regenerate).returncode == 0
    refused = fab_box.ssh("true")
    assert refused.returncode != 0
    assert "Host key verification failed" in refused.stderr
    fab_box.fab("box.stop")
    start = fab_box.fab("box.start", check=False)
    assert start.returncode == 1
    # One line of error after the progress lines, and no traceback.
    assert "Traceback" not in start.stderr
    assert "fab box.forget-host-key" in start.stderr.strip().splitlines()[-1]
    # Nothing else was lost: the entry still names the box, now at its new address.
    assert fab_box.entry_address() in fab_box.fab("box.status").stdout
    # Re-created on purpose: forget, and the next start pins the new key.
    fab_box.fab("box.forget-host-key")
    fab_box.fab("box.start")
    assert fab_box.ssh("true").returncode == 0


IMPOSTOR_KEY = "etc/ssh/impostor_ed25519_key"
IMPOSTOR_DROP_IN = "etc/ssh/sshd_config.d/05-impostor.conf"


def test_a_key_outside_the_box_tree_is_refused_pinned_or_not(fab_box: FabBox) -> None:
    # The box's sshd is made to offer a key that is not one of the box's host keys (as
    # anything else answering at its address would): written into the tree while it is
    # stopped, from this machine, as root.
    fab_box.fab("box.stop")
    rootfs = fab_box.rootfs()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(rootfs / IMPOSTOR_KEY)],
        check=True,
    )
    (rootfs / IMPOSTOR_DROP_IN).write_text(f"HostKey /{IMPOSTOR_KEY}\n")
    known_hosts = ssh.known_hosts_path(fab_box.settings)
    try:
        # Pinned: the swapped key is refused by the pin.
        pinned = known_hosts.read_bytes()
        swapped = fab_box.fab("box.start", check=False)
        assert swapped.returncode == 1
        assert "Traceback" not in swapped.stderr
        assert "other than the one pinned" in swapped.stderr.strip().splitlines()[-1]
        assert known_hosts.read_bytes() == pinned

        # Nothing pinned: the box's tree does not list that key, so it is not pinned.
        fab_box.fab("box.forget-host-key")
        unvouched = fab_box.fab("box.start", check=False)
        assert unvouched.returncode == 1
        assert "Traceback" not in unvouched.stderr
        last = unvouched.stderr.strip().splitlines()[-1]
        assert f"that the local box's tree {rootfs} does not list" in last
        assert host_keys.pinned_keys(fab_box.settings) == []
    finally:
        fab_box.fab("box.stop")
        (rootfs / IMPOSTOR_DROP_IN).unlink()
        (rootfs / IMPOSTOR_KEY).unlink()
        (rootfs / f"{IMPOSTOR_KEY}.pub").unlink()
    # Its own keys again: the start pins the one it offers, from the tree.
    fab_box.fab("box.start")
    pinned_now = host_keys.pinned_keys(fab_box.settings)
    assert len(pinned_now) == 1 and pinned_now[0] in fab_box.rootfs_host_keys()
    assert fab_box.ssh("true").returncode == 0


def test_bad_settings_fail_in_one_line(fab_box: FabBox) -> None:
    env = {**fab_box.env, "FABRIC_BOX_PROVIDER": "gcp"}
    result = subprocess.run(
        [FAB, "-r", str(REPO_ROOT), "box.status"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "box.provider is 'gcp': set it (fabric.yaml or FABRIC_BOX_PROVIDER) to one of aws, local."
    )
