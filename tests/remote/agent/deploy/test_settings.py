"""A transition's launch settings: one typed record per kind, every value the
controller's, kept in the state file and read back from it."""

from __future__ import annotations

import pytest

from remote.agent.deploy import settings
from remote.agent.deploy.kinds import KINDS
from remote.agent.system.failure import AgentFailure


def test_a_kind_launched_without_one_of_its_settings_is_refused_by_option_name() -> None:
    with pytest.raises(AgentFailure) as refused:
        settings.BlueGreen.of({"env": "/e", "termination_wait": 600.0, "max_error_rate": 0.01})
    assert refused.value.kind == settings.KIND_LAUNCH
    assert refused.value.sentence == "This transition needs --bake."
    with pytest.raises(AgentFailure) as refused:
        settings.BlueGreen.of({"env": "/e"})
    assert refused.value.sentence == (
        "This transition needs --bake, --termination-wait, --max-error-rate."
    )


def test_a_canary_record_round_trips_through_the_state_file_and_ignores_other_keys() -> None:
    given = {
        "env": "/e",
        "steps": (5, 50, 100),
        "bake": 30.0,
        "termination_wait": 600.0,
        "max_error_rate": 0.01,
        "min_requests": 1,
        "max_p99_ms": 0.0,
        "max_duration": 0.0,
        "sample": None,
    }
    record = settings.Canary.of(given)
    stored = record.stored()
    stored["steps"] = list(stored["steps"])  # as JSON gives it back

    assert settings.Canary.of(stored) == record
    assert record.steps == (5, 50, 100)
    assert "sample" not in stored


def test_every_kind_is_listed_once_with_its_settings_record() -> None:
    assert list(KINDS) == ["blue-green", "rollback", "canary", "shadow"]
    assert KINDS["rollback"].settings is settings.Rollback
    assert not KINDS["rollback"].new_model
