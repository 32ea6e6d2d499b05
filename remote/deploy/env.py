"""A model's Python environment on the box: built once per set of requirements.

/opt/mlops-box/envs/<key>, the key a hash of the box's Python version and the model's
requirements.txt (MLflow writes it next to the model), filled by `pip_install` through the
shared wheelhouse, and marked ready only once pip succeeded; a failed build is removed.
MLflow's own virtualenv manager is not used: it downloads a Python build.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from remote import contract
from remote.deploy.plan import check_requirements, env_key
from remote.errors import DeployError
from remote.system import files
from remote.system.files import RemoteFile
from remote.system.run import Connection, check, run, sh, sudo
from remote.system.venv import pip_install

READY_MARKER = ".mlops-box-ready"


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
    venv = f"{contract.ENVS_DIR}/{env_key(requirements, box_python(conn))}"
    marker = f"{venv}/{READY_MARKER}"
    if check(conn, f"test -f {shlex.quote(marker)}").ok:
        say(f"The model's environment is ready ({venv})")
        return venv
    say(f"Building the model's environment in {venv}: {' '.join(requirements)}")
    quoted = shlex.quote(venv)
    run(
        conn,
        sudo(sh(f"rm -rf {quoted} && python3 -m venv {quoted}")),
        what="make a virtualenv",
        error=EnvBuildError,
    )
    try:
        pip_install(conn, venv, requirements, say=say, error=EnvBuildError)
    except EnvBuildError:
        check(conn, sudo(f"rm -rf {quoted}"))
        raise
    files.write(conn, RemoteFile(marker, "\n".join(requirements).encode() + b"\n", 0o644))
    return venv
