"""Training job records (remote/agent/train/records.py) in a jobs folder laid out in a
temporary directory: which ids are job ids, reading, writing and updating a record, the
ids on the box, a job's duration, and the UTC time stamps. Real files; no box."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from remote.agent.system.failure import AgentFailure
from remote.agent.train import records

JOB = "20250601-120000-0a1f"
OTHER = "20250601-130000-beef"


@pytest.fixture
def jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "train" / "jobs"
    monkeypatch.setattr(records, "TRAIN_JOBS_DIR", str(folder))
    return folder


def on_disk(jobs: Path, record: dict[str, object]) -> None:
    (jobs / str(record["id"])).mkdir(parents=True)
    (jobs / str(record["id"]) / "job.json").write_text(json.dumps(record))


def test_a_job_id_is_a_time_and_four_hex_digits_and_names_its_folder(jobs: Path) -> None:
    assert records.check_id(JOB) == JOB
    assert records.job_dir(JOB) == jobs / JOB


@pytest.mark.parametrize(
    "job_id",
    ["../../etc", "20250601-120000-0A1F", "20250601-120000-0a1", f"{JOB}/x", f" {JOB}", ""],
)
def test_anything_else_is_refused_before_a_path_is_made(jobs: Path, job_id: str) -> None:
    with pytest.raises(AgentFailure, match=r"is not a job id: see `fab train\.list`") as refused:
        records.job_dir(job_id)
    assert refused.value.kind == records.KIND_UNKNOWN_JOB
    assert repr(job_id) in refused.value.sentence


def test_a_record_is_read_from_its_job_json(jobs: Path) -> None:
    on_disk(jobs, {"id": JOB, "state": "running"})
    assert records.read(JOB) == {"id": JOB, "state": "running"}


def test_a_job_with_no_record_is_unknown(jobs: Path) -> None:
    with pytest.raises(AgentFailure, match=f"There is no job {JOB} on the box") as refused:
        records.read(JOB)
    assert refused.value.kind == records.KIND_UNKNOWN_JOB
    with pytest.raises(AgentFailure, match=f"There is no job {JOB} on the box"):
        records.update(JOB, state="running")


def test_a_record_is_written_as_sorted_indented_json_readable_by_all(jobs: Path) -> None:
    record = {"id": JOB, "state": "running", "env_key": "e1"}
    records.write(record)
    path = jobs / JOB / "job.json"
    assert path.read_text() == (
        '{\n  "env_key": "e1",\n  "id": "20250601-120000-0a1f",\n  "state": "running"\n}\n'
    )
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_an_update_changes_only_the_fields_given_and_is_written(jobs: Path) -> None:
    on_disk(jobs, {"id": JOB, "state": "starting", "env_key": "e1"})
    changed = records.update(JOB, state="running", pid=7)
    assert changed == {"id": JOB, "state": "running", "env_key": "e1", "pid": 7}
    assert records.read(JOB) == changed


def test_the_ids_on_the_box_are_the_job_folders_in_order(jobs: Path) -> None:
    assert records.all_ids() == []  # no jobs folder yet
    for name in (OTHER, JOB, "not-a-job", ".lock"):
        (jobs / name).mkdir(parents=True)
    assert records.all_ids() == [JOB, OTHER]


def test_a_duration_runs_from_start_to_end_or_to_now(jobs: Path) -> None:
    assert records.duration_s({"id": JOB}) is None
    assert records.duration_s({"started_at": "", "ended_at": "2025-06-01T12:00:00Z"}) is None
    ended = {"started_at": "2025-06-01T12:00:00Z", "ended_at": "2025-06-01T13:02:03Z"}
    assert records.duration_s(ended) == 3723
    started = time.strftime(records.STAMP, time.gmtime(time.time() - 120))
    assert 119 <= (records.duration_s({"started_at": started}) or 0) <= 125


def test_now_is_stamped_in_utc_whatever_the_local_time_zone(tokyo: None) -> None:
    stamp = records.now()
    assert stamp.endswith("Z")
    assert abs(records.epoch(stamp) - time.time()) < 5
