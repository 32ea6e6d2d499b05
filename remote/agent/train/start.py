"""Starting a training job on the box: from the staged job to a running transient unit.

Run as root by the system Python (never by a job's environment, whose packages are the
user's). `start` takes the uploaded blobs, builds the snapshot, creates the MLflow run
and starts the entry as a transient unit running as the unprivileged job user, whose
`ExecStopPost=+` is the agent's `train-finished` (jobs.finished). When the box
lacks blobs or the environment, it changes nothing and says what it lacks.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import time
from pathlib import Path
from typing import Any

from ..system import envfile, mlflow_api, systemd
from ..system.failure import AgentFailure
from ..system.layout import ENV_LOCK, MLFLOW_UNIT, TRAIN_ENVS_DIR, TRAIN_USER
from . import commands
from .jobs import mark_run
from .records import check_id, job_dir, locked, now, unit_name, write
from .store import ensure_layout, env_ready, materialise, missing, take_blobs

SPEC = "job.json"  # the job's description in the staging directory
BLOBS_TAR = "blobs.tar"  # the blobs the store lacked, when there were any
KIND_START = "start"
KIND_NO_MEMORY_LIMITS = "no-memory-limits"
STOP_TIMEOUT_S = 30  # a cancelled job gets this long after SIGTERM, then SIGKILL
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
    experiment = mlflow_api.experiment_id(base, spec["experiment"])
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
        "register_as": spec.get("register_as") or None,
        "logged_model": spec.get("logged_model") or None,
        "registered": None,
    }
    with locked(job_id):
        write(record)
        try:
            record["run_id"] = mlflow_api.create_run(
                base, experiment, job_id, spec["tags"], int(time.time() * 1000)
            )
            write(record)
            # The exact versions the job runs with, kept with its run: a rerun can rebuild them.
            lock = Path(TRAIN_ENVS_DIR, spec["env_key"], ENV_LOCK).read_bytes()
            mlflow_api.upload_to_run(base, record["run_id"], f"environment/{ENV_LOCK}", lock)
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
            mark_run(record)
            write(record)
            raise AgentFailure(KIND_START, f"Could not start job {job_id}: {sentence}") from None
        record["state"] = "running"
        write(record)
    subprocess.run(["rm", "-rf", "--", str(folder)], check=False)
    return {"started": True, "record": record, "blobs_taken": taken}


def _systemd_run(spec: dict[str, Any], record: dict[str, Any], env_file: Path) -> None:
    job_id = record["id"]
    folder = job_dir(job_id)
    finished = " ".join(systemd.agent_argv(commands.FINISHED, job_id))
    on_stop = f'+/bin/sh -c "PYTHONPATH={systemd.AGENT_PATH} exec {finished} >/dev/null"'
    properties = [
        f"User={TRAIN_USER}",
        f"Group={TRAIN_USER}",
        f"WorkingDirectory={folder}/project",
        f"EnvironmentFile={env_file}",
        # Stopped before MLflow at shutdown, so the run can still be marked.
        f"After={MLFLOW_UNIT}",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        f"TimeoutStopSec={STOP_TIMEOUT_S}",
        f"ExecStopPost={on_stop}",
    ]
    if spec.get("memory_max"):
        properties.append(f"MemoryMax={spec['memory_max']}")
    environment = {
        "PATH": f"{TRAIN_ENVS_DIR}/{spec['env_key']}/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": f"{folder}/home",
        "PYTHONUNBUFFERED": "1",  # lines reach the journal as they are printed
        "PYTHONDONTWRITEBYTECODE": "1",  # the snapshot is read-only
        # MLflow asks GitPython about the working directory, a snapshot without git (and
        # the box has no git): quietly. train.run tags the run with the project's commit.
        "GIT_PYTHON_REFRESH": "quiet",
    }
    done = systemd.run_unit(
        record["unit"],
        _job_argv(spec, record),
        properties=properties,
        setenv=environment,
        description=f"mlops-box training job {job_id}",
    )
    if done.returncode != 0:
        raise AgentFailure(KIND_START, f"systemd-run failed: {done.stderr.strip()}")


def _job_argv(spec: dict[str, Any], record: dict[str, Any]) -> list[str]:
    """The unit's command: execute.py in the job's environment, which runs the entry and
    then registers its model when asked. The agent's zip goes on sys.path by `-c`, not
    PYTHONPATH, so the entry's own environment does not get it."""
    python = f"{TRAIN_ENVS_DIR}/{spec['env_key']}/bin/python"
    bootstrap = (
        f"import sys; sys.path.insert(0, {systemd.AGENT_PATH!r}); "
        f"from {systemd.AGENT_PACKAGE}.train.execute import main; sys.exit(main(sys.argv[1:]))"
    )
    register = []
    if record.get("register_as"):
        register = ["--register-as", record["register_as"]]
        register += ["--logged-model", record["logged_model"]] if record.get("logged_model") else []
    return [python, "-c", bootstrap, *register, "--", "/usr/bin/env", *spec["entry"]]


def _write_env_file(path: Path, user_lines: str, base: str, run_id: str, experiment: str) -> None:
    """The job's EnvironmentFile, root-only: the user's --env values, then MLflow's
    (last, so they win)."""
    mlflow = {
        "MLFLOW_TRACKING_URI": base,
        "MLFLOW_RUN_ID": run_id,
        "MLFLOW_EXPERIMENT_ID": experiment,
    }
    text = envfile.env_file(
        mlflow, comment="mlops-box training job; read by systemd only.", lines=user_lines
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _spec(staging: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((staging / SPEC).read_text()))
    except (OSError, ValueError) as exc:
        raise AgentFailure(KIND_START, f"Cannot read the job's description: {exc}.") from None
