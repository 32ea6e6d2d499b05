"""The gates: what the router saw of a slot (its requests, errors and latency since a point
in its access log) and the judgement of a step or a bake. Real log files; no box, no mocks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from remote.agent.deploy import gates


def line(route: str, status_code: int = 200, seconds: Any = 0.01, **extra: Any) -> str:
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


def _line(slot: str, status_code: int, uri: str = "/invocations") -> str:
    return json.dumps({"slot": slot, "uri": uri, "status": status_code}) + "\n"


def test_the_bake_counts_the_slots_prediction_errors_4xx_included(tmp_path: Path) -> None:
    log = tmp_path / "router.log"
    log.write_text(_line("blue", 500))
    window = gates.Window("green", gates.log_offset(str(log)))
    with log.open("a") as handle:
        handle.write(_line("green", 200) + _line("green", 400) + _line("green", 200, "/ping"))
        handle.write(_line("blue", 502) + _line("green", 502) + '{"slot": "green", "ur')
    gates.read_new(window, str(log))
    assert (window.requests, window.errors) == (3, 2)
    with log.open("a") as handle:
        handle.write('i": "/invocations", "status": 200}\n')
    gates.read_new(window, str(log))
    assert (window.requests, window.errors) == (4, 2)
    log.write_text(_line("green", 200))  # rotated: a new, shorter file
    gates.read_new(window, str(log))
    assert window.requests == 5 and window.describe() == "5 requests, 2 errors (40.0%)"


def test_the_gates_limits_are_inclusive(tmp_path: Path) -> None:
    # exactly min_requests is enough; exactly the error rate or the p99 limit passes
    exactly = window_of(tmp_path, *[line("green", seconds=0.1)] * 19, line("green", 500))
    gate = gates.Gate(max_error_rate=0.05, min_requests=20, max_p99_ms=100)
    assert (exactly.requests, exactly.error_rate) == (20, 0.05)
    assert gates.judge(exactly, gate, final=True)[0] == gates.PASS
    # one request fewer is too few; one error more, or a millisecond slower, fails
    fewer = gates.Gate(max_error_rate=0.05, min_requests=21, max_p99_ms=100)
    assert gates.judge(exactly, fewer, final=True)[0] == gates.INCONCLUSIVE
    stricter = gates.Gate(max_error_rate=0.049, min_requests=20, max_p99_ms=100)
    assert gates.judge(exactly, stricter, final=False)[0] == gates.FAIL
    faster = gates.Gate(max_error_rate=0.05, min_requests=20, max_p99_ms=99)
    assert gates.judge(exactly, faster, final=True)[0] == gates.FAIL
