"""A real local box for the box tier: created once per session, always destroyed.

Fixtures other box tests build on:
  local_settings  BoxSettings of a throw-away test box (own name, root, subnet and key;
                  the shared debootstrap cache, so CI builds the image once)
  local_box       its LocalProvider, created; teardown stops and destroys it and checks
                  that nothing it made on the host (netns, veth, iptables rules,
                  processes) is left
  running_box     (provider, state) with the box started: a no-op when it already runs
  box_conn        a pinned Fabric connection to the running box, its ssh entry up to date
  host_leftovers  a function: box name -> the netns, veth and iptables rules still there
"""

from __future__ import annotations

import os
import platform
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from remote.providers.base import BoxState
from remote.providers.local import netns
from remote.providers.local.provider import LocalProvider
from remote.settings import BoxSettings, load_settings
from remote.ssh import config_entry as ssh
from remote.ssh import keys
from remote.ssh.connection import connect
from remote.ssh.first_contact import wait_and_pin

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_SUBNET = "10.214.0.0/16"
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0
HOST_TOOLS = ("systemd-nspawn", "debootstrap", "iptables", "ip", "chroot")


def _skip_reason() -> str | None:
    if platform.system() != "Linux":
        return "the local box needs Linux"
    if os.geteuid() != 0:
        return "the local box needs root (run the box tier with sudo)"
    missing = [tool for tool in HOST_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"the local box needs {', '.join(missing)} (apt-get install systemd-container ...)"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _skip_reason()
    if reason is None:
        return
    for item in items:
        if "box" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


class RunningBox(NamedTuple):
    provider: LocalProvider
    state: BoxState


def find_leftovers(name: str) -> list[str]:
    """What a box's start made on the host and is still there (empty once it stopped)."""
    found = []
    if (netns.NETNS_DIR / netns.netns_name(name)).exists():
        found.append(f"netns {netns.netns_name(name)}")
    if Path("/sys/class/net", netns.host_veth(name)).exists():
        found.append(f"veth {netns.host_veth(name)}")
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    found += [line for line in rules.splitlines() if f"mlops-box:{name}" in line]
    return found


@pytest.fixture(scope="session")
def local_settings(tmp_path_factory: pytest.TempPathFactory) -> BoxSettings:
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("localbox")
    key = base / "keys" / "id_ed25519"
    local: dict[str, str] = {"root": str(base / "boxes"), "subnet": TEST_SUBNET}
    if os.environ.get("MLOPS_BOX_CACHE"):
        local["cache"] = os.environ["MLOPS_BOX_CACHE"]
    box = {
        "provider": "local",
        "name": f"mlbt-{secrets.token_hex(3)}",
        "key": str(key),
        "ssh_dir": str(base / "ssh"),
        "secrets_dir": str(base / "secrets"),
        "local": local,
    }
    settings = load_settings(box, project_dir=REPO_ROOT)
    keys.keygen(settings)
    return settings


@pytest.fixture(scope="session")
def local_box(local_settings: BoxSettings) -> Iterator[LocalProvider]:
    provider = LocalProvider(local_settings)
    try:
        provider.create()
        yield provider
    finally:
        provider.destroy()
        leftovers = find_leftovers(local_settings.name)
        assert not leftovers, f"destroy left these on the host: {leftovers}"
        assert not local_settings.local.root.joinpath(local_settings.name).exists()


@pytest.fixture
def host_leftovers() -> Callable[[str], list[str]]:
    """find_leftovers: what a box's start made on the host and is still there."""
    return find_leftovers


@pytest.fixture
def running_box(local_box: LocalProvider) -> RunningBox:
    return RunningBox(local_box, local_box.start(timeout_s=START_TIMEOUT_S))


@pytest.fixture
def box_conn(local_settings: BoxSettings, running_box: RunningBox) -> Iterator[Any]:
    """A pinned connection to the running test box, its ssh entry up to date."""
    address = running_box.state.address
    assert address is not None
    ssh.update(local_settings, address)
    wait_and_pin(local_settings, running_box.provider, address, 60)
    with connect(local_settings, address) as conn:
        yield conn
