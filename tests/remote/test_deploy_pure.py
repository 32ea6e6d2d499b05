"""The controller's serving checks (model URIs, settings, requirements, the environment's
name) and the status text. No box, no mocks. The agent's parts are tested in
tests/remote/agent/deploy/."""

from __future__ import annotations

import datetime
import fnmatch
from typing import Any

import pytest

from remote import contract
from remote.agent.deploy import state
from remote.agent.system import layout
from remote.deploy import status
from remote.deploy.plan import BlueGreenPlan, check_requirements, env_key
from remote.errors import ConfigError

MODEL_1 = {"name": "taxi", "version": "1", "uri": "models:/taxi/1", "source": "models:/taxi/1"}
MODEL_2 = {**MODEL_1, "version": "2", "uri": "models:/taxi@challenger"}


def test_the_idle_auto_stop_counts_a_running_transition_as_busy() -> None:
    # the idle auto-stop counts a running transition as busy by this pattern
    assert fnmatch.fnmatch(f"{layout.TRANSITION_UNIT}.service", contract.DEPLOY_UNIT_PATTERN)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bake_s": -1}, "--bake is -1"),
        ({"termination_wait_s": 10**9}, "--termination-wait"),
        ({"max_error_rate": 1.5}, "--max-error-rate is 1.5"),
        ({"bake_s": "soon"}, "--bake is 'soon'"),
    ],
)
def test_bad_deploy_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        BlueGreenPlan("models:/taxi/1", **kwargs)
    assert message in str(refused.value)


def test_an_environment_is_named_by_its_requirements_in_any_order_and_the_python() -> None:
    one = env_key(["mlflow==3.1", "pandas==2.2"], "3.11.2")
    assert one == env_key(["pandas==2.2", "mlflow==3.1"], "3.11.2")
    assert one != env_key(["mlflow==3.1", "pandas==2.3"], "3.11.2")
    assert one != env_key(["mlflow==3.1", "pandas==2.2"], "3.12.3")


def test_a_requirement_that_reads_as_a_pip_option_is_refused() -> None:
    assert check_requirements(["mlflow==3.1", "numpy>=1.24; python_version>'3'"])
    with pytest.raises(ConfigError, match="not a package"):
        check_requirements(["--index-url=http://evil"])


def _state(**routing: Any) -> dict[str, Any]:
    return {**state.empty(), "revision": 7, **routing}


def test_status_says_what_serves_where_and_what_happened_last() -> None:
    current = _state(
        live={"slot": "green", "model": MODEL_2},
        previous={"slot": "blue", "model": MODEL_1},
        slots={
            "blue": {"model": MODEL_1, "retire_at": "2026-01-01T00:10:00+00:00"},
            "green": {"model": MODEL_2},
        },
    )
    current["last"] = {
        "revision": 7,
        "kind": "blue-green",
        "model_uri": "models:/taxi@challenger",
        "slot": "green",
        "outcome": "live",
        "finished": "2026-01-01T00:00:00+00:00",
    }
    units = {
        slot: {"port": port, "active": "active", "enabled": slot == "green"}
        for slot, port in layout.SLOT_PORTS.items()
    }
    answer = {"state": current, "slots": units, "nginx": "active", "router_configured": True}
    text = status.describe_status(
        answer, "box", datetime.datetime(2026, 1, 1, 0, 0, 0, tzinfo=datetime.UTC)
    )
    assert "router nginx active on 127.0.0.1:8000, revision 7" in text
    assert "live      green  taxi/2  (models:/taxi@challenger)" in text
    assert "stopped in 600s by a timer" in text
    assert "Revision 7 (blue-green of models:/taxi@challenger) is live in slot green." in text
