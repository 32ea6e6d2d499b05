"""Training jobs on the box: where everything lives, and the job records.

One directory per job, /var/lib/mlops-box/train/jobs/<id>/, holds its record (job.json),
its environment file (root-only: the user's --env values may be secrets), its project
snapshot and its HOME. The record is the truth about the job (the controller never
writes it): written atomically, under the job's lock, by the agent alone.

The controller imports the paths below from here, so the box and the controller share
one definition of them.
"""

from __future__ import annotations

import calendar
import contextlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..system import files
from ..system.failure import AgentFailure
from ..system.layout import TRAIN_JOBS_DIR, TRAIN_UNIT_PREFIX

JOB_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{4}")

# A record's states: the first two while the unit exists, the rest final.
ACTIVE_STATES = ("starting", "running")
FINAL_STATES = ("succeeded", "failed", "oom", "killed", "lost")

KIND_UNKNOWN_JOB = "unknown-job"
STAMP = "%Y-%m-%dT%H:%M:%SZ"  # UTC

# What execute.py (the job's main process) keeps in the job's home about registering its
# model, for the record.
REGISTRATION = "registration.json"


def unit_name(job_id: str) -> str:
    return f"{TRAIN_UNIT_PREFIX}{job_id}.service"


def job_dir(job_id: str) -> Path:
    check_id(job_id)
    return Path(TRAIN_JOBS_DIR) / job_id


def check_id(job_id: str) -> str:
    if not JOB_ID.fullmatch(job_id):
        raise AgentFailure(
            KIND_UNKNOWN_JOB, f"{job_id!r} is not a job id: see `fab train.list` for the ids."
        )
    return job_id


def now() -> str:
    return time.strftime(STAMP, time.gmtime())


def read(job_id: str) -> dict[str, Any]:
    path = job_dir(job_id) / "job.json"
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise _unknown(job_id) from None


def write(record: dict[str, Any]) -> None:
    """Replace the job's record atomically and durably (system/files.py)."""
    path = job_dir(record["id"]) / "job.json"
    files.write_text(str(path), json.dumps(record, indent=2, sort_keys=True) + "\n", 0o644)


def update(job_id: str, **fields: Any) -> dict[str, Any]:
    """Read, change and write the record in one step, under the job's lock."""
    with locked(job_id):
        record = read(job_id)
        record.update(fields)
        write(record)
        return record


@contextlib.contextmanager
def locked(job_id: str) -> Iterator[None]:
    """The job's lock: its start, its end (ExecStopPost) and reconciling never interleave."""
    folder = job_dir(job_id)
    if not folder.is_dir():
        raise _unknown(job_id)
    with files.flocked(str(folder / ".lock")):
        yield


def all_ids() -> list[str]:
    jobs = Path(TRAIN_JOBS_DIR)
    if not jobs.is_dir():
        return []
    return sorted(p.name for p in jobs.iterdir() if JOB_ID.fullmatch(p.name))


def duration_s(record: dict[str, Any]) -> int | None:
    """Seconds from start to end (to now, while it runs)."""
    started = record.get("started_at")
    if not started:
        return None
    return epoch(record.get("ended_at") or now()) - epoch(started)


def epoch(stamp: str) -> int:
    """Seconds since the epoch of a `now()` time stamp (UTC)."""
    return calendar.timegm(time.strptime(stamp, STAMP))


def _unknown(job_id: str) -> AgentFailure:
    return AgentFailure(
        KIND_UNKNOWN_JOB, f"There is no job {job_id} on the box: see `fab train.list`."
    )
