"""A training job's life on the box: plan, start, end (ExecStopPost), reconcile, cancel.

Run as root by the system Python (never by a job's environment, whose packages are the
user's): `start` takes the uploaded blobs, builds the snapshot, creates the MLflow run
and starts the entry as a transient unit running as the unprivileged job user; the
unit's `ExecStopPost=+` runs `finished`, which records how it ended and ends the run in
MLflow, so a job that ends while nobody watches still ends its run. Reading the records
(`list`, `show`) reconciles them with systemd: a job recorded as running whose unit is
gone (the box stopped under it) is `lost`, and a run left unmarked is marked then.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import mlflow_rest
from .failure import AgentFailure
from .train_records import (
    ACTIVE_STATES,
    ENVS_DIR,
    FINAL_STATES,
    TRAIN_USER,
    all_ids,
    check_id,
    duration_s,
    epoch,
    job_dir,
    locked,
    now,
    read,
    unit_name,
    update,
    write,
)
from .train_store import ensure_layout, env_ready, materialise, missing, take_blobs

SPEC = "job.json"  # the job's description in the staging directory
BLOBS_TAR = "blobs.tar"  # the blobs the store lacked, when there were any
KIND_START = "start"
KIND_NO_MEMORY_LIMITS = "no-memory-limits"
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
STOP_TIMEOUT_S = 30
NO_MEMORY_LIMITS = (
    "This box cannot enforce --memory-max: its systemd has no memory cgroup controller "
    "(a container on a cgroup-v1 host). Leave out --memory-max here; it works on the EC2 box."
)


def memory_limits() -> bool:
    """Whether systemd here enforces MemoryMax= and tells an OOM kill (Result=oom-kill):
    only on the unified cgroup hierarchy with the memory controller delegated to it."""
    try:
        return "memory" in Path("/sys/fs/cgroup/cgroup.controllers").read_text().split()
    except OSError:
        return False


def start(staging: str) -> dict[str, Any]:
    """Start the staged job; or, when the box lacks blobs or its environment, change
    nothing and say what is missing (`started` false), for the controller to provide."""
    folder = Path(staging)
    spec = _spec(folder)
    job_id = check_id(spec["id"])
    if spec.get("memory_max") and not memory_limits():
        raise AgentFailure(KIND_NO_MEMORY_LIMITS, NO_MEMORY_LIMITS)
    tar = folder / BLOBS_TAR
    taken = 0
    if tar.exists():
        ensure_layout()
        taken = take_blobs(tar)
    lacking = missing([key for _, key in spec["files"]])
    if lacking or not env_ready(spec["env_key"]):
        return {"started": False, "missing": lacking, "env_ready": env_ready(spec["env_key"])}
    ensure_layout()
    base = spec["tracking_uri"]
    experiment = mlflow_rest.experiment_id(base, spec["experiment"])
    folder_of_job = job_dir(job_id)
    folder_of_job.mkdir(mode=0o750)  # a clash of ids fails here, before anything is made
    user = pwd.getpwnam(TRAIN_USER)
    os.chown(folder_of_job, 0, user.pw_gid)
    record: dict[str, Any] = {
        "id": job_id,
        "unit": unit_name(job_id),
        "state": "starting",
        "entry": spec["entry_text"],
        "experiment": spec["experiment"],
        "experiment_id": experiment,
        "project_hash": spec["project_hash"],
        "env_key": spec["env_key"],
        "memory_max": spec.get("memory_max"),
        "tracking_uri": base,
        "started_at": now(),
        "ended_at": None,
        "exit_code": None,
        "run_id": None,
        "registered": None,
    }
    with locked(job_id):
        write(record)
        try:
            record["run_id"] = mlflow_rest.create_run(
                base, experiment, job_id, spec["tags"], int(time.time() * 1000)
            )
            write(record)
            materialise(spec["files"], folder_of_job / "project")
            home = folder_of_job / "home"
            home.mkdir(mode=0o700)
            os.chown(home, user.pw_uid, user.pw_gid)
            env_file = folder_of_job / "env"
            _write_env_file(env_file, spec["env_lines"], base, record["run_id"], experiment)
            _systemd_run(spec, record, env_file)
        except BaseException as exc:
            sentence = exc.sentence if isinstance(exc, AgentFailure) else repr(exc)
            record.update(state="failed", ended_at=now(), error=sentence)
            _mark_run(record)
            write(record)
            raise AgentFailure(KIND_START, f"Could not start job {job_id}: {sentence}") from None
        record["state"] = "running"
        write(record)
    subprocess.run(["rm", "-rf", "--", str(folder)], check=False)
    return {"started": True, "record": record, "blobs_taken": taken}


def _systemd_run(spec: dict[str, Any], record: dict[str, Any], env_file: Path) -> None:
    job_id = record["id"]
    folder = job_dir(job_id)
    agent_zip = Path(__file__).parents[1]  # .../agent/<hash>.zip/mlops_agent/this.py
    on_stop = (
        f'+/bin/sh -c "PYTHONPATH={agent_zip} exec {sys.executable} -m mlops_agent '
        f'train-finished {job_id} >/dev/null"'
    )
    properties = [
        f"User={TRAIN_USER}",
        f"Group={TRAIN_USER}",
        f"WorkingDirectory={folder}/project",
        f"EnvironmentFile={env_file}",
        # Stopped before MLflow at shutdown, so the run can still be marked.
        "After=mlflow.service",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        f"TimeoutStopSec={STOP_TIMEOUT_S}",
        f"ExecStopPost={on_stop}",
    ]
    if spec.get("memory_max"):
        properties.append(f"MemoryMax={spec['memory_max']}")
    environment = {
        "PATH": f"{ENVS_DIR}/{spec['env_key']}/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": f"{folder}/home",
        "PYTHONUNBUFFERED": "1",  # lines reach the journal as they are printed
        "PYTHONDONTWRITEBYTECODE": "1",  # the snapshot is read-only
        # MLflow asks GitPython about the working directory, a snapshot without git (and
        # the box has no git): quietly. train.run tags the run with the project's commit.
        "GIT_PYTHON_REFRESH": "quiet",
    }
    argv = [
        "systemd-run",
        f"--unit={record['unit']}",
        "--collect",
        "--quiet",
        f"--description=mlops-box training job {job_id}",
        *(f"--property={p}" for p in properties),
        *(f"--setenv={k}={v}" for k, v in environment.items()),
        "--",
        "/usr/bin/env",
        *spec["entry"],
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AgentFailure(KIND_START, f"systemd-run failed: {done.stderr.strip()}")


def _write_env_file(path: Path, user_lines: str, base: str, run_id: str, experiment: str) -> None:
    """The job's EnvironmentFile, root-only: the user's --env values, then MLflow's
    (last, so they win), with the admin's credentials when the server wants them."""
    lines = [f"# mlops-box training job; read by systemd only.\n{user_lines}".rstrip("\n")]
    lines += [
        f"MLFLOW_TRACKING_URI={base}",
        f"MLFLOW_RUN_ID={run_id}",
        f"MLFLOW_EXPERIMENT_ID={experiment}",
    ]
    raw = mlflow_rest.raw_env()
    if "MLFLOW_AUTH_ADMIN_PASSWORD" in raw:
        lines.append(f"MLFLOW_TRACKING_USERNAME={raw.get('MLFLOW_AUTH_ADMIN_USERNAME', '')}")
        lines.append(f"MLFLOW_TRACKING_PASSWORD={raw['MLFLOW_AUTH_ADMIN_PASSWORD']}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def finished(job_id: str) -> dict[str, Any]:
    """ExecStopPost: record how the unit ended (systemd says so in our environment)."""
    result = os.environ.get("SERVICE_RESULT", "")
    code = os.environ.get("EXIT_CODE", "")
    status = os.environ.get("EXIT_STATUS", "")
    with locked(job_id):
        record = read(job_id)
        state = final_state(record, result, code, status, _system_stopping())
        record.update(state=state, result=result, exit_code=exit_code(code, status))
        record["ended_at"] = now()
        _mark_run(record)
        write(record)
    return {"record": record}


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
            _mark_run(record)
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
    subprocess.run(["systemctl", "stop", record["unit"]], capture_output=True, check=False)
    return {"record": reconcile(job_id), "cancelled": True}


def note(job_id: str, registered: str) -> dict[str, Any]:
    return {"record": update(check_id(job_id), registered=registered)}


def _mark_run(record: dict[str, Any]) -> None:
    """End the job's MLflow run as its state says; on failure keep it for a later try."""
    status = RUN_STATUS.get(record["state"])
    if not record.get("run_id") or status is None:
        return
    try:
        mlflow_rest.end_run(record["tracking_uri"], record["run_id"], status, _ms(record))
    except AgentFailure as failure:
        record.update(run_marked=False, run_error=failure.sentence)
        return
    record.update(run_marked=True, run_status=status)
    record.pop("run_error", None)


def _ms(record: dict[str, Any]) -> int:
    ended = record.get("ended_at")
    return epoch(ended) * 1000 if ended else int(time.time() * 1000)


def _unit_alive(unit: str) -> bool:
    shown = subprocess.run(
        ["systemctl", "show", "-p", "ActiveState", "--value", unit],
        capture_output=True,
        text=True,
        check=False,
    )
    return shown.stdout.strip() in ALIVE_STATES


def _system_stopping() -> bool:
    state = subprocess.run(
        ["systemctl", "is-system-running"], capture_output=True, text=True, check=False
    )
    return state.stdout.strip() == "stopping"


def _spec(staging: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((staging / SPEC).read_text()))
    except (OSError, ValueError) as exc:
        raise AgentFailure(KIND_START, f"Cannot read the job's description: {exc}.") from None
