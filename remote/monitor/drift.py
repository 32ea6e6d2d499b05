"""`report(conn, request, dest)`: a drift report computed on the box, copied here.

The box does the work (`mlops_agent drift-report` in the monitor's environment, under
systemd-run, so a dropped connection does not leave it half done): it reads the model's
reference sample from MLflow, this version's predictions in the window and the labels,
and logs the report to MLflow. This side builds the environment once, passes the
checked request, and copies report.html, summary.png and figures.json into a folder of
their own under `dest`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remote.agent.monitor import commands as monitor_cmds
from remote.errors import EmptyWindow, MonitorError, NoReferenceSample, UnknownModel
from remote.monitor.box_report import compute_and_fetch
from remote.monitor.options import DriftRequest
from remote.system.run import Connection

# The task's exit status when the report finds drift: not 1, which means "failed".
DRIFT_EXIT = 3
REPORT_FILE = "report.html"
AGENT_ERRORS: dict[str, type[MonitorError]] = {
    "no-model": UnknownModel,
    "no-reference": NoReferenceSample,
    "empty-window": EmptyWindow,
}


@dataclass(frozen=True)
class DriftReport:
    answer: dict[str, Any]  # the agent's summary
    folder: Path  # where the files are on this machine

    @property
    def drift(self) -> bool:
        return bool(self.answer.get("drift"))

    @property
    def html(self) -> Path:
        return self.folder / REPORT_FILE

    def describe(self) -> str:
        a = self.answer
        drifted = a.get("drifted_columns") or []
        lines = [
            f"{a['model']} v{a['version']}: {a['requests']} requests ({a['rows']} rows) "
            f"from {a['since']} to {a['until']}",
            f"  data drift    {len(drifted)} of {a['columns']} input columns"
            + (f" ({', '.join(drifted)})" if drifted else ""),
            f"  predictions   {'drifted' if a.get('prediction_drift') else 'no drift'}",
            f"  data quality  {a.get('quality_issues', 0)} issues",
        ]
        labels = a.get("labels")
        if labels:
            error = (
                f"RMSE {a['rmse']:.3f}" if a.get("rmse") is not None else "no labelled predictions"
            )
            if a.get("val_rmse") is not None and a.get("error_rise") is not None:
                error += f" vs val_rmse {a['val_rmse']:.3f} ({a['error_rise']:+.0%})"
            if a.get("concept_note"):
                error += f"; {a['concept_note']}"
            lines.append(f"  error         {error}")
            lines.append(
                f"  labels        {labels['used']} used of {labels['stored']}; "
                f"{labels['unknown']} for unknown request ids"
            )
        else:
            lines.append("  error         no labels yet (`fab monitor.labels FILE`)")
        verdict = "DRIFT: " + "; ".join(a["reasons"]) if self.drift else "No drift"
        lines += [
            verdict,
            f"Logged to MLflow: experiment {a['experiment']}, run {a['run_id']}",
            f"Report: {self.html}",
        ]
        return "\n".join(lines)


def report(
    conn: Connection, request: DriftRequest, dest: Path, *, say: Callable[[str], None]
) -> DriftReport:
    say("Computing the drift report on the box...")
    answer, folder = compute_and_fetch(
        conn,
        monitor_cmds.DRIFT_REPORT,
        request.agent_args(),
        dest,
        name=lambda a: f"{a['model']}-v{a['version']}",
        say=say,
        errors=AGENT_ERRORS,
    )
    return DriftReport(answer, folder)
