"""Shadow mode from the controller: start one, report on it.

`start` prepares like a blue-green deploy (the box resolves and copies the model, its
environment is built) and then the box runs the shadow's steps itself as the unit
mlops-deploy-<revision> (remote/agent/deploy/kinds/shadow.py): the shadow slot started and
warmed up, the router's mirror on, a copy checked end to end. It returns once copies flow. The end
(`--duration`'s timer, or `deploy.abort`) runs on the box too. `deploy.promote` and
`deploy.abort` are apply.promote and apply.abort, which act on whatever runs (a canary or
a shadow). `report` is computed on the box in the monitor's environment and copied here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remote.agent.monitor import commands as monitor_cmds
from remote.deploy import apply, status
from remote.deploy.plan import check_percent, check_seconds
from remote.errors import DeployError
from remote.model_names import check_model_uri
from remote.monitor.box_report import compute_and_fetch
from remote.system.run import Connection

Say = Callable[[str], None]
DEFAULT_SAMPLE = 100.0
DEFAULT_TOLERANCE = 0.05


@dataclass(frozen=True)
class ShadowPlan:
    model_uri: str
    sample: float = DEFAULT_SAMPLE
    duration_s: float = 0.0  # 0: until `deploy.abort` or `deploy.promote`

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_uri", check_model_uri(self.model_uri))
        object.__setattr__(self, "sample", check_percent("sample", self.sample))
        object.__setattr__(self, "duration_s", check_seconds("duration", self.duration_s))


def plan(model_uri: str, sample: float | str, duration: float | str) -> ShadowPlan:
    """The plan from the task's text arguments, each checked."""
    return ShadowPlan(
        model_uri, check_percent("sample", sample), check_seconds("duration", duration)
    )


def start(conn: Connection, plan: ShadowPlan, *, by: str, say: Say) -> dict[str, Any]:
    """Start a shadow of `plan.model_uri`; the history entry once copies flow."""
    current = status.read_state(conn) or {}
    if not current.get("live"):
        raise DeployError(
            "Nothing is live to copy traffic from: deploy a model first with "
            "`fab deploy.blue-green --model URI`."
        )
    if current.get("mirror"):
        raise DeployError(
            f"A shadow of {status.label(current['mirror']['model'])} already runs: end it with "
            "`fab deploy.abort` (or `fab deploy.promote`) first."
        )
    revision = apply.prepare_and_launch(
        conn,
        "shadow",
        plan.model_uri,
        ["--sample", str(plan.sample), "--duration", str(plan.duration_s)],
        what=f"shadow of {plan.model_uri}, {plan.sample:g}% of the traffic",
        by=by,
        say=say,
    )
    entry = status.follow(conn, revision, say=say)
    if entry.get("outcome") != "shadowing":
        raise DeployError(status.outcome_sentence(entry))
    return entry


@dataclass(frozen=True)
class ShadowReport:
    answer: dict[str, Any]
    folder: Path

    @property
    def html(self) -> Path:
        return self.folder / "report.html"

    def describe(self) -> str:
        a = self.answer
        lines = [
            f"Shadow {a['shadow_model']} against live {a['live_model']}, from {a['since']} "
            f"to {a['until']} UTC ({'running' if a['running'] else 'ended'})",
            f"  paired      {a['paired_requests']} requests: {a['verdict']}",
        ]
        for side in ("live", "shadow"):
            s = a[side]
            lines.append(
                f"  {side:<11} {s['requests']} requests, {s['errors']} errors, "
                f"p50 {_ms(s['p50_ms'])}, p99 {_ms(s['p99_ms'])}"
            )
        relay = ", ".join(f"{k}: {v}" for k, v in sorted(a["relay"].items())) or "none"
        lines += [
            f"  copies      by the shadow's answer: {relay}",
            f"Logged to MLflow: experiment {a['experiment']}, run {a['run_id']}",
            f"Report: {self.html}",
        ]
        return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def report(conn: Connection, dest: Path, tolerance: float, *, say: Say) -> ShadowReport:
    say("Computing the shadow report on the box...")
    answer, folder = compute_and_fetch(
        conn,
        monitor_cmds.SHADOW_REPORT,
        ["--tolerance", str(tolerance)],
        dest,
        name=lambda a: f"shadow-{a['shadow_model']}",
        say=say,
        error=DeployError,
    )
    return ShadowReport(answer, folder)
