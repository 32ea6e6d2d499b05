"""The deploy plans' edges: each limit taken exactly at its end and refused just past it,
every refusal naming its option and what to give, the values a plan keeps (as numbers,
stripped), and the name of a model's environment. Pure checks; no box, no mocks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from remote.deploy.plan import (
    BlueGreenPlan,
    CanaryPlan,
    RollbackPlan,
    check_milliseconds,
    check_percent,
    check_rate,
    check_seconds,
    env_key,
)
from remote.errors import ConfigError

URI = "models:/taxi/2"
WEEK_MS = 7 * 24 * 3600 * 1000


@pytest.mark.parametrize(
    ("check", "value", "kept"),
    [
        (check_seconds, 0, 0),
        (check_seconds, "604800", 604800),
        (check_milliseconds, 0, 0),
        (check_milliseconds, 1000, 1000),
        (check_milliseconds, WEEK_MS, WEEK_MS),
        (check_rate, 0, 0),  # a gate that allows no errors at all
        (check_rate, "0.999", 0.999),
        (check_percent, "0.01", 0.01),
        (check_percent, 100, 100),
        (check_percent, "12.5", 12.5),
    ],
)
def test_each_limit_is_taken_up_to_its_end(
    check: Callable[[str, Any], float], value: Any, kept: float
) -> None:
    assert check("x", value) == kept


@pytest.mark.parametrize(
    ("check", "value", "message"),
    [
        (check_seconds, "soon", "--bake is 'soon': give seconds, such as 60."),
        (check_seconds, 604800.5, "--bake is 604800.5: give seconds from 0 to 604800."),
        (check_milliseconds, "fast", "--bake is 'fast': give milliseconds, such as 500."),
        (check_milliseconds, WEEK_MS + 1, f"--bake is {WEEK_MS + 1}: give milliseconds"),
        (check_rate, "low", "--bake is 'low': give a fraction such as 0.01."),
        (check_rate, 1, "--bake is 1: give a fraction from 0 to below 1"),
        (check_percent, "ten", "--bake is 'ten': give a number such as 10."),
        (check_percent, 100.01, "--bake is 100.01: give a percent from 0.01 to 100"),
    ],
)
def test_each_refusal_names_the_option_and_what_to_give(
    check: Callable[[str, Any], float], value: Any, message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        check("bake", value)
    assert str(refused.value).startswith(message)


def test_a_blue_green_plan_keeps_its_settings_as_numbers_and_the_uri_stripped() -> None:
    plan = BlueGreenPlan(" models:/taxi/1 ", "30", "60", "0")
    assert (plan.model_uri, plan.bake_s, plan.termination_wait_s, plan.max_error_rate) == (
        "models:/taxi/1",
        30.0,
        60.0,
        0.0,
    )


def test_a_rollback_plan_checks_and_keeps_its_termination_wait() -> None:
    assert RollbackPlan().termination_wait_s == 600.0
    assert RollbackPlan("30").termination_wait_s == 30.0
    with pytest.raises(ConfigError, match=r"^--termination-wait is -1: give seconds from 0"):
        RollbackPlan(-1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"termination_wait_s": "never"}, "--termination-wait is 'never': give seconds"),
        ({"max_duration_s": -1}, "--max-duration is -1: give seconds from 0"),
        ({"max_p99_ms": "fast"}, "--max-p99-ms is 'fast': give milliseconds"),
        ({"max_error_rate": "low"}, "--max-error-rate is 'low': give a fraction"),
        ({"min_requests": "many"}, "--min-requests is many: give a whole number of 1 or more"),
        ({"min_requests": "2.5"}, "--min-requests is 2.5: give a whole number"),
    ],
)
def test_each_canary_refusal_names_its_option(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        CanaryPlan(**{"model_uri": URI, **kwargs})
    assert str(refused.value).startswith(message)


def test_a_canary_plan_keeps_its_settings_parsed_and_the_uri_stripped() -> None:
    plan = CanaryPlan(" models:/taxi/2 ", "5, 100", "10", "0.02", "250", "3")
    assert (plan.model_uri, plan.steps, plan.bake_s, plan.max_error_rate) == (
        URI,
        (5, 100),
        10.0,
        0.02,
    )
    assert (plan.max_p99_ms, plan.min_requests, plan.max_duration_s) == (250.0, 3, 60.0)


def test_bakes_past_the_cap_are_refused_saying_how_to_shorten_them() -> None:
    with pytest.raises(ConfigError, match=r"give a shorter --bake or fewer --steps\.$"):
        CanaryPlan(URI, (50, 100), bake_s=7 * 24 * 3600)


def test_one_request_per_step_is_enough_when_asked_for() -> None:
    assert CanaryPlan(URI, min_requests=1).min_requests == 1
    assert CanaryPlan(URI, min_requests="2").min_requests == 2


@pytest.mark.parametrize(
    ("steps", "bake_s", "duration"),
    [
        ((100,), 10, 60.0),  # three times a short bake is 30 s: a canary gets a minute
        ((100,), 20, 60.0),
        ((100,), 21, 63.0),
        ((50, 100), 10, 60.0),
    ],
)
def test_the_default_max_duration_is_at_least_a_minute(
    steps: tuple[int, ...], bake_s: float, duration: float
) -> None:
    assert CanaryPlan(URI, steps, bake_s=bake_s).max_duration_s == duration


def test_an_environment_keeps_its_name_from_one_release_to_the_next() -> None:
    # the name of the virtualenvs already on a box: a change would rebuild them all
    key = env_key(["mlflow==3.1", "pandas==2.2"], "3.11.2")
    assert key == "14a49592ee8fc5e1"
