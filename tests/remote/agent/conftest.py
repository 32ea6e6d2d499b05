"""The agent's tests run its code on this machine: host_guard's stand-ins come first on
PATH for all of them, in-process calls and bundle runs alike (see host_guard.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.remote.agent import host_guard


@pytest.fixture(autouse=True)
def guarded_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The refused-calls log of this test: empty unless the agent asked to act here."""
    folder = host_guard.install(tmp_path / "host-guard")
    log = tmp_path / "host-guard.log"
    monkeypatch.setenv("PATH", host_guard.path_with(folder))
    monkeypatch.setenv(host_guard.LOG_ENV, str(log))
    yield log


@pytest.fixture
def tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This machine's local time zone set nine hours ahead of UTC."""
    monkeypatch.setenv("TZ", "JST-9")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
