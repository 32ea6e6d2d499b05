"""A job's Python environment on the box: one virtualenv per requirements, built once.

The project's requirements.txt is normalised (comments and blank lines dropped, sorted,
de-duplicated) and hashed together with the MLflow server's version: the environment is
/var/lib/mlops-box/train/envs/<hash>. When the requirements name no MLflow, the full
`mlflow` package of the server's version is added, so a script that lists only
scikit-learn can still log a model (the sklearn flavour needs pandas; MLflow 3 saves with
skops, which only the full package brings).

An environment is built by pip (through the box's wheelhouse, `system.venv`) into a
directory of its own, then renamed into place with its ready marker; a failing install
removes only that directory, so environments that exist are never touched.
"""

from __future__ import annotations

import hashlib
import secrets
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from remote.agent.train.records import ENV_READY
from remote.contract import TRAIN_ENVS_DIR as ENVS_DIR
from remote.errors import MlopsBoxError
from remote.system.run import Connection, check, run, sh, sudo
from remote.system.venv import pip_install
from remote.train.project import ProjectError, Snapshot

REQUIREMENTS = "requirements.txt"
MLFLOW_NAMES = frozenset({"mlflow", "mlflow-skinny"})


class JobEnvironmentError(MlopsBoxError):
    """A job's environment could not be built on the box."""


@dataclass(frozen=True)
class JobEnvironment:
    requirements: tuple[str, ...]  # what pip installs, MLflow included
    key: str

    @property
    def path(self) -> str:
        return f"{ENVS_DIR}/{self.key}"

    @property
    def python(self) -> str:
        return f"{self.path}/bin/python"


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


def build(conn: Connection, env: JobEnvironment, *, say: Callable[[str], None]) -> None:
    """Make the environment with pip; on failure nothing of it is left on the box."""
    building = f"{ENVS_DIR}/.building-{env.key}-{secrets.token_hex(4)}"
    say(f"Building the job's environment {env.key}: {' '.join(env.requirements)}")
    try:
        _root(conn, f"install -d -m 755 {ENVS_DIR} && python3 -m venv {building}", "make a venv")
        pip_install(conn, building, env.requirements, say=say, error=JobEnvironmentError)
        # A venv's scripts name its own path: they are pointed at the final one before the
        # rename. A concurrent build of the same key may have won: then ours is dropped.
        script = (
            f"grep -rlIF -- {building} {building}/bin {building}/pyvenv.cfg | xargs -r sed -i "
            f"'s|{building}|{env.path}|g' && echo {shlex.quote(' '.join(env.requirements))} "
            f"> {building}/{ENV_READY} && "
            f"{{ mv -T {building} {env.path} 2>/dev/null || rm -rf {building}; }}"
        )
        _root(conn, script, "finish the venv")
    except JobEnvironmentError as exc:
        check(conn, sudo(f"rm -rf {building}"))
        raise JobEnvironmentError(
            f"{exc} No job was started; the box's other environments are as they were."
        ) from None
    except BaseException:
        check(conn, sudo(f"rm -rf {building}"))
        raise


def _root(conn: Connection, script: str, what: str) -> None:
    run(conn, sudo(sh(script)), what=what, error=JobEnvironmentError)
