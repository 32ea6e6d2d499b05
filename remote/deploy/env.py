"""A model's Python environment on the box: resolved and built once per set of requirements.

The model's requirements.txt (MLflow writes it next to the model, pinned) is resolved on
the box into a lock, preferring the versions of the box's base lock (the full MLflow of
locks/box/base.txt) where they overlap, and kept: keyed by a hash of the box's Python
version and those requirements. The environment, /opt/mlops-box/envs/model-<lock key>,
holds exactly that lock (`system.venv`); a failed build is removed. MLflow's own
virtualenv manager is not used: it downloads a Python build.
"""

from __future__ import annotations

from collections.abc import Callable

from remote import contract
from remote.deploy.plan import check_requirements, env_key
from remote.errors import DeployError
from remote.locks import BASE, box_lock
from remote.system import venv
from remote.system.run import Connection, run


class EnvBuildError(DeployError):
    """The model's environment could not be built on the box."""


def box_python(conn: Connection) -> str:
    """The box's python3 version, such as 3.11.2."""
    return run(
        conn, "python3 --version", what="read the Python version", error=DeployError
    ).split()[-1]


def ensure_env(
    conn: Connection, requirements: list[str], *, say: Callable[[str], None] = print
) -> str:
    """The path of a ready virtualenv with `requirements`, built if the box has none."""
    requirements = check_requirements(requirements)
    key = env_key(requirements, box_python(conn))
    lock = venv.resolve(
        conn, "model", key, requirements, prefer=box_lock(BASE), say=say, error=EnvBuildError
    )
    path = f"{contract.MODEL_ENVS_DIR}/model-{lock.key}"
    if venv.ensure_env(conn, path, lock, say=say, error=EnvBuildError):
        say(f"Built the model's environment {path}")
    else:
        say(f"The model's environment is ready ({path})")
    return path
