"""The canary's pure parts: its steps and durations checked up front, the gate's
judgement of a candidate's own requests, and the status line. No box, no mocks."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from remote.agent.deploy import gates
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


# -- the gate -----------------------------------------------------------------------------


def line(route: str, status_code: int = 200, seconds: float = 0.01, **extra: Any) -> str:
    entry = {
        "route": route,
        "slot": extra.pop("slot", route),
        "uri": extra.pop("uri", "/invocations"),
        "status": status_code,
        "upstream_status": extra.pop("upstream_status", str(status_code)),
        "request_time": seconds,
    }
    return json.dumps(entry) + "\n"


def window_of(tmp_path: Path, *lines: str, slot: str = "green") -> gates.Window:
    log = tmp_path / "router.log"
    log.write_text("".join(lines))
    return gates.read_new(gates.Window(slot, 0), str(log))


GATE = gates.Gate(max_error_rate=0.05, min_requests=10, max_p99_ms=100)


def test_only_the_candidates_own_requests_are_judged(tmp_path: Path) -> None:
    window = window_of(
        tmp_path,
        *[line("green")] * 10,
        *[line("blue", 500)] * 30,  # the stable slot's errors are not the candidate's
        line("green", uri="/ping"),
    )
    assert (window.requests, window.errors, window.total) == (10, 0, 40)
    assert window.share == 0.25
    assert gates.judge(window, GATE, final=True) == (
        gates.PASS,
        "10 requests, 0 errors (0.0%), p99 10 ms",
    )


def test_a_400_counts_as_an_error_and_fails_the_step_at_once(tmp_path: Path) -> None:
    window = window_of(tmp_path, *[line("green")] * 9, line("green", 400))
    verdict, why = gates.judge(window, GATE, final=False)
    assert verdict == gates.FAIL and "1 errors (10.0%): error rate above 5.0%" in why


def test_too_few_requests_is_inconclusive_never_a_pass(tmp_path: Path) -> None:
    window = window_of(tmp_path, *[line("green")] * 9)
    assert gates.judge(window, GATE, final=True)[0] == gates.INCONCLUSIVE
    assert "fewer than the 10 needed" in gates.judge(window, GATE, final=True)[1]
    assert gates.judge(window_of(tmp_path), GATE, final=True)[0] == gates.INCONCLUSIVE


def test_a_slow_candidate_fails_on_its_p99_at_the_end_of_the_bake(tmp_path: Path) -> None:
    window = window_of(tmp_path, *[line("green")] * 98, *[line("green", seconds=0.4)] * 2)
    assert window.p99_ms == 400
    assert gates.judge(window, GATE, final=False)[0] == gates.INCONCLUSIVE
    verdict, why = gates.judge(window, GATE, final=True)
    assert verdict == gates.FAIL and "p99 400 ms: above 100 ms" in why
    ungated = gates.Gate(GATE.max_error_rate, GATE.min_requests, 0)
    assert gates.judge(window, ungated, final=True)[0] == gates.PASS


@pytest.mark.parametrize(
    "failure",
    [
        line("green", 200, slot="blue", upstream_status="502, 200"),  # retried on the stable
        line("green", 502, upstream_status="502"),  # nginx answered: the slot did not
        line("green", 504, upstream_status="504"),
    ],
)
def test_a_candidate_the_router_could_not_reach_fails_even_if_retried(
    tmp_path: Path, failure: str
) -> None:
    window = window_of(tmp_path, *[line("green")] * 50, failure)
    assert window.upstream_failures == 1
    verdict, why = gates.judge(window, GATE, final=False)
    assert verdict == gates.FAIL and "could not get an answer from green for 1" in why


def test_a_model_that_answers_503_itself_is_an_error_not_unreachable(tmp_path: Path) -> None:
    window = window_of(tmp_path, *[line("green")] * 50, line("green", 503))
    assert (window.upstream_failures, window.errors) == (0, 1)


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
