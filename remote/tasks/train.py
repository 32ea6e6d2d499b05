"""`fab train.*`: run a project on the box as a job, follow it, list and cancel jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from invoke import Collection
from invoke.exceptions import Exit

from remote.ssh.connection import box_connection
from remote.tasks._common import box_of, say, task, user_errors
from remote.train.jobs import DEFAULT_ENTRY, JobRequest, list_jobs, prepare
from remote.train.jobs import cancel as cancel_job
from remote.train.records import format_jobs
from remote.train.runner import run_job, show_logs


@task(
    iterable=["env"],
    help={
        "project": "The project's directory (what .gitignore and .mlopsignore exclude stays here).",
        "entry": f'The command to run in the project (default "{DEFAULT_ENTRY}").',
        "experiment": "MLflow experiment (default: the project directory's name).",
        "register_as": "After success, register the run's model as a new version of this "
        "name and move its alias `challenger` to it.",
        "logged_model": "With --register-as: which of the run's logged models (name or id), "
        "when it logged several.",
        "env": "KEY=VALUE for the job's environment (repeatable; kept out of argv and logs).",
        "memory_max": "The job's memory limit (systemd MemoryMax=, e.g. 8G): beyond it, the "
        "job is killed and reported as out of memory.",
        "detach": "Return once the job started, without following its log.",
        "upgrade": "Resolve requirements.txt again, to the newest versions it allows (by "
        "default a project gets the lock resolved for it the first time).",
    },
)
@user_errors
def run(
    c: Any,
    project: str,
    entry: str = DEFAULT_ENTRY,
    experiment: str = "",
    register_as: str = "",
    logged_model: str = "",
    env: Any = None,
    memory_max: str = "",
    detach: bool = False,
    upgrade: bool = False,
) -> None:
    """Run a project on the box as a job: ship it, build its env, start it, follow its log."""
    request = JobRequest(
        Path(project),
        entry,
        experiment,
        register_as,
        logged_model,
        tuple(env or ()),
        memory_max,
        upgrade,
    )
    job = prepare(request)
    files = job.snapshot.files
    say(f"Job {job.job_id}: {project} ({len(files)} files, {job.snapshot.size / 1e3:.1f} kB)")
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        code = run_job(conn, job, detach=detach, say=say)
    if code:
        raise Exit(code=code)


@task(help={"job": "The job's id (see `fab train.list`).", "follow": "Follow until it ends."})
@user_errors
def logs(c: Any, job: str, follow: bool = False) -> None:
    """Print a job's log (with --follow, until the job ends)."""
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        code = show_logs(conn, job, follow_it=follow, say=say)
    if code:
        raise Exit(code=code)


@task(name="list")
@user_errors
def list_(c: Any) -> None:
    """List the jobs: id, state, exit code, start, duration, MLflow run, registered version."""
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        say(format_jobs(list_jobs(conn)))


@task(help={"job": "The job's id (see `fab train.list`)."})
@user_errors
def cancel(c: Any, job: str) -> None:
    """Stop a running job; its MLflow run ends KILLED."""
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        record, was_running = cancel_job(conn, job)
    say(record.summary() if was_running else f"Nothing to cancel: {record.summary()}")


train = Collection("train", run, logs, list_, cancel)
