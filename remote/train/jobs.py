"""Training jobs: a request checked on this machine, started on the box, and its records.

`prepare` checks everything it can without the box (the project, the entry's script,
the requirements, --env, --memory-max) and gives the job its id; `start` then needs one
SSH connection: MLflow's version (to pick the environment), the job's description staged
over SFTP, and one agent call that starts the job, or (the first time) says what the box
lacks: then the environment is built, only the missing blobs are uploaded and the call
is made again. The job records live on the box and are read (and reconciled with
systemd) through the agent.
"""

from __future__ import annotations

import getpass
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remote.agent.system.envfile import env_file_line
from remote.agent.train import commands as train_cmds
from remote.agent.train.records import JOB_ID, KIND_UNKNOWN_JOB
from remote.agent.train.start import KIND_NO_MEMORY_LIMITS
from remote.contract import MLFLOW_PORT
from remote.errors import MlopsBoxError
from remote.mlflow.status import require_running
from remote.model_names import check_model_name
from remote.system.agent import run_agent
from remote.system.run import Connection
from remote.train.environment import (
    LockedEnvironment,
    build,
    environment_for,
    lock,
    requirements_of,
)
from remote.train.project import (
    ProjectError,
    Snapshot,
    entry_script,
    git_state,
    parse_entry,
    scan,
)
from remote.train.records import JobRecord
from remote.train.upload import Uploaded, discard, stage, upload_blobs

DEFAULT_ENTRY = "python train.py"
TRACKING_URI = f"http://127.0.0.1:{MLFLOW_PORT}"  # the box's MLflow, as the job sees it
# Set by train.run itself: a job must join the run made for it.
RESERVED_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID")
_MEMORY = re.compile(r"[1-9][0-9]*[KMGT]?")
TAG_PREFIX = "mlops."


class TrainError(MlopsBoxError):
    """A training job could not be started, found or registered."""


class UnknownJob(TrainError):
    """No job has that id on the box."""


@dataclass(frozen=True)
class JobRequest:
    """What `fab train.run` was asked, as typed."""

    project: Path
    entry: str = DEFAULT_ENTRY
    experiment: str = ""
    register_as: str = ""
    logged_model: str = ""
    env: tuple[str, ...] = ()
    memory_max: str = ""
    upgrade: bool = False  # resolve the requirements again instead of reusing their lock


@dataclass(frozen=True)
class PreparedJob:
    """A request checked on this machine, with the job's id and what the box will get."""

    job_id: str
    request: JobRequest
    snapshot: Snapshot
    argv: list[str]
    requirements: list[str]
    env_lines: str
    experiment: str
    tags: dict[str, str]

    def spec(self, env: LockedEnvironment) -> dict[str, Any]:
        """The job's description for the agent (see agent/train/jobs.py)."""
        return {
            "id": self.job_id,
            "entry": self.argv,
            "entry_text": self.request.entry,
            "experiment": self.experiment,
            "tags": self.tags,
            "env_key": env.key,
            "env_lines": self.env_lines,
            "memory_max": self.request.memory_max or None,
            "register_as": self.request.register_as or None,
            "logged_model": self.request.logged_model or None,
            "project_hash": self.snapshot.content_hash,
            "tracking_uri": TRACKING_URI,
            "files": [[f.path, f.key] for f in self.snapshot.files],
        }


@dataclass(frozen=True)
class Started:
    record: JobRecord
    environment: LockedEnvironment
    env_built: bool
    uploaded: Uploaded


def prepare(request: JobRequest) -> PreparedJob:
    """Check the request without the box; every refusal is one line, before any change."""
    snapshot = scan(request.project)
    argv = parse_entry(request.entry)
    script = entry_script(argv)
    if script is not None and not snapshot.has(script):
        raise ProjectError(
            f"The entry runs {script}, which is not in {request.project} (or is excluded by "
            ".gitignore/.mlopsignore): check --entry and --project."
        )
    experiment = request.experiment or request.project.resolve().name
    if request.memory_max and not _MEMORY.fullmatch(request.memory_max):
        raise ProjectError(
            f"--memory-max is {request.memory_max!r}: give bytes with K, M, G or T, e.g. 8G."
        )
    if request.register_as:
        check_model_name(request.register_as, "--register-as")
    job_id = new_job_id()
    return PreparedJob(
        job_id=job_id,
        request=request,
        snapshot=snapshot,
        argv=argv,
        requirements=requirements_of(snapshot),
        env_lines=env_lines(request.env),
        experiment=experiment,
        tags=run_tags(job_id, snapshot, request.entry),
    )


