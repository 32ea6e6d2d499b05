"""What every environment installs: hash-pinned locks kept in the repository.

- `uv.lock` is the controller's (`.venv`): `scripts/setup` installs exactly it.
- `locks/box/<name>.txt` are the box's, resolved for Debian bookworm's Python 3.11 by
  `scripts/lock` (`uv pip compile --universal --generate-hashes`): the MLflow server, the
  monitor, and `base`, the full MLflow that every training and model environment is
  resolved against (its versions are preferred where they overlap).

Standard library only: `scripts/setup` runs this before `.venv` exists
(`python3 -m remote.locks uv-requirement`), and so does `scripts/lock`.
"""

from __future__ import annotations

import hashlib
import re
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTROLLER_LOCK = REPO_ROOT / "uv.lock"
BOX_LOCKS_DIR = REPO_ROOT / "locks" / "box"
# The box's environments that come from a lock in the repository.
MLFLOW_SERVER = "mlflow-server"
MONITOR = "monitor"
BASE = "base"
# The controller's MLflow client: the box's default server version is the same release.
CONTROLLER_MLFLOW = "mlflow-skinny"
# `name==version` at the start of a requirement line of a lock.
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", re.M)


class LockError(Exception):
    """A lock file is missing or unreadable: `scripts/lock` makes them."""


@dataclass(frozen=True)
class Lock:
    """A hash-pinned requirements file, as `uv pip compile --generate-hashes` writes it."""

    text: str

    @property
    def key(self) -> str:
        """Names the environment built from it: same lock, same environment."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def pins(self) -> dict[str, str]:
        """Normalised package name -> version, for every package the lock installs."""
        return {normalise(name): version for name, version in _PIN.findall(self.text)}

    def version_of(self, package: str) -> str:
        try:
            return self.pins()[normalise(package)]
        except KeyError:
            raise LockError(f"The lock pins no {package}.") from None


def normalise(name: str) -> str:
    """A package name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def box_lock(name: str) -> Lock:
    """The lock of the box environment `name` (MLFLOW_SERVER, MONITOR or BASE)."""
    path = BOX_LOCKS_DIR / f"{name}.txt"
    try:
        return Lock(path.read_text())
    except FileNotFoundError:
        raise LockError(f"{path} is missing: run scripts/lock.") from None


@cache
def _controller_packages() -> dict[str, dict[str, object]]:
    try:
        data = tomllib.loads(CONTROLLER_LOCK.read_text())
    except (FileNotFoundError, tomllib.TOMLDecodeError) as exc:
        raise LockError(f"Cannot read {CONTROLLER_LOCK} ({exc}): run scripts/lock.") from None
    return {normalise(p["name"]): p for p in data.get("package", [])}


def controller_version(package: str) -> str:
    """The version of `package` that uv.lock gives the controller."""
    try:
        return str(_controller_packages()[normalise(package)]["version"])
    except KeyError:
        raise LockError(f"uv.lock has no {package}: run scripts/lock.") from None


def default_mlflow_version() -> str:
    """The MLflow release the box's server runs unless told otherwise: the controller's."""
    return controller_version(CONTROLLER_MLFLOW)


def uv_requirement() -> str:
    """uv, pinned with its wheels' hashes from uv.lock: how pip installs the same uv
    before uv itself takes over (on this machine and on the box)."""
    package = _controller_packages().get("uv")
    if package is None:
        raise LockError("uv.lock has no uv: add it to the dev dependencies, run scripts/lock.")
    hashes = [str(wheel["hash"]) for wheel in package.get("wheels", [])]  # type: ignore[attr-defined]
    return " ".join([f"uv=={package['version']}", *(f"--hash={h}" for h in hashes)])


_COMMANDS = {"uv-requirement": uv_requirement, "mlflow-version": default_mlflow_version}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in _COMMANDS:
        sys.exit(f"usage: python3 -m remote.locks {{{'|'.join(_COMMANDS)}}}")
    try:
        print(_COMMANDS[sys.argv[1]]())
    except LockError as exc:
        sys.exit(str(exc))
