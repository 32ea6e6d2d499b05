"""The local provider on a real systemd-nspawn box: create, start, reach, stop, start again."""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import signal
import time
from collections.abc import Callable, Iterator

import paramiko
import pytest

from remote.errors import ProviderError
from remote.providers.base import BoxState, State
from remote.providers.local import netns, nspawn, rootfs
from remote.providers.local.provider import LocalProvider, ssh_banner
from remote.settings import BoxSettings

pytestmark = pytest.mark.box

STOP_TIMEOUT_S = 60.0
# The fixture's (provider, state) pair; see tests/box/conftest.py.
RunningBox = tuple[LocalProvider, BoxState]
Leftovers = Callable[[str], list[str]]


@pytest.fixture
def ssh(running_box: RunningBox, local_settings: BoxSettings) -> Iterator[paramiko.SSHClient]:
    client = paramiko.SSHClient()
    # A fresh box with fresh host keys: pinning them is ssh.py's job, tested there.
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(
        running_box[1].address or "",
        username=local_settings.user,
        pkey=paramiko.Ed25519Key.from_private_key_file(str(local_settings.key)),
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    yield client
    client.close()


def run(client: paramiko.SSHClient, command: str, timeout_s: float = 120) -> str:
    _, stdout, stderr = client.exec_command(command, timeout=timeout_s)
    status = stdout.channel.recv_exit_status()
    out = stdout.read().decode()
    assert status == 0, f"{command!r} exited {status}: {stderr.read().decode()[-500:]}"
    return out


def test_second_create_changes_nothing_and_is_fast(local_box: LocalProvider) -> None:
    began = time.monotonic()
    assert not local_box.create()
    assert time.monotonic() - began < 5


def test_cache_holds_no_host_keys(local_settings: BoxSettings) -> None:
    entry = local_settings.local.cache / rootfs.cache_key(
        local_settings.local.suite, local_settings.local.mirror
    )
    assert entry.is_dir()
    assert not list((entry / "etc/ssh").glob("ssh_host_*"))


def test_start_gives_an_address_in_the_subnet(
    running_box: RunningBox, local_settings: BoxSettings
) -> None:
    state = running_box[1]
    assert state.state is State.RUNNING
    assert state.box_id == local_settings.name
    assert ipaddress.IPv4Address(state.address) in local_settings.local.subnet
    assert running_box[0].state() == state
    assert running_box[0].address() == state.address


def test_starting_a_running_box_changes_nothing(running_box: RunningBox) -> None:
    assert running_box[0].start(timeout_s=10) == running_box[1]


def test_port_22_answers_with_an_ssh_banner(running_box: RunningBox) -> None:
    banner = ssh_banner(running_box[1].address or "")
    assert banner is not None and banner.startswith("SSH-2.0-OpenSSH")


def test_user_logs_in_with_the_key_and_has_passwordless_sudo(
    ssh: paramiko.SSHClient, local_settings: BoxSettings
) -> None:
    assert run(ssh, "hostname").strip() == local_settings.name
    assert run(ssh, "id -un").strip() == local_settings.user
    run(ssh, "sudo -n true")
    sshd = run(ssh, "sudo -n sshd -T")
    assert "passwordauthentication no" in sshd
    assert "permitrootlogin no" in sshd
    assert run(ssh, "systemctl is-system-running --wait || true").strip() in ("running", "degraded")


def test_box_reaches_the_debian_mirror_and_pypi_over_tls(ssh: paramiko.SSHClient) -> None:
    run(ssh, "sudo -n apt-get update -q")
    fetch = "import urllib.request as u; print(u.urlopen('https://pypi.org/simple/pip/').status)"
    assert run(ssh, f"python3 -c {shlex.quote(fetch)}").strip() == "200"
    venv = "d=$(mktemp -d) && python3 -m venv $d/v && $d/v/bin/pip download -q --no-deps six -d $d"
    run(ssh, venv + " && ls $d/six-*.whl")


def test_stop_then_start_gives_a_new_address_and_leaves_nothing_stale(
    running_box: RunningBox, local_settings: BoxSettings, host_leftovers: Leftovers
) -> None:
    provider, before = running_box
    stopped = provider.stop(timeout_s=STOP_TIMEOUT_S)
    assert stopped.state is State.STOPPED
    assert provider.state().state is State.STOPPED
    assert host_leftovers(local_settings.name) == []
    with pytest.raises(ProviderError, match=r"fab box\.start"):
        provider.address()

    began = time.monotonic()
    assert provider.stop(timeout_s=STOP_TIMEOUT_S).state is State.STOPPED
    assert time.monotonic() - began < 2

    after = provider.start(timeout_s=120)
    assert after.state is State.RUNNING
    assert after.address != before.address
    assert ssh_banner(after.address or "") is not None
    # One netns, one veth, and the rules of one start (3, or 7 with DNS forwarding).
    made = host_leftovers(local_settings.name)
    rules = [x for x in made if "mlops-box:" in x]
    assert len(rules) in (3, 7) and len(set(rules)) == len(rules)
    assert len(made) == len(rules) + 2


def test_start_recovers_a_box_whose_nspawn_was_killed(
    running_box: RunningBox, local_settings: BoxSettings
) -> None:
    provider = running_box[0]
    box_netns = netns.NETNS_DIR / netns.netns_name(local_settings.name)
    orphans = nspawn.processes_in(box_netns)
    assert orphans
    os.kill(json.loads(provider.run_file.read_text())["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while provider.state().state is not State.STOPPED and time.monotonic() < deadline:
        time.sleep(0.1)
    assert provider.state().state is State.STOPPED

    after = provider.start(timeout_s=120)
    assert after.state is State.RUNNING and ssh_banner(after.address or "")
    # The killed nspawn's box (its init lives on without nspawn) was ended, not doubled.
    assert not set(orphans) & set(nspawn.processes_in(box_netns))
    assert all(not os.path.exists(f"/proc/{pid}/cmdline") or _is_zombie(pid) for pid in orphans)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True
