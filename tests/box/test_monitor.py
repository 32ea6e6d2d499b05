"""Drift monitoring on the real local box: `fab monitor.drift`, `monitor.labels` and
`monitor.schedule` as a user runs them, against the box's real MLflow.

The module boots one box and installs MLflow once. The example model is trained here, as
a user would from a laptop (examples/taxi/train.py through an SSH tunnel to the box's
MLflow), and registered four times (versions 1-4 of taxi-monitored, one per scenario).

Most tests stand in for the serving slots' prediction log with lines written on the box
in exactly the slots' format (tests/prediction_log.py), with the registered model's own
predictions (loaded here with mlflow.pyfunc): that pins each scenario's data exactly. The
last test serves a version for real (blue-green, nginx, a slot) and reports on what its
slot logged. Everything else is real: the monitor's environment built on the box, the
agent computing the report there, MLflow storing it, the report downloaded here, the
systemd timer running the same check.
"""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from remote.contract import LABELS_DIR, PREDICTION_LOG_DIR
from remote.mlflow.install import install_on_box
from remote.monitor.schedule import SERVICE, TIMER
from remote.providers.local.provider import LocalProvider
from remote.settings import BoxSettings
from remote.system import files
from remote.system.bootstrap import bootstrap
from remote.system.files import RemoteFile
from tests.box.harness.mlflow_box import MlflowBox
from tests.prediction_log import lines
from tests.taxi_example import EXAMPLE, example_module

pytestmark = pytest.mark.box

taxi_data = example_module("taxi_data")
Drift = taxi_data.Drift
FEATURES: list[str] = taxi_data.FEATURES
TARGET: str = taxi_data.TARGET
MODEL = "taxi-monitored"  # its own name: the session's box and MLflow serve every module
EXPERIMENT = "mlops-box-monitoring"
ROWS = 3000
DEPLOY_STATE = "/var/lib/mlops-box/deploy/state.json"
TRAIN_TIMEOUT_S = 300
SCHEDULE_TIMEOUT_S = 300


