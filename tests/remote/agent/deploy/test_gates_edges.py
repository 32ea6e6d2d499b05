"""The gates' edges: reading the router's log again and again (nothing counted twice or
lost, a garbled line skipped, a log that does not exist yet), counting the lines nginx
writes without some fields, the nearest-rank percentile at its ends, and the figures the
deploy history keeps. Real log files in tmp_path; no box, no mocks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from remote.agent.deploy import gates
from tests.remote.agent.deploy.test_gates import line, window_of

GATE = gates.Gate(max_error_rate=0.5, min_requests=1, max_p99_ms=100)


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [
        ([], 99, None),
        ([5.0], 99, 5.0),
        ([20.0, 10.0], 99, 20.0),  # the slower of two requests, whatever the order
        ([20.0, 10.0], 50, 10.0),  # the median of two is the first, by nearest rank
        ([float(v) for v in range(1, 101)], 99, 99.0),
        ([float(v) for v in range(1, 201)], 99, 198.0),
        ([10.0, 20.0, 30.0], 0, 10.0),  # out of range: the smallest or the largest
        ([10.0, 20.0, 30.0], 150, 30.0),
    ],
)
def test_the_percentile_is_the_nearest_rank(
    values: list[float], pct: float, expected: float | None
) -> None:
    assert gates.percentile(values, pct) == expected


def test_a_window_started_before_the_log_exists_reads_its_first_line_whole(
    tmp_path: Path,
) -> None:
    log = tmp_path / "router.log"
    assert gates.log_offset(str(log)) == 0
    window = gates.Window("green", gates.log_offset(str(log)))
    assert gates.read_new(window, str(log)).requests == 0  # still no log: nothing read
    log.write_text(line("green"))
    assert gates.read_new(window, str(log)).requests == 1


def test_reading_again_and_again_counts_each_line_once(tmp_path: Path) -> None:
    log = tmp_path / "router.log"
    log.write_text(line("green") * 2)
    window = gates.Window("green", 0)
    counted = []
    for _ in range(2):
        gates.read_new(window, str(log))
        counted.append(window.requests)
        gates.read_new(window, str(log))  # nothing new: nothing more
        counted.append(window.requests)
        with log.open("a") as handle:
            handle.write(line("green", 500))
    gates.read_new(window, str(log))
    assert [*counted, window.requests] == [2, 2, 3, 3, 4]
    assert window.errors == 2 and window.offset == log.stat().st_size


def test_a_garbled_line_is_skipped_and_the_lines_after_it_still_count(tmp_path: Path) -> None:
    window = window_of(tmp_path, line("green"), "not json at all\n", line("green", 400))
    assert (window.requests, window.errors) == (2, 1)


@pytest.mark.parametrize(
    ("failure", "why"),
    [
        (line("green", upstream_status="502, 200"), "tried twice, then answered by itself"),
        (line("green", slot="blue"), "routed to it, answered by another slot"),
        (line("green", 502, upstream_status="-"), "nginx answered: no upstream at all"),
    ],
)
def test_each_sign_of_an_unreachable_slot_counts_once_per_request(
    tmp_path: Path, failure: str, why: str
) -> None:
    window = window_of(tmp_path, line("green"), failure, failure)
    assert window.upstream_failures == 2, why
    verdict, reason = gates.judge(window, GATE, final=False)
    assert verdict == gates.FAIL and "from green for 2 of its requests" in reason


def test_a_line_without_a_status_or_upstream_status_is_read_as_nginx_wrote_it(
    tmp_path: Path,
) -> None:
    bare = json.dumps({"route": "green", "slot": "green", "uri": "/invocations"}) + "\n"
    unreached = {"route": "green", "slot": "green", "uri": "/invocations", "status": 502}
    window = window_of(tmp_path, bare, json.dumps(unreached) + "\n")
    # no status is not an error; a 502 no upstream answered is the router not reaching it
    assert (window.requests, window.errors, window.upstream_failures) == (2, 1, 1)
    # no request_time is taken as instant: it never fails the latency gate
    assert window.latencies_ms == [0.0, 0.0]


def test_a_request_without_a_time_counts_and_passes_without_a_p99(tmp_path: Path) -> None:
    window = window_of(tmp_path, line("green", seconds="-"), line("green", seconds=None))
    assert (window.requests, window.latencies_ms, window.p99_ms) == (2, [], None)
    assert gates.judge(window, GATE, final=True) == (gates.PASS, "2 requests, 0 errors (0.0%)")


def test_the_figures_kept_in_the_history_are_rounded_to_what_is_shown(tmp_path: Path) -> None:
    window = window_of(
        tmp_path,
        line("green", seconds=0.001),
        line("green", 500, seconds=0.01234),
        line("green", seconds=0.002),
        *[line("blue")] * 4,
    )
    assert window.figures() == {
        "requests": 3,
        "errors": 1,
        "error_rate": 0.3333,
        "p99_ms": 12.3,
        "upstream_failures": 0,
        "total": 7,
        "share": 0.4286,
    }
    assert gates.Window("green", 0).figures() == {
        "requests": 0,
        "errors": 0,
        "error_rate": 0.0,
        "p99_ms": None,
        "upstream_failures": 0,
        "total": 0,
        "share": 0.0,
    }
