"""examples/taxi: the trip generator's seed and drift knobs, and train.py logging to MLflow.

The generator is tested as a user of its knobs sees it: a data-drift knob moves the column
it names and no other input; a concept-drift knob moves only the target. train.py runs as
`fab train.run` runs it, a subprocess configured by MLFLOW_* variables, against a local
file store (mlflow-skinny has no SQLAlchemy for a sqlite:// store).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "taxi"
TRAIN_TIMEOUT_S = 120
N = 4000
SEED = 7


def _load_taxi_data() -> ModuleType:
    # The example is a folder users copy, not a package: load its module from the file.
    spec = importlib.util.spec_from_file_location("taxi_data", EXAMPLE / "taxi_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["taxi_data"] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


taxi_data = _load_taxi_data()
Drift = taxi_data.Drift
FEATURES: list[str] = taxi_data.FEATURES
TARGET: str = taxi_data.TARGET


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    return taxi_data.generate(N, SEED)


def _unchanged(base: pd.DataFrame, drifted: pd.DataFrame, columns: list[str]) -> None:
    for column in columns:
        pd.testing.assert_series_equal(drifted[column], base[column], obj=column)


# ---------------------------------------------------------------- the neutral generator


def test_same_seed_gives_the_same_trips_and_another_seed_others(base: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(taxi_data.generate(N, SEED), base)
    other = taxi_data.generate(N, SEED + 1)
    assert not other[FEATURES].equals(base[FEATURES])
    assert list(base.columns) == [*FEATURES, TARGET]


def test_neutral_trips_are_plausible(base: pd.DataFrame) -> None:
    assert not base.isna().any().any()
    assert set(base.pickup_zone) | set(base.dropoff_zone) == set(taxi_data.ZONES)
    assert (base.trip_distance > 0).all()
    assert base.pickup_hour.between(0, 23).all()
    assert set(base.pickup_weekday) == set(range(7))
    assert set(base.passenger_count) == {1.0, 2.0, 3.0, 4.0, 5.0, 6.0}
    assert (base[TARGET] > 0).all()
    rush = base.pickup_hour.isin(taxi_data.RUSH_HOURS) & (base.pickup_weekday < 5)
    minutes_per_km = base[TARGET] / base.trip_distance
    assert minutes_per_km[rush].median() > 1.3 * minutes_per_km[~rush].median()


@pytest.mark.parametrize(
    "knobs",
    [
        {"distance_scale": 0},
        {"zone_mix": "suburbs"},
        {"hour_profile": "noon"},
        {"unseen_zone_share": 1.5},
        {"missing_share": -0.1},
        {"speed_factor": 0},
        {"rush_hour_penalty": -1},
    ],
)
def test_out_of_range_knob_is_refused(knobs: dict[str, object]) -> None:
    (name,) = knobs
    with pytest.raises(ValueError, match=name):
        Drift(**knobs)


# ---------------------------------------------------------------- data drift


@dataclass(frozen=True)
class DataKnob:
    drift: object
    moves: frozenset[str]  # the inputs this knob may change; every other input stays equal


DATA_KNOBS = {
    "distance_scale": DataKnob(Drift(distance_scale=1.5), frozenset({"trip_distance"})),
    # Distances follow the zones: a trip to JFK is long.
    "zone_mix": DataKnob(
        Drift(zone_mix="airports"), frozenset({"pickup_zone", "dropoff_zone", "trip_distance"})
    ),
    "hour_profile": DataKnob(Drift(hour_profile="night"), frozenset({"pickup_hour"})),
    "unseen_zone_share": DataKnob(
        Drift(unseen_zone_share=0.1), frozenset({"pickup_zone", "dropoff_zone", "trip_distance"})
    ),
    "missing_share": DataKnob(
        Drift(missing_share=0.2), frozenset({"trip_distance", "passenger_count"})
    ),
}


@pytest.mark.parametrize("name", list(DATA_KNOBS))
def test_data_knob_leaves_the_other_inputs_alone(name: str, base: pd.DataFrame) -> None:
    knob = DATA_KNOBS[name]
    drifted = taxi_data.generate(N, SEED, knob.drift)
    _unchanged(base, drifted, [f for f in FEATURES if f not in knob.moves])
    assert not drifted[sorted(knob.moves)].equals(base[sorted(knob.moves)])


def test_distance_scale_stretches_every_trip(base: pd.DataFrame) -> None:
    drifted = taxi_data.generate(N, SEED, Drift(distance_scale=1.5))
    ratio = drifted.trip_distance / base.trip_distance
    np.testing.assert_allclose(ratio, 1.5, rtol=2e-3)
    assert drifted[TARGET].mean() > 1.3 * base[TARGET].mean()


def test_zone_mix_moves_trips_to_the_boosted_zones(base: pd.DataFrame) -> None:
    airports = ["JFK-Airport", "LaGuardia-Airport"]
    drifted = taxi_data.generate(N, SEED, Drift(zone_mix="airports"))
    for column in ("pickup_zone", "dropoff_zone"):
        assert base[column].isin(airports).mean() < 0.2
        assert drifted[column].isin(airports).mean() > 0.3
    assert set(drifted.pickup_zone) <= set(taxi_data.ZONES)


def test_night_profile_moves_pickups_to_the_night(base: pd.DataFrame) -> None:
    night = [20, 21, 22, 23, 0, 1, 2, 3]
    drifted = taxi_data.generate(N, SEED, Drift(hour_profile="night"))
    assert base.pickup_hour.isin(night).mean() < 0.3
    assert drifted.pickup_hour.isin(night).mean() > 0.5


def test_unseen_zone_share_brings_a_zone_never_trained_on(base: pd.DataFrame) -> None:
    unseen = taxi_data.UNSEEN_ZONE
    assert unseen not in taxi_data.ZONES
    drifted = taxi_data.generate(N, SEED, Drift(unseen_zone_share=0.1))
    rows = (drifted.pickup_zone == unseen) | (drifted.dropoff_zone == unseen)
    assert not ((base.pickup_zone == unseen) | (base.dropoff_zone == unseen)).any()
    assert 0.08 < rows.mean() < 0.12
    assert (drifted.pickup_zone == unseen).any() and (drifted.dropoff_zone == unseen).any()
    # Only those rows change: the other trips are the same trips.
    pd.testing.assert_frame_equal(drifted[~rows], base[~rows])


def test_missing_share_hides_values_and_not_the_truth(base: pd.DataFrame) -> None:
    drifted = taxi_data.generate(N, SEED, Drift(missing_share=0.2))
    missing = drifted[FEATURES].isna()
    assert set(missing.columns[missing.any()]) == {"trip_distance", "passenger_count"}
    assert 0.17 < missing.any(axis=1).mean() < 0.23
    assert not missing.all(axis=1).any()
    # What is still recorded is what was, and the duration used the true distance.
    pd.testing.assert_frame_equal(drifted.where(~drifted.isna(), base), base)
    pd.testing.assert_series_equal(drifted[TARGET], base[TARGET])


# ---------------------------------------------------------------- concept drift


@pytest.mark.parametrize("drift", [Drift(speed_factor=0.7), Drift(rush_hour_penalty=5.0)])
def test_concept_knob_changes_only_the_target(drift: object, base: pd.DataFrame) -> None:
    drifted = taxi_data.generate(N, SEED, drift)
    pd.testing.assert_frame_equal(drifted[FEATURES], base[FEATURES])
    assert not drifted[TARGET].equals(base[TARGET])


def test_slower_traffic_makes_every_trip_longer(base: pd.DataFrame) -> None:
    drifted = taxi_data.generate(N, SEED, Drift(speed_factor=0.7))
    assert (drifted[TARGET] > base[TARGET]).all()
    assert drifted[TARGET].mean() > 1.2 * base[TARGET].mean()


def test_rush_hour_penalty_lengthens_only_weekday_rush_trips(base: pd.DataFrame) -> None:
    drifted = taxi_data.generate(N, SEED, Drift(rush_hour_penalty=5.0))
    rush = base.pickup_hour.isin(taxi_data.RUSH_HOURS) & (base.pickup_weekday < 5)
    assert rush.mean() > 0.2
    extra = drifted[TARGET] - base[TARGET]
    assert (extra[rush] > 0).all()
    assert 4.7 < extra[rush].mean() < 5.3  # five minutes, times each trip's noise
    assert (extra[~rush] == 0).all()


# ---------------------------------------------------------------- the CLI


def test_cli_writes_the_trips_its_flags_describe(tmp_path: Path) -> None:
    out = tmp_path / "trips.csv"
    # fmt: off
    taxi_data.main([
        "--rows", "300", "--seed", "3", "--out", str(out),
        "--distance-scale", "1.5", "--zone-mix", "airports", "--hour-profile", "night",
        "--unseen-zone-share", "0.1", "--missing-share", "0.1",
        "--speed-factor", "0.8", "--rush-hour-penalty", "2",
    ])
    # fmt: on
    knobs = Drift(
        distance_scale=1.5,
        zone_mix="airports",
        hour_profile="night",
        unseen_zone_share=0.1,
        missing_share=0.1,
        speed_factor=0.8,
        rush_hour_penalty=2.0,
    )
    expected = taxi_data.generate(300, 3, knobs)
    written = pd.read_csv(out)
    pd.testing.assert_frame_equal(written, expected, check_dtype=False)


# ---------------------------------------------------------------- train.py and MLflow


@dataclass(frozen=True)
class Tracking:
    client: MlflowClient
    env: dict[str, str]
    cwd: Path


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tracking]:
    """A throwaway MLflow file store, for train.py's process and for this one."""
    settings = {
        "MLFLOW_TRACKING_URI": (tmp_path / "mlruns").as_uri(),
        # MLflow 3 refuses the file store unless asked; it needs no database package.
        "MLFLOW_ALLOW_FILE_STORE": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    mlflow.set_tracking_uri(settings["MLFLOW_TRACKING_URI"])
    try:
        yield Tracking(MlflowClient(), dict(os.environ), tmp_path)
    finally:
        mlflow.set_tracking_uri(None)


def _train(tracking: Tracking, *args: str, run_id: str | None = None) -> str:
    env = dict(tracking.env)
    if run_id is not None:
        env["MLFLOW_RUN_ID"] = run_id
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / "train.py"), *args],
        cwd=tracking.cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TRAIN_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _only_run(client: MlflowClient) -> Run:
    runs = client.search_runs(experiment_ids=["0"])
    assert len(runs) == 1, [run.info.run_id for run in runs]
    return runs[0]


