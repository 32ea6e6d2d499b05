"""The drift report's statistics on the example's trips, as the box computes them.

No box and no mocks: a model is trained here as train.py trains it, its reference sample
made as train.py makes it; current trips come from the generator with one knob turned,
are predicted by that model, written as the serving slots' log lines and read back by
the agent's reader; labels are the generator's true durations. What is checked is what
the report says: which columns drifted, the predictions, data quality, the error rise.
"""

from __future__ import annotations

import datetime
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow.models import infer_signature

from remote.agent.monitor.drift.analysis import Options, Report, analyse
from remote.agent.monitor.drift.stats import pick_test
from remote.agent.monitor.predictions import read_predictions
from tests.prediction_log import lines
from tests.taxi_example import example_module, trained

taxi_data = example_module("taxi_data")
Drift = taxi_data.Drift
FEATURES: list[str] = taxi_data.FEATURES
TARGET: str = taxi_data.TARGET
MODEL, VERSION = "taxi-duration", "3"
ROWS = 4000
WINDOW = datetime.timedelta(hours=24)


@pytest.fixture(scope="module")
def model() -> tuple[Any, pd.DataFrame, float, list[dict[str, Any]]]:
    pipeline, reference, val_rmse = trained()
    with warnings.catch_warnings():  # as train.py: no integer column is ever missing
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        signature = infer_signature(reference[FEATURES], reference["prediction"].to_numpy())
    return pipeline, reference, val_rmse, signature.inputs.to_dict()


def report_on(
    model: tuple[Any, pd.DataFrame, float, list[dict[str, Any]]],
    tmp_path: Path,
    drift: Any = None,
    *,
    reference: pd.DataFrame | None = None,
    labelled_share: float = 0.0,
    seed: int = 20,
) -> Report:
    """The report on ROWS trips drawn with `drift`, logged over the last 20 hours, with
    labels (the true durations) for every n-th request."""
    pipeline, ref, val_rmse, signature = model
    trips = taxi_data.generate(ROWS, seed, drift or Drift())
    now = datetime.datetime.now(datetime.UTC)
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    (logs / "blue.jsonl").write_text(
        "".join(
            lines(
                trips[FEATURES],
                pipeline.predict(trips[FEATURES]),
                model=MODEL,
                version=VERSION,
                start=now - datetime.timedelta(hours=20),
                end=now,
            )
        )
    )
    labels = {}
    if labelled_share:
        every = round(1 / labelled_share)
        labels = {f"req-{i}": (float(trips[TARGET][i]), TARGET) for i in range(0, ROWS, every)}
    return analyse(
        ref if reference is None else reference,
        read_predictions(MODEL, VERSION, now - WINDOW, str(logs)),
        labels,
        signature=signature,
        val_rmse=val_rmse,
        model=MODEL,
        version=VERSION,
        since=(now - WINDOW).isoformat(),
        until=now.isoformat(),
        window_s=WINDOW.total_seconds(),
        options=Options(drift_share=0.5, max_error_rise=0.2),
    )


def test_no_drift_reports_no_drift(model: Any, tmp_path: Path) -> None:
    report = report_on(model, tmp_path, labelled_share=0.25)

    assert report.rows == report.requests == ROWS
    assert [c.column for c in report.columns] == FEATURES
    assert report.drifted_columns == []
    assert report.prediction is not None and not report.prediction.drifted
    assert report.quality.issues == 0
    assert report.concept is not None and not report.concept.drifted
    assert report.concept.labelled == ROWS // 4
    assert not report.drift and report.reasons == []
    hours = report.distributions["pickup_hour"]
    assert hours["type"] == "bars" and hours["labels"] == [str(h) for h in range(24)]
    zones = report.distributions["pickup_zone"]
    assert zones["labels"][0] == "Midtown" and len(zones["labels"]) == len(taxi_data.ZONES)
    # The reference has 2000 rows: Evidently's distances, not p-values.
    tests = {c.column: c.test for c in report.columns}
    assert tests["pickup_zone"] == "jensenshannon" and tests["trip_distance"] == "wasserstein"


@pytest.mark.parametrize(
    ("knob", "flagged"),
    [
        (Drift(distance_scale=1.5), ["trip_distance"]),
        (Drift(zone_mix="airports"), ["pickup_zone", "dropoff_zone", "trip_distance"]),
        (Drift(hour_profile="night"), ["pickup_hour"]),
        (Drift(unseen_zone_share=0.1), ["pickup_zone", "dropoff_zone", "trip_distance"]),
        (Drift(missing_share=0.2), []),
    ],
    ids=["distance_scale", "zone_mix", "hour_profile", "unseen_zone_share", "missing_share"],
)
def test_each_data_drift_knob_flags_its_columns(
    model: Any, tmp_path: Path, knob: Any, flagged: list[str]
) -> None:
    report = report_on(model, tmp_path, knob)

    assert report.drifted_columns == flagged
    assert report.dataset_drift == (len(flagged) >= 3)


