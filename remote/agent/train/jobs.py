"""A training job's life on the box after its start: its end, reconciling, cancelling.

Run as root by the system Python. The unit's `ExecStopPost=+` runs `finished`, which
records how it ended and ends the run in MLflow, so a job that ends while nobody watches
still ends its run. Reading the records (`list`, `show`) reconciles them with systemd:
a job recorded as running whose unit is gone (the box crashed under it) is `lost`, and a
run left unmarked (MLflow was down) is marked then.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from typing import Any

from ..system import gc, mlflow_api, systemd
from ..system.failure import AgentFailure
from .records import (
    ACTIVE_STATES,
    FINAL_STATES,
    REGISTRATION,
    all_ids,
    check_id,
    duration_s,
    epoch,
    job_dir,
    locked,
    now,
    read,
    write,
)

# MLflow's end status for each final state.
RUN_STATUS = {
    "succeeded": "FINISHED",
    "failed": "FAILED",
    "oom": "FAILED",
    "killed": "KILLED",
    "lost": "KILLED",
}
ALIVE_STATES = ("active", "activating", "deactivating", "reloading", "refreshing")
_CLEAN_SIGNALS = ("TERM", "INT", "HUP")  # how `systemctl stop` ends a unit


def finished(job_id: str) -> dict[str, Any]:
    """ExecStopPost: record how the unit ended (systemd says so in our environment)."""
    result = os.environ.get("SERVICE_RESULT", "")
    code = os.environ.get("EXIT_CODE", "")
    status = os.environ.get("EXIT_STATUS", "")
    with locked(job_id):
        record = read(job_id)
        state = final_state(record, result, code, status, _system_stopping())
        record.update(state=state, result=result, exit_code=exit_code(code, status))
        if state == "succeeded" and record.get("register_as"):
            record.update(registration(job_id, record["register_as"]))
        record["ended_at"] = now()
        mark_run(record)
        write(record)
    gc.after(f"job {job_id}")
    return {"record": record}


def registration(job_id: str, name: str) -> dict[str, Any]:
    """What the job's execute.py said about registering `name`: the record's `registered`
    (NAME/VERSION) or `register_error`. The file is the job user's, so it is checked."""
    path = job_dir(job_id) / "home" / REGISTRATION
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"register_error": f"The job ended without registering {name!r} (no {path})."}
    registered = found.get("registered") if isinstance(found, dict) else None
    if isinstance(registered, str) and re.fullmatch(rf"{re.escape(name)}/[1-9][0-9]*", registered):
        return {"registered": registered}
    error = found.get("register_error") if isinstance(found, dict) else None
    return {"register_error": str(error or f"{path} does not say {name!r} was registered.")[:500]}


def final_state(record: dict[str, Any], result: str, code: str, status: str, stopping: bool) -> str:
    if record.get("cancel_requested"):
        return "killed"
    if result == "oom-kill":
        return "oom"
    if result == "success" and code == "exited" and status == "0":
        return "succeeded"
    if code in ("killed", "dumped") and stopping:
        return "lost"  # the box shut down under it
    if code == "killed" and status in _CLEAN_SIGNALS:
        return "killed"  # stopped on the box, outside mlops-box
    return "failed"


def exit_code(code: str, status: str) -> int | None:
    """The shell's convention: the exit status, or 128 + the signal that ended it."""
    if code == "exited" and status.isdigit():
        return int(status)
    if code in ("killed", "dumped"):
        try:
            return 128 + signal.Signals[f"SIG{status}"].value
        except KeyError:
            return None
    return None


def reconcile(job_id: str) -> dict[str, Any]:
    """The record, after checking it against systemd and MLflow (and saving what changed)."""
    with locked(job_id):
        record = read(job_id)
        changed = False
        if record["state"] in ACTIVE_STATES and not _unit_alive(record["unit"]):
            record.update(state="lost", ended_at=now())
            changed = True
        unmarked = record.get("run_id") and not record.get("run_marked")
        if record["state"] in FINAL_STATES and unmarked:
            mark_run(record)
            changed = True
        if changed:
            write(record)
    record["duration_s"] = duration_s(record)
    return record


def show(job_id: str) -> dict[str, Any]:
    return {"record": reconcile(check_id(job_id))}


def listing() -> dict[str, Any]:
    records = []
    for job_id in all_ids():
        try:
            records.append(reconcile(job_id))
        except AgentFailure:  # a job directory whose start is being made right now
            continue
    return {"jobs": records}


def cancel(job_id: str) -> dict[str, Any]:
    """Stop the job's unit; its ExecStopPost records it as killed and marks the run KILLED."""
    with locked(check_id(job_id)):
        record = read(job_id)
        active = record["state"] in ACTIVE_STATES
        if active:
            record["cancel_requested"] = True
            write(record)
    if not active:
        return {"record": reconcile(job_id), "cancelled": False}
    systemd.systemctl("stop", record["unit"])
    return {"record": reconcile(job_id), "cancelled": True}


def mark_run(record: dict[str, Any]) -> None:
    """End the job's MLflow run as its state says; on failure keep it for a later try."""
    status = RUN_STATUS.get(record["state"])
    if not record.get("run_id") or status is None:
        return
    try:
        mlflow_api.end_run(record["tracking_uri"], record["run_id"], status, _ms(record))
    except AgentFailure as failure:
        record.update(run_marked=False, run_error=failure.sentence)
        return
    record.update(run_marked=True, run_status=status)
    record.pop("run_error", None)


def _ms(record: dict[str, Any]) -> int:
    ended = record.get("ended_at")
    return epoch(ended) * 1000 if ended else int(time.time() * 1000)


def _unit_alive(unit: str) -> bool:
    return systemd.active_state(unit) in ALIVE_STATES


def _system_stopping() -> bool:
    return systemd.systemctl("is-system-running").stdout.strip() == "stopping"