@dataclass
class Monitored:
    box: MlflowBox
    model: Any  # the registered model, loaded here with mlflow.pyfunc
    val_rmse: float

    def log(self, slot: str, version: str, trips: pd.DataFrame, prefix: str) -> None:
        """Write the slot's log on the box: `trips` predicted by the model over the last
        20 hours, one request each, ids `<prefix>-<n>`."""
        now = datetime.datetime.now(datetime.UTC)
        content = "".join(
            lines(
                trips[FEATURES],
                self.model.predict(trips[FEATURES]),
                model=MODEL,
                version=version,
                start=now - datetime.timedelta(hours=20),
                end=now - datetime.timedelta(minutes=1),
                id_prefix=prefix,
                slot=slot,
            )
        )
        self.box.sh(f"sudo install -d -m 755 {PREDICTION_LOG_DIR}")
        files.write(
            self.box.conn, RemoteFile(f"{PREDICTION_LOG_DIR}/{slot}.jsonl", content.encode())
        )

    def drift(
        self, *args: str, out: Path, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.box.fab("monitor.drift", "--out", str(out), *args, extra_env=extra_env)

    def runs(self, version: str) -> list[Any]:
        import mlflow

        return list(
            mlflow.search_runs(
                experiment_names=[EXPERIMENT],
                filter_string=f"tags.`mlops-box.model_version` = '{version}'",
                output_format="list",
            )
        )

    def all_runs(self) -> int:
        import mlflow

        return len(mlflow.search_runs(experiment_names=[EXPERIMENT], output_format="list"))


def _train(url: str, cwd: Path) -> tuple[str, float]:
    """examples/taxi/train.py as a user runs it against the box; (model URI, val_rmse)."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / "train.py"), "--rows", "5000", "--seed", "1"],
        cwd=cwd,
        env={
            "PATH": "/usr/bin:/bin",
            "MLFLOW_TRACKING_URI": url,
            "MLFLOW_DISABLE_TELEMETRY": "true",
        },
        capture_output=True,
        text=True,
        timeout=TRAIN_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    uri = re.search(r"^model (models:/\S+)$", result.stdout, re.MULTILINE)
    rmse = re.search(r"^val_rmse=(\S+)$", result.stdout, re.MULTILINE)
    assert uri and rmse, result.stdout
    return uri[1], float(rmse[1])


def _model_without_reference() -> None:
    """A model whose training run logged no reference sample, registered as no-reference."""
    import mlflow
    from sklearn.linear_model import LinearRegression

    with mlflow.start_run():
        fitted = LinearRegression().fit([[1.0], [2.0]], [1.0, 2.0])
        info = mlflow.sklearn.log_model(fitted, name="model")
    mlflow.register_model(info.model_uri, "no-reference")


@pytest.fixture(scope="module")
def monitored(
    local_settings: BoxSettings, local_box: LocalProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Monitored]:
    import mlflow

    box = MlflowBox(local_settings, local_box, "", None)
    box.start()
    bootstrap(box.conn)
    install_on_box(box.conn, box.provider)
    # The box is the session's: a model another module left live would be this module's
    # "live model", and its predictions would be in the log. Start from nothing served.
    box.fab("deploy.stop")  # refused when nothing was ever deployed: nothing to stop then
    box.sh(f"sudo rm -rf {Path(DEPLOY_STATE).parent} {PREDICTION_LOG_DIR}")
    try:
        with box.tracking() as url:
            model_uri, val_rmse = _train(url, tmp_path_factory.mktemp("train"))
            for _ in range(4):
                mlflow.register_model(model_uri, MODEL)
            mlflow.MlflowClient().set_registered_model_alias(MODEL, "champion", "1")
            _model_without_reference()
            yield Monitored(box, mlflow.pyfunc.load_model(model_uri), val_rmse)
    finally:
        box.conn.close()


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr.strip().splitlines()[-1]


def _report_folder(result: subprocess.CompletedProcess[str]) -> Path:
    found = re.search(r"^Report: (\S+)$", result.stdout, re.MULTILINE)
    assert found, result.stdout
    html = Path(found[1])
    assert html.name == "report.html" and html.is_file()
    return html.parent


def test_no_drift_exits_0_logs_the_report_to_mlflow_and_downloads_it(
    monitored: Monitored, tmp_path: Path
) -> None:
    import mlflow

    monitored.log("blue", "1", taxi_data.generate(ROWS, 21), "v1")
    opened = tmp_path / "opened"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    result = monitored.drift(
        "--model", f"{MODEL}@champion", "--open", out=tmp_path, extra_env={"BROWSER": str(browser)}
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{MODEL} v1: {ROWS} requests ({ROWS} rows)" in result.stdout
    assert "No drift" in result.stdout
    folder = _report_folder(result)
    assert folder.parent == tmp_path and folder.name.startswith(f"{MODEL}-v1-")
    assert sorted(p.name for p in folder.iterdir()) == [
        "figures.json",
        "report.html",
        "summary.png",
    ]
    assert (folder / "summary.png").read_bytes().startswith(b"\x89PNG")
    figures = json.loads((folder / "figures.json").read_text())
    assert figures["summary"]["drift"] is False
    assert figures["summary"]["rows"] == ROWS
    assert opened.read_text().strip() == (folder / "report.html").as_uri()

    runs = monitored.runs("1")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlops-box.model"] == MODEL
    assert run.data.tags["mlops-box.drift"] == "no"
    assert run.data.metrics["rows"] == ROWS and run.data.metrics["drift"] == 0
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "report")}
    assert logged == {"report/report.html", "report/summary.png", "report/figures.json"}


def test_data_drift_exits_3_and_names_the_drifted_columns(
    monitored: Monitored, tmp_path: Path
) -> None:
    drift = Drift(zone_mix="airports", unseen_zone_share=0.05, missing_share=0.1)
    monitored.log("green", "2", taxi_data.generate(ROWS, 22, drift), "v2")

    result = monitored.drift("--model", f"models:/{MODEL}/2", out=tmp_path)

    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stderr.strip() == ""
    assert "3 of 6 input columns (pickup_zone, dropoff_zone, trip_distance)" in result.stdout
    assert "DRIFT: 3 of 6 input columns drifted (50% >= 50%); the predictions drifted" in (
        result.stdout
    )
    summary = json.loads((_report_folder(result) / "figures.json").read_text())["summary"]
    assert set(summary["quality"]["unseen"]) == {"pickup_zone", "dropoff_zone"}
    assert set(summary["quality"]["missing"]) == {"trip_distance", "passenger_count"}
    assert monitored.runs("2")[0].data.tags["mlops-box.drift"] == "yes"

    # A higher --drift-share: the columns alone no longer make the dataset drift.
    result = monitored.drift(
        "--model", f"{MODEL}/2", "--drift-share", "0.9", "--since", "2d", out=tmp_path
    )
    assert result.returncode == 3
    assert "DRIFT: the predictions drifted" in result.stdout


def test_concept_drift_shows_once_labels_arrive(monitored: Monitored, tmp_path: Path) -> None:
    trips = taxi_data.generate(ROWS, 23, Drift(speed_factor=0.7))
    monitored.log("shadow", "3", trips, "v3")

    before = monitored.drift("--model", f"{MODEL}/3", out=tmp_path)
    assert before.returncode == 0, before.stdout + before.stderr
    assert "no labels yet" in before.stdout

    truth = tmp_path / "truth.csv"
    labelled = pd.DataFrame(
        {"request_id": [f"v3-{i}" for i in range(0, ROWS, 2)], TARGET: trips[TARGET][::2]}
    )
    unknown = pd.DataFrame({"request_id": ["typo-1", "typo-2", "typo-3"], TARGET: [1.0] * 3})
    pd.concat([labelled, unknown]).to_csv(truth, index=False)
    uploaded = monitored.box.fab("monitor.labels", str(truth))
    assert uploaded.returncode == 0, uploaded.stderr
    assert f"{ROWS // 2 + 3} labels (duration_min) stored {LABELS_DIR}/" in uploaded.stdout
    again = monitored.box.fab("monitor.labels", str(truth))
    assert "already on the box, nothing changed" in again.stdout
    assert len(monitored.box.sh(f"sudo ls {LABELS_DIR}").split()) == 1

    after = monitored.drift("--model", f"{MODEL}/3", out=tmp_path)
    assert after.returncode == 3, after.stdout + after.stderr
    assert "data drift    0 of 6 input columns" in after.stdout
    assert "predictions   no drift" in after.stdout
    assert f"labels        {ROWS // 2} used of {ROWS // 2 + 3}; 3 for unknown" in after.stdout
    rise = re.search(r"vs val_rmse ([\d.]+) \(\+(\d+)%\)", after.stdout)
    assert rise, after.stdout
    assert float(rise[1]) == pytest.approx(monitored.val_rmse, abs=0.001)
    assert int(rise[2]) > 50
    assert re.search(r"DRIFT: the error rose \d+% over val_rmse \(more than 20%\)", after.stdout)
    run = monitored.runs("3")[0]  # the newest first
    assert run.data.metrics["labels_used"] == ROWS // 2
    assert run.data.metrics["error_rise"] > 0.5
    concept = json.loads((_report_folder(after) / "figures.json").read_text())["error_over_time"]
    assert len(concept["buckets"]) >= 20  # hourly over the 20 logged hours


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["monitor.drift", "--model", "nope@champion"], "MLflow on the box has no model"),
        (
            ["monitor.drift", "--model", "no-reference/1"],
            "no-reference v1 has no reference sample (its training run",
        ),
        (["monitor.drift", "--model", f"{MODEL}/4"], f"No predictions of {MODEL} v4 in the last"),
        (["monitor.drift"], "No model is live on the box: give --model"),
        (["monitor.drift", "--model", "taxi"], "--model is 'taxi': give NAME@ALIAS"),
        (["monitor.drift", "--since", "5x"], "--since is '5x': give a duration"),
        (["monitor.drift", "--drift-share", "2"], "--drift-share is 2.0: give the share"),
        (["monitor.drift", "--drift-share", "abc"], "--drift-share is 'abc': give a number"),
        (["monitor.schedule", "--every", "0h"], "--every is '0h': give a duration"),
        (["monitor.schedule", "--every", "1d", "--off"], "Give --every or --off, not both."),
    ],
    ids=[
        "unknown-model",
        "no-reference",
        "empty-window",
        "nothing-live",
        "bad-model",
        "bad-since",
        "bad-share",
        "not-a-number",
        "bad-every",
        "every-and-off",
    ],
)
def test_bad_inputs_are_one_line_and_change_nothing(
    monitored: Monitored, tmp_path: Path, args: list[str], message: str
) -> None:
    runs = monitored.all_runs()
    labels = monitored.box.sh(f"sudo ls -l {LABELS_DIR} 2>/dev/null || true")
    timer = monitored.box.sh(f"systemctl is-enabled {TIMER} 2>&1 || true")

    result = monitored.box.fab(*args, *(["--out", str(tmp_path)] if "drift" in args[0] else []))

    assert message in _one_line_error(result)
    assert monitored.all_runs() == runs
    assert monitored.box.sh(f"sudo ls -l {LABELS_DIR} 2>/dev/null || true") == labels
    assert monitored.box.sh(f"systemctl is-enabled {TIMER} 2>&1 || true") == timer
    assert not any(tmp_path.iterdir())


def test_a_labels_file_with_wrong_columns_uploads_nothing(
    monitored: Monitored, tmp_path: Path
) -> None:
    before = monitored.box.sh(f"sudo ls -l {LABELS_DIR} 2>/dev/null || true")
    wrong = tmp_path / "truth.csv"
    wrong.write_text("id,minutes\nv1-0,12\n")

    message = _one_line_error(monitored.box.fab("monitor.labels", str(wrong)))

    assert message == (
        f"{wrong} has the columns id, minutes: give `request_id` and one value column, named "
        "as the model's training target (e.g. duration_min) or `label`."
    )
    assert monitored.box.sh(f"sudo ls -l {LABELS_DIR} 2>/dev/null || true") == before


def test_without_model_the_report_is_of_the_live_model(
    monitored: Monitored, tmp_path: Path
) -> None:
    # Stands in for the deploy state the serving slots' deploy writes: what is live.
    state = {"live": {"slot": "blue", "model": {"name": MODEL, "version": "1"}}}
    monitored.box.sh(f"sudo install -d -m 755 {Path(DEPLOY_STATE).parent}")
    files.write(monitored.box.conn, RemoteFile(DEPLOY_STATE, json.dumps(state).encode()))
    try:
        result = monitored.box.fab("monitor.drift", "--out", str(tmp_path))
    finally:
        monitored.box.sh(f"sudo rm -f {DEPLOY_STATE}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{MODEL} v1: {ROWS} requests" in result.stdout


def test_the_schedule_runs_the_check_on_the_box_and_keeps_it_in_mlflow(
    monitored: Monitored,
) -> None:
    box = monitored.box
    before = len(monitored.runs("1"))
    champion = f"{MODEL}@champion"  # followed at every check
    schedule = ["monitor.schedule", "--every", "1m", "--since", "1d", "--model", champion]
    set_it = box.fab(*schedule)
    assert set_it.returncode == 0, set_it.stdout + set_it.stderr
    assert f"drift check of {champion} every 1m: set" in set_it.stdout
    assert box.sh(f"systemctl is-active {TIMER}").strip() == "active"
    assert box.sh(f"systemctl is-enabled {TIMER}").strip() == "enabled"

    again = box.fab(*schedule)
    assert "already set, nothing changed" in again.stdout

    # The timer itself starts the check, a minute after it was set.
    deadline = time.monotonic() + SCHEDULE_TIMEOUT_S
    while len(monitored.runs("1")) == before:
        assert time.monotonic() < deadline, box.sh(f"sudo journalctl -u {SERVICE} --no-pager")
        time.sleep(5)
    run = monitored.runs("1")[0]  # the newest first
    assert run.data.params["window"] == "1d"
    assert run.data.metrics["rows"] == ROWS
    shown = box.fab("monitor.schedule")
    assert shown.returncode == 0, shown.stderr
    assert f"last check: {MODEL} v1, {ROWS} requests: no drift (MLflow run {run.info.run_id})" in (
        shown.stdout
    )

    off = box.fab("monitor.schedule", "--off")
    assert off.returncode == 0 and "removed" in off.stdout
    for unit in (TIMER, SERVICE):
        assert box.sh(f"systemctl show -p LoadState {unit}").strip() == "LoadState=not-found"
    assert "none to remove" in box.fab("monitor.schedule", "--off").stdout
    assert "No drift check is scheduled" in box.fab("monitor.schedule").stdout


def test_the_live_model_drifts_in_the_slots_own_prediction_log(
    monitored: Monitored, tmp_path: Path
) -> None:
    """Served for real: version 4 goes live with `fab deploy.blue-green`, drifted trips go
    through the router, and the report of the live model reads what its slot logged."""
    box = monitored.box
    box.sh(f"sudo rm -f {PREDICTION_LOG_DIR}/*.jsonl")  # the stand-in lines of the tests above
    deployed = box.fab("deploy.blue-green", "--model", f"models:/{MODEL}/4")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    try:
        drifted = taxi_data.generate(ROWS, 24, Drift(zone_mix="airports", unseen_zone_share=0.05))
        batch = 100  # rows per request: the slot logs one line per request
        for start in range(0, ROWS, batch):
            rows = drifted[FEATURES].iloc[start : start + batch]
            body = {"dataframe_split": {"columns": FEATURES, "data": rows.values.tolist()}}
            path = f"/tmp/mlops-trips-{start}.json"
            files.write(box.conn, RemoteFile(path, json.dumps(body).encode()))
            status = box.sh(
                f"curl -s -o /dev/null -w '%{{http_code}}' -m 30 -H 'Content-Type: "
                f"application/json' -H 'X-Request-ID: live-{start}' --data-binary @{path} "
                f"http://127.0.0.1:8000/invocations; sudo rm -f {path}"
            )
            assert status == "200", status

        result = box.fab("monitor.drift", "--out", str(tmp_path))  # the live model

        assert result.returncode == 3, result.stdout + result.stderr
        requests = ROWS // batch
        assert f"{MODEL} v4: {requests} requests ({ROWS} rows)" in result.stdout
        assert "pickup_zone, dropoff_zone" in result.stdout
        summary = json.loads((_report_folder(result) / "figures.json").read_text())["summary"]
        assert set(summary["quality"]["unseen"]) == {"pickup_zone", "dropoff_zone"}
        assert monitored.runs("4")[0].data.tags["mlops-box.drift"] == "yes"
    finally:
        stopped = box.fab("deploy.stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
