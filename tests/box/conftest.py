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

What the fixtures are made of, and what benchmarks share with the tests, is in
tests/box/harness/ (local_box.py: the test box's constants and its leftovers on the host).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from remote.providers.local.provider import LocalProvider
from remote.settings import BoxSettings, load_settings
from remote.ssh import config_entry as ssh
from remote.ssh import keys
from remote.ssh.connection import connect
from remote.ssh.first_contact import wait_and_pin
from tests.box.harness.local_box import (
    REPO_ROOT,
    START_TIMEOUT_S,
    TEST_SUBNET,
    RunningBox,
    find_leftovers,
    skip_reason,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = skip_reason()
    if reason is None:
        return
    for item in items:
        if "box" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def local_settings(tmp_path_factory: pytest.TempPathFactory) -> BoxSettings:
    reason = skip_reason()
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
