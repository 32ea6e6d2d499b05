"""The local test box's constants, and what its start leaves on the host.

Shared by tests/box/conftest.py (its fixtures), the box tests and the benchmarks.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

from remote.providers.base import BoxState
from remote.providers.local import netns
from remote.providers.local.provider import LocalProvider

REPO_ROOT = Path(__file__).resolve().parents[3]
TEST_SUBNET = "10.214.0.0/16"
START_TIMEOUT_S = 180.0
HOST_TOOLS = ("systemd-nspawn", "debootstrap", "iptables", "ip", "chroot")


def skip_reason() -> str | None:
    if platform.system() != "Linux":
        return "the local box needs Linux"
    if os.geteuid() != 0:
        return "the local box needs root (run the box tier with sudo)"
    missing = [tool for tool in HOST_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"the local box needs {', '.join(missing)} (apt-get install systemd-container ...)"
    return None


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
