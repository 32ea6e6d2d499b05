"""Running the real `fab` CLI in a subprocess against a moto server: the environment,
the seeded box, and a copy of the project for tests that need their own fabric.yaml,
Pulumi stack file or template. conftest.py makes the fixtures available to tests/remote.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FAB = Path(sys.executable).parent / "fab"
REGION = "eu-west-1"
STACK = "ci"
NAME = "mlops-ci"
FAB_TIMEOUT_S = 120


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def fab_ssh_dir(home: Path) -> Path:
    return home / "box-ssh"


@pytest.fixture
def fab_env(moto_server: str, home: Path, fab_ssh_dir: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "FABRIC_", "INVOKE_"))
    }
    env.update(
        HOME=str(home),
        AWS_ENDPOINT_URL=moto_server,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(home / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-aws-credentials"),
        FABRIC_BOX_PROVIDER="aws",
        FABRIC_BOX_STACK=STACK,
        FABRIC_BOX_NAME=NAME,
        # Both set explicitly: `~` means the password database's home, not $HOME.
        FABRIC_BOX_SSH_DIR=str(fab_ssh_dir),
        FABRIC_BOX_KEY=str(home / "keys" / NAME),
    )
    return env


@pytest.fixture
def server_ec2(moto_server: str) -> Any:
    """A client of the moto server, to seed and inspect what `fab` acts on."""
    return boto3.client(
        "ec2",
        endpoint_url=moto_server,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def box(server_ec2: Any, seed: Callable[..., Any]) -> Any:
    return seed(server_ec2, name=NAME, stack=STACK)


def fab(
    env: dict[str, str], *args: str, root: Path = REPO_ROOT
) -> subprocess.CompletedProcess[str]:
    """`fab -r <root> <args>`: the tasks of the project at `root` (default: this one)."""
    return subprocess.run(
        [str(FAB), "-r", str(root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=FAB_TIMEOUT_S,
        check=False,
    )


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused `fab` printed (exit 1, no traceback, nothing else)."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == "", result.stdout
    return lines[0]


def copy_project(dest: Path) -> Path:
    """A copy of the project's fab side at `dest`: `fab -r dest` imports remote/ from it,
    so its PROJECT_DIR (fabric.yaml, Pulumi files, sshconfig.template) is `dest`."""
    dest.mkdir()
    for name in ("fabfile.py", "fabric.yaml", "Pulumi.yaml", "sshconfig.template", "uv.lock"):
        shutil.copy(REPO_ROOT / name, dest / name)
    for folder in ("remote", "locks"):
        shutil.copytree(
            REPO_ROOT / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    return dest


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A private copy of the project to run `fab -r` on (see `copy_project`)."""
    return copy_project(tmp_path / "project-copy")


def tree(root: Path) -> dict[str, tuple[int, int, int, bytes | str | None]]:
    """Every path under `root` with its mode, owner, group and bytes (or link target)."""
    found: dict[str, tuple[int, int, int, bytes | str | None]] = {}
    if not root.exists():
        return found
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        body: bytes | str | None = None
        if path.is_symlink():
            body = os.readlink(path)
        elif path.is_file():
            body = path.read_bytes()
        found[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, body)
    return found
