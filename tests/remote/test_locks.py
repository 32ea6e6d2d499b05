"""Every environment installs what a lock in the repository says: the locks agree with what
asks for them, pin every package with hashes, and this machine's .venv holds uv.lock.

These run `uv` offline against the repository's files: no box, no mocks.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
from pathlib import Path

import pytest

from remote import locks
from remote.mlflow.spec import SERVER_EXTRAS, default_version

UV = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "uv"
BOX_LOCKS = (locks.MLFLOW_SERVER, locks.MONITOR, locks.BASE)


def uv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(UV), *args, "--offline", "--project", str(locks.REPO_ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_uv_lock_matches_pyproject() -> None:
    checked = uv("lock", "--check")
    assert checked.returncode == 0, f"uv.lock is out of date: run scripts/lock\n{checked.stderr}"


def test_this_machines_venv_holds_exactly_uv_lock() -> None:
    checked = uv("sync", "--locked", "--extra", "dev", "--check")
    assert checked.returncode == 0, f".venv differs from uv.lock: run scripts/setup\n{checked}"


@pytest.mark.parametrize("name", BOX_LOCKS)
def test_each_box_lock_pins_every_package_with_hashes(name: str) -> None:
    text = locks.box_lock(name).text
    requirements = re.split(r"\n(?=\S)", text.strip())
    assert len(requirements) > 3
    for requirement in requirements:
        assert not requirement.startswith("-"), f"{name}: an option in a box lock: {requirement}"
        head = requirement.splitlines()[0]
        assert re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==\S+ \\$", head), f"{name}: {head}"
        assert "--hash=sha256:" in requirement, f"{name}: {head} has no hash"
    assert len(locks.box_lock(name).pins()) == len(requirements)


def test_the_boxs_mlflow_is_the_controllers_locked_client() -> None:
    client = locks.default_mlflow_version()
    assert client == importlib.metadata.version("mlflow-skinny")
    assert default_version() == client
    for name in (locks.MLFLOW_SERVER, locks.BASE):
        assert locks.box_lock(name).version_of("mlflow") == client


def test_the_box_locks_hold_what_their_environments_need() -> None:
    server = locks.box_lock(locks.MLFLOW_SERVER).pins()
    assert all(locks.normalise(extra) in server for extra in SERVER_EXTRAS)
    monitor = locks.box_lock(locks.MONITOR).pins()
    assert {"numpy", "scipy", "pandas", "matplotlib", "pyyaml"} <= set(monitor)
    # Training and model envs prefer base's versions: it must hold the full MLflow.
    base = locks.box_lock(locks.BASE).pins()
    assert {"mlflow", "scikit-learn", "pandas", "skops"} <= set(base)


def test_uv_itself_is_pinned_with_hashes_from_uv_lock() -> None:
    requirement = locks.uv_requirement()
    version, *hashes = requirement.split()
    assert version == f"uv=={locks.controller_version('uv')}"
    assert version == f"uv=={importlib.metadata.version('uv')}"
    assert hashes and all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", h) for h in hashes)


def test_a_lock_is_named_by_its_content() -> None:
    one, other = locks.Lock("a==1 \\\n    --hash=sha256:00\n"), locks.Lock("a==2\n")
    assert one.key != other.key and len(one.key) == 16
    assert one.pins() == {"a": "1"} and other.version_of("A") == "2"
    with pytest.raises(locks.LockError, match="pins no b"):
        one.version_of("b")
