"""The shadow pairing's edges: the time window's ends (records and relay copies exactly
at the start or end are in), what a log line gives a record, the relay's skipped lines,
how pairs and unmatched copies are counted, each side's summary, the tolerance and
class-count boundaries and nearest-rank percentiles. Real files in tmp_path; no mocks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from remote.agent.monitor.shadow.pairs import (
    MAX_CLASSES,
    Pair,
    Record,
    Side,
    agreement,
    answer_kind,
    compare,
    percentile,
    read_records,
    read_relay,
    within,
)

LINE = {
    "time": "2026-01-01T10:00:01.000+00:00",
    "request_id": "r",
    "slot": "blue",
    "status": 200,
    "latency_ms": 3.5,
    "inputs": [{"trip_distance": 2.5}, {"trip_distance": 9.0}],
    "outputs": [1.5, 4.0],
}
DROP = object()  # a key left out of the line


def _log(path: Path, lines: list[dict[str, Any] | str]) -> None:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))


def _read_one(tmp_path: Path, line: dict[str, Any], file: str = "blue") -> Record:
    _log(tmp_path / f"{file}.jsonl", [line])
    (record,) = read_records(str(tmp_path), [file], "2026-01-01T00:00:00.000")
    return record


def test_a_log_line_gives_every_field_of_its_record(tmp_path: Path) -> None:
    assert _read_one(tmp_path, LINE) == Record(
        "r", "2026-01-01T10:00:01.000+00:00", "blue", 200, 3.5, [1.5, 4.0], {"trip_distance": 2.5}
    )


@pytest.mark.parametrize(
    ("changes", "field", "value"),
    [
        ({"slot": DROP}, "slot", "blue"),  # no slot in the line: the file's
        ({"slot": "green"}, "slot", "green"),  # the line's slot wins over the file's name
        ({"outputs": {"predictions": [1.5]}}, "outputs", None),  # not a list: no answer
        ({"outputs": None}, "outputs", None),
        ({"inputs": None}, "first_input", None),
        ({"inputs": []}, "first_input", None),
        ({"inputs": "abc"}, "first_input", None),
        ({"status": "503"}, "status", 503),
    ],
)
def test_what_a_log_line_gives_its_record(
    tmp_path: Path, changes: dict[str, Any], field: str, value: Any
) -> None:
    line = {key: item for key, item in {**LINE, **changes}.items() if item is not DROP}
    assert getattr(_read_one(tmp_path, line), field) == value


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-01-01T10:00:01.000", "2026-01-01T10:00:02.000"),
        ("2026-01-01T10:00:01.000+00:00", "2026-01-01T10:00:02.000+00:00"),
    ],
)
def test_records_exactly_at_the_windows_start_and_end_are_in(
    tmp_path: Path, start: str, end: str
) -> None:
    times = {
        "before": "2026-01-01T10:00:00.999+00:00",
        "at-start": "2026-01-01T10:00:01.000+00:00",
        "at-end": "2026-01-01T10:00:02.000+00:00",
        "after": "2026-01-01T10:00:02.001+00:00",
    }
    _log(tmp_path / "blue.jsonl", [{**LINE, "request_id": i, "time": t} for i, t in times.items()])
    found = [r.request_id for r in read_records(str(tmp_path), ["blue"], start, end)]
    assert found == ["at-start", "at-end"]


def test_relay_copies_in_the_windows_first_and_last_second_count_and_skipped_lines_go_on(
    tmp_path: Path,
) -> None:
    def entry(time: str, status: int, **rest: Any) -> dict[str, Any]:
        return {"time": time, "request_id": "r", "uri": "/__mlops/shadow", "status": status, **rest}

    _log(
        tmp_path / "mirror.log",
        [
            entry("2026-01-01T10:00:04+00:00", 200),  # before the window
            entry("2026-01-01T10:00:06+00:00", 200, request_id="mlops-warmup-1-mirror"),
            "torn",
            entry("2026-01-01T10:00:05+00:00", 200),  # the start's second
            {"time": "2026-01-01T10:00:07+00:00", "uri": "/invocations", "status": 503},
            entry("2026-01-01T10:00:09+00:00", 504),  # the end's second
            entry("2026-01-01T10:00:10+00:00", 200),  # after it
        ],
    )
    found = read_relay(
        str(tmp_path / "mirror.log"), "2026-01-01T10:00:05.000", "2026-01-01T10:00:09.000"
    )
    assert found == {"200": 1, "dropped": 1, "504": 1}


def rec(
    request_id: str,
    outputs: Any,
    *,
    status: int = 200,
    t: int = 0,
    first: dict[str, Any] | None = None,
) -> Record:
    return Record(request_id, f"2026-01-01T00:00:{t:02d}.000", "x", status, 5.0, outputs, first)


@pytest.mark.parametrize(
    ("live", "shadow", "paired", "unmatched"),
    [
        # a failed live answer is never paired, even with outputs logged
        ([rec("a", [1.0], status=500)], [rec("a", [1.0])], 0, 1),
        # nor a failed shadow answer, nor a shadow's 200 without outputs
        ([rec("a", [1.0])], [rec("a", [2.0], status=500)], 0, 0),
        ([rec("a", [1.0])], [rec("a", None)], 0, 0),
        # a repeated shadow answer is skipped and the ones after it still pair
        (
            [rec("a", [1.0]), rec("b", [2.0])],
            [rec("a", [1.0], t=1), rec("a", [1.0], t=2), rec("b", [2.0], t=3)],
            2,
            0,
        ),
        # each copy without a live answer counts
        ([], [rec("x", [1.0]), rec("y", [1.0]), rec("z", [1.0])], 0, 3),
    ],
)
def test_what_is_paired_and_what_is_unmatched(
    live: list[Record], shadow: list[Record], paired: int, unmatched: int
) -> None:
    found = compare(live, shadow)
    assert (found.paired_requests, found.unmatched_shadow) == (paired, unmatched)
    assert len(found.pairs) == paired


@pytest.mark.parametrize(
    ("live", "shadow", "difference"),
    [([1.5], [2.0], 0.5), (["cat"], ["dog"], None)],
)
def test_a_pair_keeps_the_live_requests_time_and_first_input(
    live: list[Any], shadow: list[Any], difference: float | None
) -> None:
    found = compare(
        [rec("a", live, t=1, first={"row": "live"})],
        [rec("a", shadow, t=7, first={"row": "shadow"})],
    )
    assert found.pairs == [
        Pair("a", "2026-01-01T00:00:01.000", live[0], shadow[0], {"row": "live"}, difference)
    ]


def test_the_top_differences_are_the_largest_first() -> None:
    live = [rec(str(i), [10.0]) for i in range(3)]
    shadow = [rec(str(i), [10.0 + d]) for i, d in enumerate([0.5, 3.0, 1.0])]
    assert [p.difference for p in compare(live, shadow).top(2)] == [3.0, 1.0]


def test_a_sides_summary() -> None:
    side = Side()
    for ms, status in [(40.0, 200), (10.0, 500), (30.0, 200), (20.0, 200)]:
        side.add(Record("r", "t", "x", status, ms, None))
    assert side.summary() == {
        "requests": 4,
        "errors": 1,
        "error_rate": 0.25,
        "p50_ms": 20.0,
        "p90_ms": 40.0,
        "p99_ms": 40.0,
        "max_ms": 40.0,
    }
    assert Side().summary() == {
        "requests": 0,
        "errors": 0,
        "error_rate": 0.0,
        "p50_ms": None,
        "p90_ms": None,
        "p99_ms": None,
        "max_ms": None,
    }


def test_at_most_max_classes_distinct_integers_are_classes() -> None:
    assert answer_kind(list(range(MAX_CLASSES))) == "classification"
    assert answer_kind(list(range(MAX_CLASSES + 1))) == "regression"


@pytest.mark.parametrize(
    ("live", "shadow", "tolerance", "close"),
    [
        (4.0, 2.0, 0.5, True),  # a difference of exactly the tolerance is within it
        (4.0, 1.999, 0.5, False),
        (-4.0, -2.0, 0.5, True),
        (0.0, 0.0, 0.05, True),  # two zeros agree
        (0.0, 0.001, 0.05, False),
    ],
)
def test_within_the_tolerance(live: float, shadow: float, tolerance: float, close: bool) -> None:
    assert within(live, shadow, tolerance) is close
    pair = Pair("a", "t", live, shadow, None, abs(live - shadow))
    assert agreement([pair], "regression", tolerance)["within_tolerance"] == float(close)


@pytest.mark.parametrize(
    ("values", "pct", "value"),
    [
        ([1.0, 2.0], 50, 1.0),
        ([1.0, 2.0, 3.0], 0, 1.0),
        ([float(v) for v in range(1, 201)], 99, 198.0),
        ([float(v) for v in range(1, 201)], 50, 100.0),
    ],
)
def test_nearest_rank_percentiles(values: list[float], pct: float, value: float) -> None:
    assert percentile(values, pct) == value
