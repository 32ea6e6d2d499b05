"""Every environment on the real local box holds exactly its lock, and a failed build
leaves nothing behind.

Whatever the modules before this one built on the session's box (the MLflow server, job
and model environments) is checked too; run alone, it builds the server's, the
monitor's and one model environment itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from remote.contract import AGENT_DIR, TRAIN_ENVS_DIR
from remote.contract import MODEL_ENVS_DIR as ENVS_DIR
from remote.deploy.env import EnvBuildError, ensure_env
from remote.locks import BASE, MONITOR, Lock, box_lock, default_mlflow_version
from remote.mlflow.spec import VENV_ROOT
from remote.monitor.env import ENV_PATH, ensure_monitor_env
from remote.providers.local.provider import LocalProvider
from remote.settings import BoxSettings
from remote.system import venv
from remote.system.agent import bundle as agent_bundle
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


def test_box_gc_frees_what_nothing_uses_and_keeps_what_runs(box: MlflowBox) -> None:
    # Stale things as a month of use leaves them: an old model env, an old MLflow venv,
    # a training env no job used lately, an old agent bundle; all changed hours ago.
    stale = [
        f"{ENVS_DIR}/model-0000000000000000",
        f"{VENV_ROOT}/3.0.0-0000000000000000",
        f"{TRAIN_ENVS_DIR}/0000000000000000",
        f"{AGENT_DIR}/0000000000000000.zip",
    ]
    box.sh(
        f"sudo sh -c 'install -d -m 755 {AGENT_DIR}; "
        + "; ".join(
            f"mkdir -p {path.removesuffix('.zip')} && head -c 1048576 /dev/zero "
            f"> {path.removesuffix('.zip')}/blob"
            if not path.endswith(".zip")
            else f"head -c 1024 /dev/zero > {path}"
            for path in stale
        )
        + '; touch -h -d "3 hours ago" '
        + " ".join(stale)
        + "'"
    )
    in_use = [ENV_PATH, *(e for e in ready_envs(box) if e.startswith(VENV_ROOT))]
    bundles = box.sh(f"ls {AGENT_DIR}").split()

    listed = box.fab("box.gc", "--dry-run")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert listed.stdout.startswith(f"Would remove {len(stale)} items"), listed.stdout
    assert all(path in listed.stdout for path in stale)
    assert box.sh(f"sudo ls -d {' '.join(stale)} | wc -l").strip() == str(len(stale))

    done = box.fab("box.gc")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"Removed {len(stale)} items"), done.stdout
    assert box.sh(f"sudo ls -d {' '.join(stale)} 2>/dev/null | wc -l").strip() == "0"
    for env in in_use:  # the server's and the monitor's environments stay
        assert box.sh(f"sudo test -e {env}/{venv.READY_MARKER} && echo yes").strip() == "yes"
    # the bundle that just ran stays, and so does any other a unit names
    assert box.sh(f"test -e {agent_bundle()[0]} && echo yes").strip() == "yes"
    assert set(bundles) - {"0000000000000000.zip"} <= set(box.sh(f"ls {AGENT_DIR}").split())
    assert box.sh("curl -fsS -m 5 http://127.0.0.1:5000/health").strip() == "OK"
    again = box.fab("box.gc")
    assert again.stdout.startswith("Nothing to remove"), again.stdout
