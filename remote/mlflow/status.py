"""`status(conn)`: the MLflow server on the box, as `fab mlflow.status` shows it.

What was installed (version, backend, artifact store, address) is read from the state
file the install wrote; the service's state from systemd; the counts from the backend
store itself, by the agent's `mlflow-data` under the env file with the server's store URI, so
the URI is never in argv and the counts do not depend on the server's auth settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from remote.agent.mlflow import commands as mlflow_cmds
from remote.contract import MLFLOW_PORT
from remote.errors import MlopsBoxError, WaitTimeout
from remote.mlflow.server import HEALTH_POLL_S, HEALTH_TIMEOUT_S, answers_health
from remote.mlflow.spec import (
    MLFLOW_USER,
    STATE_FILE,
    UNIT_NAME,
    installed_python,
    store_env_file,
)
from remote.system import systemd
from remote.system.agent import run_agent
from remote.system.run import Connection, check
from remote.waiting import wait_for


class MlflowStatusError(MlopsBoxError):
    """MLflow's state on the box could not be read, or its data not backed up."""


@dataclass(frozen=True)
class MlflowStatus:
    installed: bool
    state: str  # systemd's ActiveState
    enabled: bool
    since: str
    version: str | None
    backend: str
    backend_where: str
    artifacts: str
    listen: str
    experiments: str
    runs: str

    def describe(self, name: str) -> str:
        if not self.installed:
            return f"MLflow is not installed on {name}: run `fab mlflow.install`."
        boot = "starts at boot" if self.enabled else "does not start at boot"
        return "\n".join(
            [
                f"MLflow on {name}: {self.state} since {self.since or '-'} ({boot})",
                f"  version     {self.version or 'unknown'}",
                f"  backend     {self.backend} ({self.backend_where})",
                f"  artifacts   {self.artifacts} (served through the server)",
                f"  listening   {self.listen}",
                f"  data        {self.experiments} experiments, {self.runs} runs",
            ]
        )


def read_state(conn: Connection) -> dict[str, Any] | None:
    """The state file the install wrote; None when MLflow is not installed."""
    found = check(conn, f"cat {STATE_FILE}")
    if not found.ok:
        return None
    try:
        state = json.loads(found.stdout)
    except ValueError:
        raise MlflowStatusError(
            f"{STATE_FILE} on the box is not JSON: run `fab mlflow.install` to rewrite it."
        ) from None
    return state if isinstance(state, dict) else None


def require_running(
    conn: Connection, *, needed_by: str, error: type[MlopsBoxError]
) -> dict[str, Any]:
    """The install's state once MLflow answers /health on the box, else `error`.

    Right after `box.start` the server is still starting (its unit is `activating`, or
    `active` before /health answers): a task that needs it waits, with progress, instead
    of failing. A server that is stopped or failed is said at once.
    """
    state = read_state(conn)
    if state is None or not state.get("version"):
        raise error(
            f"MLflow is not installed on the box, and {needed_by}: run `fab mlflow.install` first."
        )
    listen = str(state.get("listen") or f"127.0.0.1:{MLFLOW_PORT}")

    def healthy() -> bool | None:
        if answers_health(conn, listen):
            return True
        unit = systemd.state(conn, UNIT_NAME)
        if unit.active in ("inactive", "failed"):
            raise error(
                f"MLflow on the box is {unit.active}, and {needed_by}: see `fab mlflow.status`; "
                "`fab mlflow.install` starts it again."
            )
        return None

    try:
        wait_for(
            healthy,
            what="MLflow on the box to answer /health",
            timeout_s=HEALTH_TIMEOUT_S,
            poll_s=HEALTH_POLL_S,
            hint=f"See `fab mlflow.status` and `journalctl -u {UNIT_NAME}` on the box.",
        )
    except WaitTimeout as exc:
        raise error(str(exc)) from None
    return state


def status(conn: Connection) -> MlflowStatus:
    state = read_state(conn)
    if state is None:
        return MlflowStatus(False, "absent", False, "", None, "", "", "", "", "", "")
    unit = systemd.state(conn, UNIT_NAME)
    version = str(state.get("version") or "") or None
    data = run_agent(
        conn,
        mlflow_cmds.DATA,
        python=installed_python(state),
        # With RDS, the file the server's start step wrote; `-`: a server that never
        # started has none, and the agent then says to re-run the install.
        env_file=f"-{store_env_file(str(state.get('backend')))}",
        user=MLFLOW_USER,
        error=MlflowStatusError,
    )
    backend = str(data.get("backend", "?"))
    return MlflowStatus(
        installed=True,
        state=unit.active,
        enabled=unit.enabled,
        since=unit.since,
        version=version,
        backend="rds (postgresql)" if backend.startswith("postgres") else backend,
        backend_where=str(data.get("where", "?")),
        artifacts=str(state.get("artifacts", "?")),
        listen=str(state.get("listen", "?")),
        experiments=str(data.get("experiments", "?")),
        runs=str(data.get("runs", "?")),
    )
