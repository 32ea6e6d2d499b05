"""The canary's controller parts: its steps and durations checked up front, and the
status line. No box, no mocks. The gates that judge it: tests/remote/agent/deploy/."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from remote.deploy import status
from remote.deploy.plan import CanaryPlan, parse_steps
from remote.errors import ConfigError

URI = "models:/taxi/2"


@pytest.mark.parametrize(
    ("text", "steps"),
    [("5,25,50,100", (5, 25, 50, 100)), ("100", (100,)), (" 1, 100", (1, 100))],
)
def test_steps_that_grow_to_100_are_taken(text: str, steps: tuple[int, ...]) -> None:
    assert parse_steps(text) == steps


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5,3,100", "do not grow step by step"),
        ("5,5,100", "do not grow step by step"),
        ("5,25,50", "end at 50%, not 100%"),
        ("0,100", "each step is from 1 to 100"),
        ("5,101", "each step is from 1 to 100"),
        ("-5,100", "each step is from 1 to 100"),
        ("5.5,100", "is not a list of numbers"),
        ("5,,100", "is not a list of numbers"),
        ("", "--steps is empty"),
    ],
)
def test_steps_that_do_not_grow_to_100_are_refused_saying_what_to_give(
    text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        parse_steps(text)
    assert "such as 5,25,50,100" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_max_duration_shorter_than_the_bakes_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"--max-duration 30s is shorter than the bakes \(4 "):
        CanaryPlan(URI, (5, 25, 50, 100), bake_s=10, max_duration_s=30)
    assert CanaryPlan(URI, (5, 25, 50, 100), bake_s=10, max_duration_s=40).max_duration_s == 40
    # Not given: room for a quiet step to wait for requests.
    assert CanaryPlan(URI, (5, 100), bake_s=60).max_duration_s == 360


def test_the_default_max_duration_keeps_within_the_cap_and_longer_bakes_are_refused() -> None:
    week = 7 * 24 * 3600
    # four one-day bakes: three times them would be 12 days; the default stops at 7
    assert CanaryPlan(URI, (5, 25, 50, 100), bake_s=86400).max_duration_s == week
    with pytest.raises(ConfigError, match="--bake 604800s for 4 steps is 2419200s of bakes"):
        CanaryPlan(URI, (5, 25, 50, 100), bake_s=week)
    assert CanaryPlan(URI, (100,), bake_s=week).max_duration_s == week


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_requests": 0}, "--min-requests is 0"),
        ({"max_p99_ms": -1}, "--max-p99-ms is -1: give milliseconds"),
        ({"max_error_rate": 1.5}, "--max-error-rate"),
        ({"bake_s": -1}, "--bake is -1"),
        ({"model_uri": "taxi"}, "is not a model URI"),
    ],
)
def test_bad_canary_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CanaryPlan(**{"model_uri": URI, **kwargs})


def test_the_launch_carries_every_setting_to_the_box() -> None:
    plan = CanaryPlan(URI, (10, 100), 5, 0.02, 250, 7, 30, 60)
    assert plan.launch_args() == [
        "--steps", "10,100", "--bake", "5.0", "--max-error-rate", "0.02", "--max-p99-ms",
        "250.0", "--min-requests", "7", "--max-duration", "30.0", "--termination-wait", "60.0",
    ]  # fmt: skip


def test_status_shows_the_step_the_weight_the_figures_and_the_time_left() -> None:
    now = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
    canary = {
        "step": 2,
        "of": 4,
        "weight": 25,
        "figures": {"requests": 40, "errors": 1, "error_rate": 0.025, "p99_ms": 12.3},
        "bake_ends": "2026-01-01T12:00:07+00:00",
        "deadline": "2026-01-01T12:02:00+00:00",
    }
    assert status.describe_canary(canary, now) == (
        "step 2/4 at 25%: 40 requests, 1 errors (2.5%), p99 12 ms, 7s left of the bake, "
        "120s to --max-duration"
    )