def test_longer_trips_drift_the_predictions_and_leave_the_reference_range(
    model: Any, tmp_path: Path
) -> None:
    report = report_on(model, tmp_path, Drift(distance_scale=1.5))

    assert report.prediction is not None and report.prediction.drifted
    assert report.drift and report.reasons == ["the predictions drifted"]
    outside, share, _, _ = report.quality.out_of_range["trip_distance"]
    assert share > 0.02 and outside > 0.02 * ROWS
    assert report.quality.issues == 1


def test_an_unseen_zone_and_missing_values_are_data_quality_issues(
    model: Any, tmp_path: Path
) -> None:
    report = report_on(model, tmp_path, Drift(unseen_zone_share=0.1, missing_share=0.2))

    quality = report.quality
    assert set(quality.unseen) == {"pickup_zone", "dropoff_zone"}
    assert all(list(seen) == [taxi_data.UNSEEN_ZONE] for seen in quality.unseen.values())
    assert sum(quality.unseen["pickup_zone"].values()) > 0.03 * ROWS
    assert set(quality.missing) == {"trip_distance", "passenger_count"}
    for _, share, _ in quality.missing.values():
        assert 0.05 < share < 0.15  # a fifth of the rows miss one of the two


def test_concept_drift_shows_as_an_error_rise_while_the_inputs_do_not_drift(
    model: Any, tmp_path: Path
) -> None:
    report = report_on(model, tmp_path, Drift(speed_factor=0.7), labelled_share=0.25)

    assert report.drifted_columns == []
    assert report.prediction is not None and not report.prediction.drifted
    concept = report.concept
    assert concept is not None and concept.drifted
    assert concept.rise is not None and concept.rise > 0.5
    assert concept.bias is not None and concept.bias > 5  # trips take longer than predicted
    assert len(concept.buckets) >= 20  # 1-hour buckets over the 20 logged hours
    assert report.reasons == [f"the error rose {concept.rise:.0%} over val_rmse (more than 20%)"]


def test_a_small_reference_uses_p_value_tests(model: Any, tmp_path: Path) -> None:
    _, reference, _, _ = model
    small = reference.head(800)
    report = report_on(model, tmp_path, Drift(distance_scale=1.5), reference=small)

    tests = {c.column: c.test for c in report.columns}
    assert tests == {
        "pickup_zone": "chisquare",
        "dropoff_zone": "chisquare",
        "trip_distance": "ks",
        "pickup_hour": "ks",
        "pickup_weekday": "ks",
        "passenger_count": "ks",
    }
    assert "trip_distance" in report.drifted_columns
    assert all(c.is_p_value for c in report.columns)


def test_few_distinct_values_pick_the_categorical_tests() -> None:
    binary = pd.Series([0.0, 1.0] * 300)
    three = pd.Series([1.0, 2.0, 3.0] * 200)
    assert pick_test(binary, binary, "numerical") == "z"
    assert pick_test(three, three, "numerical") == "chisquare"
    assert pick_test(pd.concat([three] * 2), three, "numerical") == "jensenshannon"
    many = pd.Series(range(1200), dtype=float)
    assert pick_test(many, many, "numerical") == "wasserstein"
    assert pick_test(many.head(900), many, "numerical") == "ks"


def test_requests_without_a_model_input_or_with_a_new_one(model: Any, tmp_path: Path) -> None:
    _, reference, val_rmse, signature = model
    trips = taxi_data.generate(500, 5)
    sent = trips[FEATURES].drop(columns=["passenger_count"]).assign(tip=1.0)
    now = datetime.datetime.now(datetime.UTC)
    (tmp_path / "blue.jsonl").write_text(
        "".join(lines(sent, [10.0] * 500, model=MODEL, version=VERSION, start=now, end=now))
    )
    report = analyse(
        reference,
        read_predictions(MODEL, VERSION, now - WINDOW, str(tmp_path)),
        {},
        signature=signature,
        val_rmse=val_rmse,
        model=MODEL,
        version=VERSION,
        since="",
        until="",
        window_s=WINDOW.total_seconds(),
        options=Options(drift_share=0.5, max_error_rise=0.2),
    )

    assert report.quality.new_columns == ["tip"]
    assert report.quality.missing_columns == ["passenger_count"]
    assert "passenger_count" not in [c.column for c in report.columns]