def new_job_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"


def env_lines(pairs: tuple[str, ...]) -> str:
    """The --env values as EnvironmentFile lines (quoted so systemd reads them back exactly)."""
    lines = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ProjectError(f"--env {key!r} has no value: give KEY=VALUE.")
        if key in RESERVED_ENV:
            raise ProjectError(f"--env {key} is set by train.run itself: leave it out.")
        try:
            lines.append(env_file_line(key, value))
        except ValueError as exc:
            raise ProjectError(f"--env {key}: {exc}.") from None
    return "".join(f"{line}\n" for line in lines)


def run_tags(job_id: str, snapshot: Snapshot, entry: str) -> dict[str, str]:
    tags = {
        f"{TAG_PREFIX}job_id": job_id,
        f"{TAG_PREFIX}project_hash": snapshot.content_hash,
        f"{TAG_PREFIX}entry": entry,
        "mlflow.source.name": entry,
        "mlflow.source.type": "JOB",
        "mlflow.user": getpass.getuser(),
    }
    git = git_state(snapshot.root)
    if git is not None:
        commit, dirty = git
        tags[f"{TAG_PREFIX}git_commit"] = commit
        tags[f"{TAG_PREFIX}git_dirty"] = "true" if dirty else "false"
        tags["mlflow.source.git.commit"] = commit
    return tags


def start(conn: Connection, job: PreparedJob, *, say: Callable[[str], None]) -> Started:
    """Ship the project, build the environment if missing, create the run, start the unit."""
    state = require_running(conn, needed_by="a training job logs to it", error=TrainError)
    wanted = environment_for(job.requirements, str(state["version"]))
    env = lock(conn, wanted, upgrade=job.request.upgrade, say=say)
    staging = stage(conn, job.job_id, job.spec(env))
    try:
        # Optimistic: with the environment built and every blob on the box (a rerun), this
        # one call starts the job; otherwise it says what is lacking and changes nothing.
        answer = _agent(conn, train_cmds.START, staging)
        built, uploaded = False, Uploaded(0, 0)
        if not answer["started"]:
            if answer["env_ready"]:
                say(f"Environment {env.key}: ready")
            else:
                build(conn, env, say=say)
                built = True
            uploaded = upload_blobs(conn, staging, job.snapshot, list(answer["missing"]))
            answer = _agent(conn, train_cmds.START, staging)
            if not answer["started"]:
                raise TrainError("The box still lacks part of the job after the upload: run again.")
        else:
            say(f"Environment {env.key}: ready")
        say(f"Uploaded {uploaded.blobs} new file(s), {uploaded.bytes} bytes")
    except BaseException:
        discard(conn, staging)
        raise
    return Started(JobRecord.of(answer["record"]), env, built, uploaded)


def show(conn: Connection, job_id: str) -> JobRecord:
    return JobRecord.of(_agent(conn, train_cmds.SHOW, _checked(job_id))["record"])


def list_jobs(conn: Connection) -> list[JobRecord]:
    return [JobRecord.of(found) for found in _agent(conn, train_cmds.LIST)["jobs"]]


def cancel(conn: Connection, job_id: str) -> tuple[JobRecord, bool]:
    """Stop the job; (its record, whether it was still running)."""
    answer = _agent(conn, train_cmds.CANCEL, _checked(job_id))
    return JobRecord.of(answer["record"]), bool(answer["cancelled"])


def _checked(job_id: str) -> str:
    if not JOB_ID.fullmatch(job_id):
        raise UnknownJob(f"{job_id!r} is not a job id: see `fab train.list` for the ids.")
    return job_id


def _agent(conn: Connection, command: str, *args: str) -> dict[str, Any]:
    errors = {KIND_UNKNOWN_JOB: UnknownJob, KIND_NO_MEMORY_LIMITS: TrainError}
    return run_agent(conn, command, *args, errors=errors, error=TrainError)
