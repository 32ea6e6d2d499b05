"""The monitor's environment on the box: what a drift report runs with.

Its own virtualenv (never the MLflow server's, which `mlflow.install` may replace),
named by its requirements: pinned, so a report computed today and one next month use
the same statistics, and built once per set of requirements.
"""

from __future__ import annotations

from collections.abc import Callable

from remote.changes import Changed
from remote.errors import MonitorError
from remote.system.run import Connection
from remote.system.venv import ensure_venv, env_path

# numpy, scipy and pandas for the statistics, matplotlib for the pictures, PyYAML for
# the model's MLmodel file (its signature names the input columns).
REQUIREMENTS = (
    "numpy==2.4.6",
    "scipy==1.17.1",
    "pandas==3.1.1",
    "matplotlib==3.11.2",
    "PyYAML==6.0.4",
)
ENV_PATH = env_path("monitor", REQUIREMENTS)
PYTHON = f"{ENV_PATH}/bin/python"


def ensure_monitor_env(conn: Connection, say: Callable[[str], None]) -> Changed:
    """Build the environment unless the box has it (a first build takes a minute or two)."""
    return ensure_venv(conn, ENV_PATH, REQUIREMENTS, say=say, error=MonitorError)
