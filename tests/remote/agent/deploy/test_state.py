"""The deploy state file: written whole, only when it changed, under its lock; a running
transition refused by name and a dead one closed. Real files; no box."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import pytest

from remote.agent.deploy import state, transition
from remote.agent.system.failure import AgentFailure


def test_the_state_is_written_whole_and_only_when_it_changed(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    assert state.load(path) == state.empty()
    with state.changing(path) as current:
        current["revision"] = 3
    assert json.loads(Path(path).read_text())["revision"] == 3
    mtime = os.stat(path).st_mtime_ns
    with state.changing(path) as current:
        pass
    assert os.stat(path).st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_failed_change_writes_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    with pytest.raises(RuntimeError), state.changing(path) as current:
        current["live"] = {"slot": "blue"}
        raise RuntimeError("nginx refused")
    assert state.load(path)["live"] is None


def test_a_running_deploy_is_refused_by_name_and_a_dead_one_is_closed() -> None:
    current = state.empty()
    current["transition"] = {
        "revision": 4,
        "kind": "blue-green",
        "model_uri": "models:/taxi/2",
        "phase": "preparing",
        "holder": state.holder_of(os.getpid()),
        "by": "ann@laptop",
        "started": "2026-01-01T00:00:00+00:00",
        "step": "preparing",
        "log": ["fetching"],
    }
    with pytest.raises(AgentFailure) as refused:
        state.refuse_if_busy(current)
    assert refused.value.kind == "busy"
    assert "a blue-green of models:/taxi/2 (revision 4" in refused.value.sentence
    assert "by ann@laptop" in refused.value.sentence
    current["transition"]["holder"] = {"pid": os.getpid(), "start": -1}  # a reused pid
    state.refuse_if_busy(current)
    assert current["transition"] is None
    assert current["history"][-1]["outcome"] == "interrupted"
    assert current["history"][-1]["log"] == ["fetching"]


@pytest.mark.parametrize(
    ("kind", "recorded", "kind_refused"),
    [
        ("rollback", {}, "nothing-to-roll-back"),
        ("canary", {}, "nothing-live"),
        ("canary", {"live": {"slot": "blue"}, "mirror": {"model": {"name": "m", "version": "2"}}},
         state.KIND_BUSY),
    ],
)  # fmt: skip
def test_a_deploy_the_box_refuses_changes_nothing_there_first(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    recorded: dict[str, object],
    kind_refused: str,
) -> None:
    # `reconcile` reloads nginx and starts or stops slots: here it only notes that it ran
    # (this machine has no box to change). A refusal comes before it.
    path = str(tmp_path / "state.json")
    with state.changing(path) as current:
        current.update(recorded)
    monkeypatch.setattr(state, "changing", functools.partial(state.changing, path))
    reconciled: list[int] = []
    monkeypatch.setattr(transition, "reconcile", lambda current: reconciled.append(1))
    with pytest.raises(AgentFailure) as refused:
        transition.begin(kind, "models:/m/3", os.getpid(), "ann@laptop")
    assert refused.value.kind == kind_refused
    assert reconciled == []
    assert state.load(path).get("transition") is None
    # what it is there for: a deploy that goes ahead reconciles first
    transition.begin("blue-green", "models:/m/3", os.getpid(), "ann@laptop")
    assert reconciled == [1]
