"""`box-gc` on a box's folders laid out in a temporary directory: what is in use (by a
slot, the deploy state, a job, a unit file or the controller's word) stays, and so does
anything changed within the hour; the rest goes. Real files; no box."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from remote.agent.system import gc, layout
from remote.agent.system.failure import AgentFailure
from remote.agent.train.records import STAMP

HOURS_AGO = time.time() - 2 * 3600


def made(path: Path, *, old: bool = True, size: int = 4096) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "payload").write_bytes(b"x" * size)
    if old:
        os.utime(path, (HOURS_AGO, HOURS_AGO))
    return path


def job(root: Path, job_id: str, env_key: str, state: str, days_ago: float) -> None:
    folder = root / "jobs" / job_id
    folder.mkdir(parents=True)
    started = time.strftime(STAMP, time.gmtime(time.time() - days_ago * 86400))
    record = {"id": job_id, "env_key": env_key, "state": state, "started_at": started}
    (folder / "job.json").write_text(json.dumps(record))


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, sub in (
        ("MODEL_ENVS_DIR", "envs"),
        ("MODELS_DIR", "models"),
        ("TRAIN_ENVS_DIR", "train/envs"),
        ("TRAIN_JOBS_DIR", "train/jobs"),
        ("MLFLOW_VENVS_DIR", "mlflow/venvs"),
        ("AGENT_DIR", "agent"),
        ("SLOTS_DIR", "slots"),
        ("DEPLOY_STATE_FILE", "deploy/state.json"),
    ):
        monkeypatch.setattr(layout, name, str(tmp_path / sub))
    monkeypatch.setattr(gc, "UNIT_DIRS", (str(tmp_path / "units"),))
    monkeypatch.setattr(gc, "AGENT_PATH", str(tmp_path / "agent" / "this.zip"))
    envs, models = tmp_path / "envs", tmp_path / "models"
    # serving: blue's links, and the rollback target in the deploy state
    made(envs / "model-live"), made(models / "live-1"), made(envs / "model-back")
    made(models / "back-1"), made(envs / "model-stale"), made(models / "stale-1")
    made(envs / "model-building", old=False)  # a deploy may be making it right now
    (tmp_path / "slots" / "blue").mkdir(parents=True)
    os.symlink(envs / "model-live", tmp_path / "slots" / "blue" / "env")
    os.symlink(models / "live-1", tmp_path / "slots" / "blue" / "model")
    previous = {"slot": "green", "model": {"env": str(envs / "model-back"),
                                           "dir": str(models / "back-1")}}  # fmt: skip
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "state.json").write_text(json.dumps({"previous": previous}))
    made(envs / "monitor-now"), made(envs / "monitor-old")
    # training: a running job, one from two days ago, one from a month ago, and no job
    train = tmp_path / "train"
    for key in ("running", "recent", "month", "orphan"):
        made(train / "envs" / key)
    job(train, "20260101-000000-aaaa", "running", "running", 40)
    job(train, "20260101-000000-bbbb", "recent", "succeeded", 2)
    job(train, "20260101-000000-cccc", "month", "succeeded", 30)
    (
        made(tmp_path / "mlflow" / "venvs" / "3.18.0-new"),
        made(tmp_path / "mlflow" / "venvs" / "3.17.2-old"),
    )
    agent = tmp_path / "agent"
    for name in ("this.zip", "timer.zip", "old.zip"):
        agent.mkdir(exist_ok=True)
        (agent / name).write_bytes(b"PK")
        os.utime(agent / name, (HOURS_AGO, HOURS_AGO))
    (tmp_path / "units").mkdir()
    (tmp_path / "units" / "mlops-idle.service").write_text(f"PYTHONPATH={agent / 'timer.zip'}\n")
    return tmp_path


def keep(box: Path) -> list[str]:
    return [str(box / "envs" / "monitor-now"), str(box / "mlflow" / "venvs" / "3.18.0-new")]


STALE = [
    "agent/old.zip",
    "envs/model-stale",
    "envs/monitor-old",
    "mlflow/venvs/3.17.2-old",
    "models/stale-1",
    "train/envs/month",
    "train/envs/orphan",
]


def test_a_dry_run_lists_what_nothing_needs_and_removes_nothing(box: Path) -> None:
    answer = gc.collect(keep(box), train_days=7, dry_run=True)
    assert sorted(str(Path(i["path"]).relative_to(box)) for i in answer["removed"]) == STALE
    assert answer["freed_bytes"] >= 6 * 4096 and answer["dry_run"] is True
    assert all((box / path).exists() for path in STALE)


def test_it_removes_exactly_that_and_keeps_what_is_in_use(box: Path) -> None:
    before = {p.relative_to(box) for p in box.rglob("*") if p.parent.name != "jobs"}
    gc.collect(keep(box), train_days=7)
    for path in STALE:
        assert not (box / path).exists(), path
    for path in ("envs/model-live", "envs/model-back", "envs/model-building", "models/live-1",
                 "models/back-1", "envs/monitor-now", "train/envs/running", "train/envs/recent",
                 "mlflow/venvs/3.18.0-new", "agent/this.zip", "agent/timer.zip"):  # fmt: skip
        assert (box / path).exists(), path
    assert gc.collect(keep(box), train_days=7)["removed"] == []  # nothing left to do
    assert before  # the layout was made


def test_nothing_is_removed_while_a_deploy_runs(box: Path) -> None:
    (box / "deploy" / "state.json").write_text(json.dumps({"transition": {"revision": 3}}))
    with pytest.raises(AgentFailure) as refused:
        gc.collect(keep(box), train_days=7)
    assert refused.value.kind == gc.KIND_BUSY and "A deploy runs" in refused.value.sentence
    assert all((box / path).exists() for path in STALE)


def test_the_pass_after_a_deploy_or_job_leaves_the_mlflow_and_monitor_envs_alone(
    box: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Only the controller knows which MLflow and monitor environments are in use.
    gc.after("revision 7")
    left = [path for path in STALE if (box / path).exists()]
    assert left == ["envs/monitor-old", "mlflow/venvs/3.17.2-old"]
    said = capsys.readouterr().err
    assert said.startswith("Clean-up after revision 7: freed ") and "envs/model-stale" in said


def test_the_pass_after_a_deploy_never_fails_it(
    box: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (box / "deploy" / "state.json").write_text("{not json")
    gc.after("job 20260101-000000-aaaa")
    assert "Clean-up after job 20260101-000000-aaaa skipped: " in capsys.readouterr().err
    assert all((box / path).exists() for path in STALE)
