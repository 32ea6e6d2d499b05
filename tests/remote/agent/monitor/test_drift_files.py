"""The drift report's files on the box: the prediction log it reads, the labels it joins,
the report it writes. Real files in a temporary directory; no box, no mocks."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pandas as pd
import pytest

from remote.agent.monitor.drift import render as drift_render
from remote.agent.monitor.drift.analysis import Options, analyse
from remote.agent.monitor.drift.stats import distribution
from remote.agent.monitor.predictions import live_model, read_labels, read_predictions
from remote.agent.system.failure import AgentFailure
from tests.prediction_log import WARMUP_ID, line, lines

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)
FRAME = pd.DataFrame({"zone": ["a", "b", "c"], "km": [1.5, float("nan"), 3.0]})


def _one(request_id: str, when: datetime.datetime, **kwargs: object) -> str:
    options: dict[str, object] = {
        "model": "m",
        "version": "2",
        "inputs": FRAME.iloc[:1],
        "outputs": [1.0],
        **kwargs,
    }
    return line(time=when, request_id=request_id, **options)  # type: ignore[arg-type]


def test_the_reader_takes_one_versions_window_from_every_slot_and_rotation(
    tmp_path: Path,
) -> None:
    (tmp_path / "blue.jsonl").write_text(
        _one("new", NOW)
        + _one("old", NOW - 3 * HOUR)  # before the window: only its id is remembered
        + _one("v1", NOW, version="1")  # another version
        + _one(WARMUP_ID, NOW)  # the slot's warm-up
        + _one("failed", NOW, status=500)
        + _one("both", NOW, inputs=FRAME, outputs=None)  # never answered 200
        + '{"time": "2026-03-01T12:00:00.000+00:00", "request_id": "torn", "slo'
    )
    (tmp_path / "blue.jsonl.1").write_text(_one("rotated", NOW - HOUR))
    (tmp_path / "shadow.jsonl").write_text(
        _one("many", NOW, inputs=FRAME, outputs=[1.0, 2.0, 3.0]) + _one("new", NOW, slot="shadow")
    )
    (tmp_path / "notes.txt").write_text(_one("not-a-log", NOW))

    found = read_predictions("m", "2", NOW - 2 * HOUR, str(tmp_path))

    assert sorted(set(found.request_ids)) == ["many", "new", "rotated"]
    assert found.requests == 3 and found.rows == 5  # "many" carried three rows
    assert sorted(found.rows_in_request) == [1, 1, 3, 3, 3]
    assert found.failed == 2
    assert found.other_lines == 1
    # Every logged id counts as known; a line still being written is not read yet.
    assert found.seen_ids == {"new", "old", "v1", "failed", "both", "rotated", "many"}
    assert sorted(found.inputs) == ["km", "zone"]
    km = [v for v in found.inputs["km"] if v is not None]
    assert len(km) == 5 and sum(1 for v in km if v != v) == 1  # the NaN stays a NaN


def test_labels_are_read_in_upload_order_and_a_later_one_corrects(tmp_path: Path) -> None:
    first = tmp_path / "20260301T100000Z-aaaa.jsonl"
    later = tmp_path / "20260301T110000Z-bbbb.jsonl"
    first.write_text(
        json.dumps({"request_id": "r1", "value": 1.0, "name": "y"})
        + "\n"
        + json.dumps({"request_id": "r2", "value": 2.0, "name": "y"})
        + "\n"
    )
    later.write_text(json.dumps({"request_id": "r1", "value": 5.0, "name": "label"}) + "\n")

    assert read_labels(str(tmp_path)) == {"r1": (5.0, "label"), "r2": (2.0, "y")}
    later.write_text("not json\n")
    with pytest.raises(AgentFailure, match="line 1 is not a label"):
        read_labels(str(tmp_path))


def test_the_live_model_comes_from_the_deploy_state(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with pytest.raises(AgentFailure, match="No model is live"):
        live_model(str(state))
    state.write_text(json.dumps({"live": None}))
    with pytest.raises(AgentFailure, match="give --model"):
        live_model(str(state))
    state.write_text(json.dumps({"live": {"slot": "blue", "model": {"name": "m", "version": 4}}}))
    assert live_model(str(state)) == ("m", "4")


def _report(tmp_path: Path, labels: dict[str, tuple[float, str]]) -> drift_render.Report:
    reference = pd.DataFrame(
        {
            "zone": ["a", "b"] * 50,
            "km": [1.0, 2.0] * 50,
            "y": [10.0, 20.0] * 50,
            "prediction": [11.0, 19.0] * 50,
        }
    )
    current = pd.DataFrame({"zone": ["a", "<b>"] * 30, "km": [1.0, 9.0] * 30})
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "blue.jsonl").write_text(
        "".join(lines(current, [15.0] * 60, model="m", version="2", start=NOW - HOUR, end=NOW))
        + _one("other", NOW, version="1")
        + _one("wide", NOW, inputs=current.head(2), outputs=[1.0, 2.0])
    )
    return analyse(
        reference,
        read_predictions("m", "2", NOW - 2 * HOUR, str(tmp_path / "logs")),
        labels,
        signature=None,
        val_rmse=2.0,
        model="m",
        version="2",
        since=(NOW - 2 * HOUR).isoformat(),
        until=NOW.isoformat(),
        window_s=7200,
        options=Options(drift_share=0.5, max_error_rise=0.2),
    )


def test_every_label_is_used_or_counted_by_why_not(tmp_path: Path) -> None:
    labels = {f"req-{i}": (15.0 + (i % 2) * 20, "y") for i in range(40)}  # used
    labels.update(
        {
            "req-40": (1.0, "fare"),  # another column than the target y
            "other": (1.0, "label"),  # logged for version 1
            "wide": (1.0, "label"),  # a request of two rows
            "typo": (1.0, "label"),
            "typo2": (1.0, "y"),
        }
    )
    report = _report(tmp_path, labels)

    assert report.target == "y"
    counts = report.labels
    assert counts is not None
    assert (counts.stored, counts.used, counts.other_target) == (45, 40, 1)
    assert (counts.elsewhere, counts.multi_row, counts.unknown) == (1, 1, 2)
    concept = report.concept
    assert concept is not None and concept.labelled == 40
    assert concept.rmse == pytest.approx(200**0.5)  # residuals 0 and 20, half each
    assert concept.drifted and concept.rise == pytest.approx(200**0.5 / 2 - 1)


def test_too_few_labels_show_the_error_but_judge_nothing(tmp_path: Path) -> None:
    report = _report(tmp_path, {f"req-{i}": (35.0, "label") for i in range(10)})

    assert report.concept is not None and report.concept.labelled == 10
    assert not report.concept.drifted and "at least 30" in report.concept.note


def test_the_report_files(tmp_path: Path) -> None:
    report = _report(tmp_path, {f"req-{i}": (30.0, "y") for i in range(40)})
    paths = drift_render.write(report, tmp_path / "out")

    assert [p.name for p in paths] == ["report.html", "summary.png", "figures.json"]
    html = paths[0].read_text()
    assert html.count("<img") == 3  # the summary, error and residuals, the distributions
    assert "&lt;b&gt;" in html and "<b>" not in html  # a logged value is text, not markup
    assert "DRIFT" in html and "unseen categories" in html
    assert paths[1].read_bytes().startswith(b"\x89PNG")
    figures = json.loads(paths[2].read_text())
    assert figures["summary"]["drift"] is True
    assert set(figures["distributions"]) == {"zone", "km", "prediction"}
    assert figures["distributions"]["zone"]["labels"] == ["a", "b", "<b>"]
    assert len(figures["error_over_time"]["buckets"]) >= 1


def test_many_categories_keep_the_most_frequent_and_one_bar_for_the_rest() -> None:
    reference = pd.Series([f"c{i:02d}" for i in range(30) for _ in range(30 - i)])
    current = pd.Series(["c00"] * 10 + ["c29"] * 5)

    bars = distribution(reference, current, "categorical")

    assert bars["labels"] == [f"c{i:02d}" for i in range(20)] + ["(other)"]
    assert bars["reference"][-1] == pytest.approx(sum(30 - i for i in range(20, 30)) / 465)
    assert bars["current"][0] == pytest.approx(10 / 15) and bars["current"][-1] == 5 / 15
