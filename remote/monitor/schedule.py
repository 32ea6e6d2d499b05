"""`fab monitor.schedule`: the same drift report on a systemd timer on the box.

mlops-drift.timer starts mlops-drift.service every `--every`, first at most 15 minutes
after boot (or after the schedule is set); the service runs the agent's `drift-report`
in the monitor's environment, its window the interval unless `--since` says otherwise,
and the report lands in MLflow's monitoring experiment. A window without predictions is
no failure there: the check says so in the journal and logs nothing.

The service names the agent bundle of the `fab` that set it: a later `fab` with other
agent code leaves it on the one it named (bundles are never removed) until the
schedule is set again.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from remote import contract
from remote.agent.monitor import commands as monitor_cmds
from remote.agent.monitor.drift.report import EXPERIMENT
from remote.changes import Changed
from remote.contract import MLFLOW_UNIT, MONITOR_DIR
from remote.errors import MonitorError
from remote.monitor.env import PYTHON, ensure_monitor_env
from remote.monitor.options import DriftRequest, duration_s, model_ref, number
from remote.system import systemd, templates
from remote.system.agent import PACKAGE, bundle, ensure_agent
from remote.system.run import Connection, check, run, sudo

SERVICE = contract.DRIFT_SERVICE
TIMER = contract.DRIFT_TIMER
FIRST_RUN_MAX_S = 15 * 60
RUN_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Schedule:
    every_s: int
    every: str  # as given, for people
    request: DriftRequest

    @property
    def first_s(self) -> int:
        return min(self.every_s, FIRST_RUN_MAX_S)

    @property
    def description(self) -> str:
        model = self.request.model or "the live model"
        return f"mlops-box drift check of {model} every {self.every}"


def schedule_of(
    every: str, model: str, since: str, drift_share: str | float, max_error_rise: str | float
) -> Schedule:
    """The checked schedule; the window is the interval unless `since` is given."""
    every_s = duration_s(every, "--every")
    since_s = duration_s(since, "--since") if since else every_s
    request = DriftRequest(
        model_ref(model),
        since_s,
        number(drift_share, "--drift-share"),
        number(max_error_rise, "--max-error-rise"),
    )
    return Schedule(every_s, every.strip(), request)


def systemd_word(arg: str) -> str:
    """One argument of an ExecStart= line: quoted, with systemd's `%` and `$` escaped."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("%", "%%").replace("$", "$$") + '"'


def render_service(schedule: Schedule, agent: str) -> str:
    argv = [
        PYTHON,
        "-m",
        PACKAGE,
        monitor_cmds.DRIFT_REPORT,
        *schedule.request.agent_args(),
        "--empty-ok",
    ]
    return templates.render(
        "mlops-drift.service.j2",
        description=schedule.description.replace("%", "%%"),
        experiment=EXPERIMENT,
        mlflow_unit=MLFLOW_UNIT,
        agent=agent,
        exec_start=" ".join(systemd_word(a) for a in argv),
        timeout_s=RUN_TIMEOUT_S,
        monitor_dir=MONITOR_DIR,
    )


def render_timer(schedule: Schedule) -> str:
    return templates.render(
        "mlops-drift.timer.j2",
        description=schedule.description.replace("%", "%%"),
        first_s=schedule.first_s,
        every_s=schedule.every_s,
        service=SERVICE,
    )


def enable(conn: Connection, schedule: Schedule, *, say: Callable[[str], None]) -> Changed:
    """Set the schedule (idempotent: the same schedule again changes nothing)."""
    changed = ensure_monitor_env(conn, say)
    changed.merge(ensure_agent(conn))
    run(conn, sudo(f"install -d -m 750 {MONITOR_DIR}"), what=f"make {MONITOR_DIR}")
    agent, _ = bundle()
    changed.merge(
        systemd.ensure_unit(
            conn,
            SERVICE,
            render_service(schedule, agent),
            start=False,
            enable=False,
            error=MonitorError,
        )
    )
    return changed.merge(
        systemd.ensure_unit(conn, TIMER, render_timer(schedule), error=MonitorError)
    )


def disable(conn: Connection) -> Changed:
    """Stop and remove the schedule; nothing to do when there is none."""
    changed = Changed()
    paths = [systemd.unit_path(TIMER), systemd.unit_path(SERVICE)]
    if not check(conn, f"test -e {paths[0]} -o -e {paths[1]}").ok:
        return changed
    check(conn, sudo(f"systemctl disable --now {TIMER}"))
    run(conn, sudo(f"rm -f {' '.join(paths)}"), what="remove the schedule", error=MonitorError)
    systemd.systemctl(conn, "daemon-reload", error=MonitorError)
    changed.add(f"removed {TIMER}")
    return changed


def describe(conn: Connection) -> str:
    """The schedule, when it next runs, and what its last check found."""
    timer = systemd.show(conn, TIMER, "Description", "ActiveState", "UnitFileState")
    if timer.get("UnitFileState") != "enabled":
        return "No drift check is scheduled: `fab monitor.schedule --every 1d` sets one."
    listed = check(conn, f"systemctl list-timers {TIMER} --all --no-legend --no-pager")
    when = " ".join(listed.stdout.split()) or "(not listed)"
    return "\n".join(
        [
            f"{timer.get('Description')}: {timer.get('ActiveState')}",
            f"  next, left, last, passed: {when}",
            f"  last check: {last_result(conn)}",
        ]
    )


def last_result(conn: Connection) -> str:
    log = check(conn, sudo(f"journalctl -u {SERVICE} -o cat -n 200 --no-pager"))
    answers = [line for line in str(log.stdout).splitlines() if line.startswith('{"ok"')]
    if not answers:
        return "none yet"
    try:
        answer = json.loads(answers[-1])
    except ValueError:
        return answers[-1]
    if not isinstance(answer, dict):
        return answers[-1]
    if not answer.get("ok"):
        return f"failed: {answer.get('error')}"
    if "skipped" in answer:
        return str(answer["skipped"])
    verdict = "DRIFT: " + "; ".join(answer["reasons"]) if answer.get("drift") else "no drift"
    return (
        f"{answer['model']} v{answer['version']}, {answer['requests']} requests: {verdict} "
        f"(MLflow run {answer['run_id']}); see `journalctl -u {shlex.quote(SERVICE)}` on the box"
    )
