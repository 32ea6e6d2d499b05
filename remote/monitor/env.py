"""The monitor's environment on the box: what a drift or shadow report runs with.

Its own virtualenv (never the MLflow server's, which `mlflow.install` may replace): numpy,
scipy and pandas for the statistics, matplotlib for the pictures, PyYAML for the model's
MLmodel file (its signature names the input columns). It holds exactly the lock kept in
the repository (locks/box/monitor.txt), so a report computed today and one next month use
the same statistics, and is named by that lock: built once per lock.
"""

from __future__ import annotations

from collections.abc import Callable

from remote import contract
from remote.changes import Changed
from remote.errors import MonitorError
from remote.locks import MONITOR, box_lock
from remote.system.run import Connection
from remote.system.venv import ensure_env

LOCK = box_lock(MONITOR)
ENV_PATH = f"{contract.MODEL_ENVS_DIR}/monitor-{LOCK.key}"
PYTHON = f"{ENV_PATH}/bin/python"


def ensure_monitor_env(conn: Connection, say: Callable[[str], None]) -> Changed:
    """Build the environment unless the box has it (a first build takes a minute or two)."""
    return ensure_env(conn, ENV_PATH, LOCK, say=say, error=MonitorError)
