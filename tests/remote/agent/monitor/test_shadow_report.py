"""The shadow report's parts: live and shadow predictions paired by request id, their
agreement and latencies, the logs read in the window, the relay's log, the verdict, and
which shadow the report is of. Real files; no box, no mocks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from remote.agent.deploy import state
from remote.agent.deploy.kinds import shadow
from remote.agent.monitor.shadow.pairs import (
    Record,
    agreement,
    answer_kind,
    compare,
    percentile,
    read_records,
    read_relay,
)
from remote.agent.monitor.shadow.report import verdict
from remote.agent.system.failure import AgentFailure

MODEL = {"name": "taxi", "version": "1", "uri": "models:/taxi/1", "source": "models:/taxi/1"}


def rec(request_id: str, outputs: Any, *, status: int = 200, ms: float = 5.0, t: int = 0) -> Record:
    return Record(request_id, f"2026-01-01T00:00:{t:02d}.000", "x", status, ms, outputs, {"a": 1})


def test_pairs_are_made_by_request_id_row_by_row_whatever_the_order() -> None:
    live = [rec("a", [1.0, 2.0], t=1), rec("b", [3.0], t=2), rec("c", [4.0], t=3)]
    shadow_side = [rec("c", [4.4], t=4), rec("a", [1.0, 2.5], t=5), rec("z", [9.0], t=6)]
    found = compare(live, shadow_side, tolerance=0.05)
    assert found.paired_requests == 2
    assert found.unmatched_shadow == 1  # z: a copy whose live request is not logged
    assert sorted((p.request_id, p.live, p.shadow) for p in found.pairs) == [
        ("a", 1.0, 1.0),
        ("a", 2.0, 2.5),
        ("c", 4.0, 4.4),
    ]
    assert found.kind == "regression"
    a = found.agreement
    assert a["rows"] == 3
    assert a["mean_abs_diff"] == pytest.approx((0 + 0.5 + 0.4) / 3)
    assert a["p95_abs_diff"] == pytest.approx(0.5)
    assert a["within_tolerance"] == pytest.approx(1 / 3)  # 0.4 of 4.4 is 9%, 0.5 of 2.5 20%
    assert [p.request_id for p in found.top(2)] == ["a", "c"]


def test_errors_count_per_side_and_are_never_paired() -> None:
    live = [rec("a", [1.0]), rec("b", None, status=400), rec("c", [2.0])]
    shadow_side = [rec("a", None, status=500), rec("b", [1.0]), rec("c", [2.0])]
    found = compare(live, shadow_side)
    assert (found.live.requests, found.live.errors) == (3, 1)
    assert (found.shadow.requests, found.shadow.errors) == (3, 1)
    assert found.paired_requests == 1
    assert found.agreement["within_tolerance"] == 1.0


def test_answers_of_other_lengths_are_left_unpaired_not_a_crash() -> None:
    # a shadow that answers one row for a two-row request (another output shape)
    found = compare([rec("a", [1.0, 2.0]), rec("b", [3.0])], [rec("a", [1.0]), rec("b", [3.0])])
    assert found.paired_requests == 1
    assert [(p.request_id, p.live, p.shadow) for p in found.pairs] == [("b", 3.0, 3.0)]


def test_a_request_answered_twice_by_the_shadow_pairs_once() -> None:
    found = compare([rec("a", [1.0])], [rec("a", [1.0], t=1), rec("a", [1.0], t=2)])
    assert found.paired_requests == 1 and len(found.pairs) == 1
    assert found.shadow.requests == 2


def test_classes_agree_by_equality() -> None:
    live = [rec(str(i), [label]) for i, label in enumerate(["cat", "dog", "cat", "cow"])]
    shadow_side = [rec(str(i), [label]) for i, label in enumerate(["cat", "cat", "cat", "cow"])]
    found = compare(live, shadow_side)
    assert found.kind == "classification"
    assert found.agreement == {"rows": 4, "agreement_rate": 0.75}
    assert [(p.live, p.shadow) for p in found.top()] == [("dog", "cat")]
    assert verdict(found.kind, found.agreement) == "The same answer for 75.0% of 4 rows"


def test_one_key_records_are_their_value() -> None:
    found = compare([rec("a", [{"predictions": 2.0}])], [rec("a", [{"predictions": 2.0}])])
    assert (found.pairs[0].live, found.pairs[0].shadow) == (2.0, 2.0)


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([1.5, 2.25, 3.0], "regression"),
        ([0, 1, 1, 0], "classification"),
        (list(range(50)), "regression"),
        (["a", 1.0], "classification"),
        ([True, False], "classification"),
        ([], "none"),
    ],
)
def test_the_kind_of_answer(values: list[Any], kind: str) -> None:
    assert answer_kind(values) == kind


def test_no_pairs_is_no_agreement_rather_than_a_division_by_zero() -> None:
    found = compare([rec("a", [1.0])], [])
    assert found.kind == "none" and found.agreement == {"rows": 0}
    assert agreement([], "regression", 0.05) == {"rows": 0}
    assert found.shadow.summary()["p99_ms"] is None
    assert verdict(found.kind, found.agreement).startswith("No paired predictions yet")


def test_the_verdict_of_numbers_gives_the_share_within_tolerance_and_the_differences() -> None:
    # 20 rows: 17 equal, one off by 0.2 (within 5%), one by 1 (the p95), one by 4 (the max)
    live = [rec(str(i), [10.0]) for i in range(20)]
    values = [10.0] * 17 + [10.2, 11.0, 14.0]
    shadow_side = [rec(str(i), [v]) for i, v in enumerate(values)]
    found = compare(live, shadow_side, 0.05)
    assert verdict(found.kind, found.agreement) == (
        "90.0% of 20 rows within 5%; mean |live - shadow| 0.26, p95 1, max 4"
    )


def test_latency_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, p) for p in (50, 90, 99, 100)] == [50.0, 90.0, 99.0, 100.0]
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None
    side = compare([rec(str(i), [1.0], ms=float(i)) for i in range(1, 101)], []).live
    assert side.summary()["p99_ms"] == 99.0 and side.summary()["max_ms"] == 100.0


def _log(path: Path, lines: list[dict[str, Any] | str]) -> None:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))


def _line(request_id: str, time: str, out: float, slot: str = "blue") -> dict[str, Any]:
    return {
        "time": time,
        "request_id": request_id,
        "slot": slot,
        "status": 200,
        "latency_ms": 3.0,
        "inputs": [{"trip_distance": 2.5}],
        "outputs": [out],
    }


def test_the_logs_are_read_with_rotations_in_the_window_without_warm_ups(tmp_path: Path) -> None:
    _log(tmp_path / "blue.jsonl.1", [_line("old", "2026-01-01T09:59:59.999+00:00", 1.0)])
    _log(
        tmp_path / "blue.jsonl",
        [
            _line("a", "2026-01-01T10:00:00.500+00:00", 1.0),
            _line("mlops-warmup-3", "2026-01-01T10:00:01.000+00:00", 1.0),
            '{"time": "2026-01-01T10:00:02.000+00:00", "request_id": "torn',
        ],
    )
    _log(tmp_path / "green.jsonl", [_line("b", "2026-01-01T10:00:03.000+00:00", 2.0, "green")])
    _log(tmp_path / "shadow.jsonl", [_line("a", "2026-01-01T10:00:00.600+00:00", 1.0, "shadow")])
    live = list(read_records(str(tmp_path), ["blue", "green"], "2026-01-01T10:00:00.000"))
    assert sorted(r.request_id for r in live) == ["a", "b"]
    assert live[0].first_input == {"trip_distance": 2.5}
    shadow_side = list(read_records(str(tmp_path), ["shadow"], "2026-01-01T10:00:00.000"))
    assert [r.request_id for r in shadow_side] == ["a"]
    ended = list(
        read_records(
            str(tmp_path), ["blue", "green"], "2026-01-01T10:00:00.000", "2026-01-01T10:00:01.000"
        )
    )
    assert [r.request_id for r in ended] == ["a"]
    assert list(read_records(str(tmp_path), ["nothing"], "2026-01-01T10:00:00.000")) == []


def test_the_relay_log_says_how_copies_ended(tmp_path: Path) -> None:
    def entry(
        uri: str, status: int, time: str = "2026-01-01T10:00:05+00:00", request_id: str = "r"
    ) -> dict[str, Any]:
        return {"time": time, "request_id": request_id, "uri": uri, "status": status}

    _log(
        tmp_path / "mirror.log",
        [
            entry("/__mlops/shadow", 200),
            entry("/__mlops/shadow", 200),
            entry("/__mlops/shadow", 502),
            entry("/invocations", 503),
            entry("/__mlops/shadow", 200, "2026-01-01T09:00:00+00:00"),
            entry("/__mlops/shadow", 200, request_id="mlops-warmup-7-mirror"),
            "not json",
        ],
    )
    found = read_relay(str(tmp_path / "mirror.log"), "2026-01-01T10:00:00.000")
    assert found == {"200": 2, "502": 1, "dropped": 1}
    assert read_relay(str(tmp_path / "none.log"), "2026-01-01T10:00:00.000") == {}


def test_the_report_is_of_the_running_shadow_else_the_last_one() -> None:
    current = state.empty()
    with pytest.raises(AgentFailure, match="No shadow has run"):
        shadow.window(current)
    current["history"] = [
        {"kind": "shadow-end", "model": MODEL, "started": "s1", "finished": "f1", "from": None},
        {"kind": "blue-green", "model": MODEL, "started": "s2", "finished": "f2"},
    ]
    assert (shadow.window(current)["started"], shadow.window(current)["ended"]) == ("s1", "f1")
    current["mirror"] = {"slot": "shadow", "model": MODEL, "sample": 5, "started": "s3"}
    assert shadow.window(current)["ended"] is None and shadow.window(current)["sample"] == 5
