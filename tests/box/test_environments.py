"""Every environment on the real local box holds exactly its lock, and a failed build
leaves nothing behind.

Whatever the modules before this one built on the session's box (the MLflow server, job
and model environments) is checked too; run alone, it builds the server's, the
monitor's and one model environment itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from remote.contract import MODEL_ENVS_DIR as ENVS_DIR
from remote.contract import TRAIN_ENVS_DIR
from remote.deploy.env import EnvBuildError, ensure_env
from remote.locks import BASE, MONITOR, Lock, box_lock, default_mlflow_version
from remote.mlflow.spec import VENV_ROOT
from remote.monitor.env import ENV_PATH, ensure_monitor_env
from remote.providers.local.provider import LocalProvider
from remote.settings import BoxSettings
from remote.system import venv
from tests.box.harness.mlflow_box import MlflowBox, open_mlflow_box

pytestmark = pytest.mark.box


@pytest.fixture(scope="module")
def box(local_settings: BoxSettings, local_box: LocalProvider) -> Iterator[MlflowBox]:
    box = open_mlflow_box(local_settings, local_box)
    try:
        yield box
    finally:
        box.conn.close()


def ready_envs(box: MlflowBox) -> list[str]:
    """Every finished environment on the box: the ones with a ready marker."""
    found = box.sh(
        f"sudo find {VENV_ROOT} {ENVS_DIR} {TRAIN_ENVS_DIR} -mindepth 2 -maxdepth 2 "
        f"-name {venv.READY_MARKER} -printf '%h\\n' 2>/dev/null || true"
    )
    return sorted(found.split())


def test_every_env_holds_exactly_the_lock_it_was_built_from(box: MlflowBox) -> None:
    said: list[str] = []
    ensure_monitor_env(box.conn, said.append)
    # A model environment whose requirements are all in the base lock: resolved there.
    model_env = ensure_env(box.conn, [f"mlflow=={default_mlflow_version()}"], say=said.append)
    envs = ready_envs(box)
    assert ENV_PATH in envs and model_env in envs
    for env in envs:
        lock = Lock(box.sh(f"sudo cat {env}/{venv.LOCK_IN_ENV}"))
        assert box.sh(f"sudo cat {env}/{venv.READY_MARKER}").strip() == lock.key, env
        assert venv.frozen(box.conn, env) == lock.pins(), f"{env} differs from its lock"
    assert venv.frozen(box.conn, ENV_PATH) == box_lock(MONITOR).pins()
    assert venv.frozen(box.conn, model_env) == box_lock(BASE).pins()


def test_a_second_ensure_of_a_ready_env_installs_nothing(box: MlflowBox) -> None:
    said: list[str] = []
    assert not ensure_monitor_env(box.conn, said.append)
    assert said == []


def test_a_build_that_fails_leaves_nothing_and_no_other_env_changes(box: MlflowBox) -> None:
    before = ready_envs(box)
    base = box_lock(BASE).text
    # The lock of a real package whose hash is wrong: uv refuses to install it.
    bad = Lock("six==1.16.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    path = f"{ENVS_DIR}/test-bad-{bad.key}"
    with pytest.raises(venv.EnvError, match="uv could not install the lock"):
        venv.ensure_env(box.conn, path, bad, say=lambda _: None)
    assert box.sh(f"ls -d {path} {path}.building-* 2>/dev/null || true").strip() == ""
    assert ready_envs(box) == before
    assert box_lock(BASE).text == base


def test_requirements_that_cannot_be_had_are_refused_before_any_env(box: MlflowBox) -> None:
    before = ready_envs(box)
    with pytest.raises(EnvBuildError, match="not found in the package registry"):
        ensure_env(box.conn, ["mlops-box-no-such-package==0.0.1"], say=lambda _: None)
    assert ready_envs(box) == before
