"""What a user types for monitoring, checked on this machine before the box is touched:
durations, model references, thresholds, labels files, and the schedule's units."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from remote.errors import LabelsError, MonitorError
from remote.monitor import labels, schedule
from remote.monitor.options import DriftRequest, drift_request, duration_s, model_ref


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("12h", 43200), ("1d", 86400), ("2w", 1209600)]
)
def test_durations(text: str, seconds: int) -> None:
    assert duration_s(text, "--since") == seconds


@pytest.mark.parametrize("text", ["", "0h", "24", "1y", "-1d", "1.5h", "400d", "30s", "1 d d"])
def test_bad_durations_are_one_sentence(text: str) -> None:
    with pytest.raises(MonitorError, match=r"--every is .*: give a duration such as 30m"):
        duration_s(text, "--every")


@pytest.mark.parametrize(
    "text",
    [
        "taxi-duration@champion",
        "taxi-duration/3",
        "models:/taxi-duration@champion",
        "models:/my model/12",
        "models:/m-5e46545910df4e5dba630141f16ea0e6",
        "",
    ],
)
def test_model_references(text: str) -> None:
    assert model_ref(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "taxi-duration",
        "runs:/abc/model",
        "taxi@",
        "a/b/3",
        "m@x\ny",
        "taxi/latest",
        "taxi@latest",
        "taxi/0",
        "models:/m-5e46",
        "a:b/3",
        "x" * 300 + "/1",
    ],
)
def test_bad_model_references(text: str) -> None:
    with pytest.raises(MonitorError, match=r"--model is .*: give NAME@ALIAS"):
        model_ref(text)


def test_thresholds_and_the_agents_arguments() -> None:
    request = drift_request("taxi@champion", "12h", 0.3, 0.5)
    assert request.agent_args() == [
        "--model=taxi@champion",
        "--since-s=43200",
        "--drift-share=0.3",
        "--max-error-rise=0.5",
    ]
    assert "--model" not in " ".join(DriftRequest("", 60).agent_args())
    for share in (0.0, 1.5, -0.1):
        with pytest.raises(MonitorError, match="--drift-share"):
            drift_request("", "1d", share, 0.2)
    with pytest.raises(MonitorError, match="--max-error-rise"):
        drift_request("", "1d", 0.5, -0.2)
    with pytest.raises(MonitorError, match="--drift-share is 'abc': give a number"):
        drift_request("", "1d", "abc", "0.2")
    with pytest.raises(MonitorError, match="--max-error-rise is 'nan': give a number"):
        drift_request("", "1d", "0.5", "nan")
    assert drift_request("", "1d", "0.25", "1").drift_share == 0.25


# ------------------------------------------------------------------------- labels files


def test_csv_and_jsonl_labels(tmp_path: Path) -> None:
    csv = tmp_path / "truth.csv"
    csv.write_text("request_id,duration_min\nr1,12.5\n r2 ,7\n")
    found = labels.read(csv)
    assert (found.name, found.values) == ("duration_min", {"r1": 12.5, "r2": 7.0})

    jsonl = tmp_path / "truth.jsonl"
    jsonl.write_text('{"request_id": "r1", "label": 3}\n\n{"label": "4.5", "request_id": 9}\n')
    found = labels.read(jsonl)
    assert (found.name, found.values) == ("label", {"r1": 3.0, "9": 4.5})
    lines = [json.loads(line) for line in found.content().decode().splitlines()]
    assert lines == [
        {"request_id": "r1", "value": 3.0, "name": "label"},
        {"request_id": "9", "value": 4.5, "name": "label"},
    ]
    assert found.digest == labels.read(jsonl).digest


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("a.csv", "id,duration_min\nr1,3\n", "has the columns id, duration_min: give `request_id`"),
        ("a.csv", "request_id\nr1\n", "has the columns request_id: give"),
        ("a.csv", "request_id,y,z\nr1,1,2\n", "has the columns request_id, y, z"),
        ("a.csv", "request_id,y\nr1,fast\n", "line 2: y is 'fast', not a number"),
        ("a.csv", "request_id,y\nr1,\n", "line 2: y is '', not a number"),
        ("a.csv", "request_id,y\nr1,nan\n", "not a number"),
        ("a.csv", "request_id,y\nr1,1\nr1,2\n", "line 3: request id 'r1' is there twice"),
        ("a.csv", "request_id,y\n,1\n", "line 2: the request id '' is empty"),
        ("a.jsonl", '{"request_id": "r\\u0000", "y": 1}\n', "'r\\x00' has a control"),
        ("a.csv", "request_id,y\nr1,1,9\n", "line 2 has 3 fields, not the header's 2"),
        ("a.csv", "request_id,y\n", "holds no labels"),
        ("a.jsonl", '{"request_id": "r1", "y": 1}\n[1]\n', "line 2 is not a JSON object"),
        ("a.jsonl", '{"request_id": "r1", "y": 1}\n{"request_id": "r2", "z": 1}\n', "not"),
        ("a.jsonl", '{"request_id": "r1", "y": true}\n', "y is True, not a number"),
        ("a.parquet", "", "is not a .csv or .jsonl file"),
    ],
)
def test_a_wrong_labels_file_is_one_sentence(
    tmp_path: Path, name: str, text: str, problem: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(LabelsError) as refused:
        labels.read(path)
    assert problem in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_missing_labels_file(tmp_path: Path) -> None:
    with pytest.raises(LabelsError, match="Cannot read"):
        labels.read(tmp_path / "none.csv")


def test_fab_monitor_labels_refuses_a_wrong_file_before_looking_for_a_box(
    tmp_path: Path,
) -> None:
    wrong = tmp_path / "truth.csv"
    wrong.write_text("id,duration_min\nr1,3\n")
    fab = Path(sys.executable).with_name("fab")
    proc = subprocess.run(
        [str(fab), "-r", str(Path(__file__).resolve().parents[2]), "monitor.labels", str(wrong)],
        env={"PATH": "/usr/bin:/bin", "FABRIC_BOX_NAME": "no-such-box-here"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"{wrong} has the columns id, duration_min: give `request_id` and one value column, "
        "named as the model's training target (e.g. duration_min) or `label`."
    ]


# --------------------------------------------------------------------------- the schedule


def test_the_schedule_runs_the_same_report_on_a_timer() -> None:
    wanted = schedule.schedule_of("12h", "my 100% model$x@champion", "", 0.5, 0.2)
    assert wanted.every_s == wanted.request.since_s == 43200
    assert wanted.first_s == 900
    service = schedule.render_service(wanted, "/opt/mlops-box/agent/abc.zip")
    exec_start = next(x for x in service.splitlines() if x.startswith("ExecStart="))
    assert exec_start.endswith(
        '"drift-report" "--model=my 100%% model$$x@champion" "--since-s=43200" '
        '"--drift-share=0.5" "--max-error-rise=0.2" "--empty-ok"'
    )
    assert "Environment=PYTHONPATH=/opt/mlops-box/agent/abc.zip" in service
    assert "Description=mlops-box drift check of my 100%% model$x@champion every 12h" in service
    timer = schedule.render_timer(wanted)
    assert "OnActiveSec=900s" in timer and "OnUnitActiveSec=43200s" in timer
    assert "Unit=mlops-drift.service" in timer

    short = schedule.schedule_of("1m", "", "2h", 0.5, 0.2)
    assert (short.first_s, short.request.since_s, short.request.model) == (60, 7200, "")


def test_bad_schedules() -> None:
    with pytest.raises(MonitorError, match="--every is '0m'"):
        schedule.schedule_of("0m", "", "", 0.5, 0.2)
    with pytest.raises(MonitorError, match="--since is 'soon'"):
        schedule.schedule_of("1d", "", "soon", 0.5, 0.2)
    with pytest.raises(MonitorError, match="--model is 'x'"):
        schedule.schedule_of("1d", "x", "", 0.5, 0.2)