@pytest.mark.slow
def test_train_logs_metrics_params_model_and_reference(tracking: Tracking) -> None:
    stdout = _train(tracking, "--rows", "800", "--seed", "3", "--missing-share", "0.05")

    run = _only_run(tracking.client)
    val_rmse = run.data.metrics["val_rmse"]
    assert 0 < run.data.metrics["val_mae"] <= val_rmse
    assert re.search(rf"^val_rmse={val_rmse:.3f}$", stdout, re.MULTILINE), stdout
    assert run.data.params["model"] == "rf"
    assert run.data.params["rows"] == "800"
    assert run.data.params["seed"] == "3"
    assert run.data.params["missing_share"] == "0.05"
    assert run.data.params["zone_mix"] == "normal"

    # MLflow 3: the model is a logged model of its own, which the run lists as an output.
    (output,) = run.outputs.model_outputs
    logged = tracking.client.get_logged_model(output.model_id)
    assert logged.source_run_id == run.info.run_id
    assert logged.name == "model"
    assert f"model {logged.model_uri}" in stdout
    model = mlflow.pyfunc.load_model(logged.model_uri)
    # A zone it never saw and missing values still get predictions.
    trips = taxi_data.generate(50, 11, Drift(unseen_zone_share=0.3, missing_share=0.3))
    predictions = np.asarray(model.predict(trips[FEATURES]))
    assert predictions.shape == (50,) and np.isfinite(predictions).all()

    reference = pd.read_csv(
        tracking.client.download_artifacts(
            run.info.run_id, "reference/reference.csv", str(tracking.cwd)
        )
    )
    assert list(reference.columns) == [*FEATURES, TARGET, "prediction"]
    assert len(reference) == 640  # every training row: fewer than 2000 of the 800 rows
    assert reference.passenger_count.isna().any()  # the drift the model was trained on


@pytest.mark.slow
def test_train_joins_the_run_named_by_mlflow_run_id(tracking: Tracking) -> None:
    created = tracking.client.create_run("0")
    run_id = created.info.run_id

    _train(tracking, "--rows", "800", "--model", "ridge", "--no-log-model", run_id=run_id)

    run = _only_run(tracking.client)
    assert run.info.run_id == run_id
    assert run.info.status == "FINISHED"
    assert run.data.params["model"] == "ridge"
    assert "val_rmse" in run.data.metrics
    assert not run.outputs.model_outputs
    artifacts = [a.path for a in tracking.client.list_artifacts(run_id, "reference")]
    assert artifacts == ["reference/reference.csv"]
