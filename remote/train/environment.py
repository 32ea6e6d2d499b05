"""A job's Python environment on the box: one lock per requirements, one venv per lock.

The project's requirements.txt is normalised (comments and blank lines dropped, sorted,
de-duplicated) and hashed together with the MLflow server's version. When the
requirements name no MLflow, the full `mlflow` package of the server's version is added,
so a script that lists only scikit-learn can still log a model (the sklearn flavour needs
pandas; MLflow 3 saves with skops, which only the full package brings).

Those requirements are resolved once on the box into a lock, kept there under their hash
(the same project gets the same versions next month; `fab train.run --upgrade` resolves
again on purpose) and preferring the versions of the box's base lock where they overlap,
so the job's MLflow, numpy and pandas are the ones other environments already hold. The
environment /var/lib/mlops-box/train/envs/<lock key> holds exactly that lock
(`system.venv`: built beside, renamed into place; a failure removes only its own build),
and the job's run gets the lock as its artifact environment/requirements.lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from remote.contract import TRAIN_ENVS_DIR as ENVS_DIR
from remote.errors import MlopsBoxError
from remote.locks import BASE, Lock, box_lock
from remote.system import venv
from remote.system.run import Connection
from remote.train.project import ProjectError, Snapshot

REQUIREMENTS = "requirements.txt"
MLFLOW_NAMES = frozenset({"mlflow", "mlflow-skinny"})


class JobEnvironmentError(MlopsBoxError):
    """A job's environment could not be built on the box."""


@dataclass(frozen=True)
class JobEnvironment:
    """What a job asks for: its requirements, MLflow included, and their key."""

    requirements: tuple[str, ...]
    key: str


@dataclass(frozen=True)
class LockedEnvironment:
    """The environment a job runs in: the lock its requirements resolved to on the box."""

    lock: Lock

    @property
    def key(self) -> str:
        return self.lock.key

    @property
    def path(self) -> str:
        return f"{ENVS_DIR}/{self.key}"


def python_of(env_key: str) -> str:
    """The Python of the job environment `env_key` (a job record's)."""
    return f"{ENVS_DIR}/{env_key}/bin/python"


def requirements_of(snapshot: Snapshot) -> list[str]:
    """The project's requirements, normalised; [] without a requirements.txt."""
    if not snapshot.has(REQUIREMENTS):
        return []
    text = (snapshot.root / REQUIREMENTS).read_text()
    wanted = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        where = f"{REQUIREMENTS} line {number} ({line!r})"
        if line.startswith("-"):
            raise ProjectError(
                f"{where}: pip options (-r, -e, --index-url ...) are not supported here; "
                "list the packages themselves."
            )
        try:
            Requirement(line)
        except InvalidRequirement as exc:
            raise ProjectError(f"{where} is not a requirement: {exc}.") from None
        wanted.append(line)
    return sorted(set(wanted))


def environment_for(requirements: list[str], mlflow_version: str) -> JobEnvironment:
    """The environment for these requirements on a box whose MLflow server is that version."""
    requirements = sorted(set(requirements))
    named = {canonicalize_name(Requirement(r).name) for r in requirements}
    full = list(requirements)
    if not named & MLFLOW_NAMES:
        full.append(f"mlflow=={mlflow_version}")
    listing = "\n".join([*requirements, f"mlflow-server=={mlflow_version}"])
    return JobEnvironment(tuple(full), hashlib.sha256(listing.encode()).hexdigest()[:16])


def lock(
    conn: Connection, env: JobEnvironment, *, upgrade: bool, say: Callable[[str], None]
) -> LockedEnvironment:
    """The lock kept on the box for these requirements (resolved now if there is none, or
    if `upgrade`); nothing of a job exists yet when it cannot be had."""
    try:
        found = venv.resolve(
            conn,
            "train",
            env.key,
            env.requirements,
            prefer=box_lock(BASE),
            upgrade=upgrade,
            say=say,
            error=JobEnvironmentError,
        )
    except JobEnvironmentError as exc:
        raise JobEnvironmentError(
            f"{exc} Check the project's requirements.txt; no job was started."
        ) from None
    return LockedEnvironment(found)


def build(conn: Connection, env: LockedEnvironment, *, say: Callable[[str], None]) -> None:
    """Make the environment; on failure nothing of it is left on the box."""
    try:
        venv.ensure_env(conn, env.path, env.lock, say=say, error=JobEnvironmentError)
    except JobEnvironmentError as exc:
        raise JobEnvironmentError(
            f"{exc} No job was started; the box's other environments are as they were."
        ) from None
