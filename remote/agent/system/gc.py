"""`box-gc`: remove what no deploy, job or running service on the box needs any more.

Only the project's own folders are looked at, and only their direct entries:

  MODEL_ENVS_DIR/model-*   a model's environment: kept while a slot links to it or the
                           deploy state names it (live, the rollback target, a canary or
                           shadow candidate)
  MODEL_ENVS_DIR/monitor-* the monitor's environment: kept when the controller names it
  MODELS_DIR/*             a model's files: kept on the same rule as its environment
  TRAIN_ENVS_DIR/*         a training environment: kept while a job using it runs, or one
                           started within `train_days` days (the next run reuses it)
  MLFLOW_VENVS_DIR/*       MLflow's server environments: kept when the controller names
                           it (the one the server runs from)
  AGENT_DIR/*.zip          the agent's bundles: kept when it is this one, or a unit file
                           names it (the idle check's, the drift check's, a running unit's)

Anything changed within the last hour is kept whatever the rule says (a deploy or a job
may be making it right now), and nothing is removed while a deploy runs. Everything
removed can be made again: an environment from its kept lock, a model from MLflow.

`fab box.gc` runs `collect`. `after` runs by itself whenever a deploy or a training job
ends (what they leave behind is what fills the disk): the same rules, without the MLflow
and monitor environments, since only the controller knows which of those are in use.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ..train.records import epoch
from . import layout
from .failure import AgentFailure
from .systemd import AGENT_PATH

KIND_BUSY = "busy"
RECENT_S = 3600.0
DAY_S = 86400.0
UNIT_DIRS = (layout.SYSTEMD_UNIT_DIR, "/run/systemd/transient", "/run/systemd/system")
ACTIVE_JOB_STATES = ("starting", "running")


def collect(
    keep: Sequence[str] = (),
    train_days: float = 7.0,
    dry_run: bool = False,
    *,
    now: float | None = None,
    serving_and_training_only: bool = False,
) -> dict[str, Any]:
    """Remove (or with `dry_run` only list) what nothing needs; what and how much."""
    now = time.time() if now is None else now
    state = _deploy_state()
    if state.get("transition"):
        raise AgentFailure(
            KIND_BUSY,
            "A deploy runs on the box: run `fab box.gc` again once `fab deploy.status` says "
            "it ended.",
        )
    kept = {os.path.realpath(path) for path in keep}
    kept |= _serving(state)
    kept |= _training(now - train_days * DAY_S)
    kept |= _bundles_named_by_units()
    kept.add(os.path.realpath(AGENT_PATH))
    candidates = [
        *glob.glob(os.path.join(layout.MODEL_ENVS_DIR, "model-*")),
        *_entries(layout.MODELS_DIR),
        *_entries(layout.TRAIN_ENVS_DIR),
        *glob.glob(os.path.join(layout.AGENT_DIR, "*.zip")),
    ]
    if not serving_and_training_only:
        candidates += glob.glob(os.path.join(layout.MODEL_ENVS_DIR, "monitor-*"))
        candidates += _entries(layout.MLFLOW_VENVS_DIR)
    removed, freed = [], 0
    for path in sorted(candidates):
        if os.path.realpath(path) in kept or _changed_since(path, now - RECENT_S):
            continue
        size = _size(path)
        if not dry_run:
            _remove(path)
        removed.append({"path": path, "bytes": size})
        freed += size
    return {"removed": removed, "freed_bytes": freed, "dry_run": dry_run}


def after(what: str) -> None:
    """The automatic pass when `what` (a deploy, a training job) ended; one line for its
    journal. It never raises: a clean-up that failed must not fail what it follows."""
    try:
        answer = collect(serving_and_training_only=True)
    except AgentFailure as refused:
        _say(f"Clean-up after {what} skipped: {refused.sentence}")
        return
    except Exception as exc:  # logged; the deploy or the job stands as it ended
        _say(f"Clean-up after {what} failed: {type(exc).__name__}: {exc}")
        return
    if answer["removed"]:
        paths = ", ".join(item["path"] for item in answer["removed"])
        _say(f"Clean-up after {what}: freed {answer['freed_bytes']} bytes: {paths}")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _entries(folder: str) -> list[str]:
    """The folder's direct entries, hidden ones (builds, fetches in progress) included."""
    try:
        return [os.path.join(folder, name) for name in os.listdir(folder)]
    except FileNotFoundError:
        return []


def _deploy_state() -> dict[str, Any]:
    try:
        with open(layout.DEPLOY_STATE_FILE, encoding="utf-8") as handle:
            found = json.load(handle)
    except FileNotFoundError:
        return {}
    except ValueError:
        raise AgentFailure(
            KIND_BUSY, f"{layout.DEPLOY_STATE_FILE} is not JSON: nothing was removed."
        ) from None
    return found if isinstance(found, dict) else {}


def _serving(state: dict[str, Any]) -> set[str]:
    """The environments and model files serving uses or may go back to."""
    models: list[Any] = [state.get(key) for key in ("live", "previous", "candidate", "mirror")]
    models += list((state.get("slots") or {}).values())
    used: set[str] = set()
    for held in models:
        model = (held or {}).get("model") if isinstance(held, dict) else None
        for key in ("env", "dir"):
            if isinstance(model, dict) and model.get(key):
                used.add(os.path.realpath(str(model[key])))
    for slot in _entries(layout.SLOTS_DIR):
        for link in ("env", "model"):
            if os.path.lexists(os.path.join(slot, link)):
                used.add(os.path.realpath(os.path.join(slot, link)))
    return used


def _training(since: float) -> set[str]:
    """The environments of running jobs and of jobs started since `since`."""
    used: set[str] = set()
    for record_file in glob.glob(os.path.join(layout.TRAIN_JOBS_DIR, "*", "job.json")):
        try:
            with open(record_file, encoding="utf-8") as handle:
                record = json.load(handle)
            env = os.path.join(layout.TRAIN_ENVS_DIR, str(record["env_key"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        try:
            recent = epoch(str(record["started_at"])) >= since
        except (KeyError, ValueError):
            recent = True  # a record it cannot date: kept, to be safe
        if record.get("state") in ACTIVE_JOB_STATES or recent:
            used.add(os.path.realpath(env))
    return used


def _bundles_named_by_units() -> set[str]:
    used: set[str] = set()
    for folder in UNIT_DIRS:
        for path in _files(folder):
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    text = handle.read()
            except OSError:
                continue
            for bundle in glob.glob(os.path.join(layout.AGENT_DIR, "*.zip")):
                if bundle in text:
                    used.add(os.path.realpath(bundle))
    return used


def _files(folder: str) -> Iterable[str]:
    for root, _dirs, names in os.walk(folder):
        for name in names:
            yield os.path.join(root, name)


def _changed_since(path: str, moment: float) -> bool:
    try:
        return os.lstat(path).st_mtime >= moment
    except FileNotFoundError:
        return True  # gone already: nothing to do


def _size(path: str) -> int:
    if os.path.islink(path) or not os.path.isdir(path):
        return os.lstat(path).st_blocks * 512
    total = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
