"""The agent's one way to talk to systemd: `systemctl` calls, and transient units under
`systemd-run`, among them the agent itself, run again from this same bundle.

Nothing here raises on a unit's failure: each caller judges the outcome it gets back.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

# The agent's own package (mlops_agent on the box, remote.agent in the repository) and
# where it is imported from: on the box the bundle's zip, which a unit puts on PYTHONPATH.
AGENT_PACKAGE = (__package__ or "").rpartition(".")[0]
AGENT_PATH = str(Path(__file__).parents[1 + len(AGENT_PACKAGE.split("."))])


def systemctl(*args: str) -> subprocess.CompletedProcess[str]:
    """One `systemctl` call, its outcome (output captured, never raising)."""
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)


def is_active(unit: str) -> str:
    """The unit's `systemctl is-active` answer (active, inactive, failed, activating...)."""
    return systemctl("is-active", unit).stdout.strip()


def is_enabled(unit: str) -> bool:
    return systemctl("is-enabled", "--quiet", unit).returncode == 0


def active_state(unit: str) -> str:
    """The unit's ActiveState, also for a unit that is still loaded after it ended."""
    return systemctl("show", "-p", "ActiveState", "--value", unit).stdout.strip()


def run_unit(
    unit: str,
    argv: Sequence[str],
    *,
    properties: Sequence[str] = (),
    setenv: Mapping[str, str] | None = None,
    description: str = "",
    after_s: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Start `argv` as the transient unit `unit`, collected once it ends; with `after_s`,
    a transient timer that starts it that many seconds from now. Returns at once."""
    timer = (
        [f"--on-active={max(1, round(after_s))}s", "--timer-property=AccuracySec=1s"]
        if after_s is not None
        else []
    )
    command = [
        "systemd-run",
        f"--unit={unit}",
        *timer,
        "--collect",
        "--quiet",
        *([f"--description={description}"] if description else []),
        *(f"--property={p}" for p in properties),
        *(f"--setenv={k}={v}" for k, v in (setenv or {}).items()),
        "--",
        *argv,
    ]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def agent_argv(command: str, *args: str) -> list[str]:
    """This agent's `command`, run by this same Python (with AGENT_PATH on its path)."""
    return [sys.executable, "-m", AGENT_PACKAGE, command, *args]


def run_agent_unit(
    unit: str,
    command: str,
    *args: str,
    properties: Sequence[str] = (),
    after_s: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """The agent's own `command` as the transient unit `unit` (see `run_unit`), from this
    bundle: the unit runs exactly the code that started it."""
    return run_unit(
        unit,
        agent_argv(command, *args),
        properties=[f"Environment=PYTHONPATH={AGENT_PATH}", *properties],
        after_s=after_s,
    )
