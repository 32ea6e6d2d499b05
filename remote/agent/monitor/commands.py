"""Monitoring's on-box steps: a drift report and a shadow report, both logged to MLflow
and run in the monitor's virtualenv."""

from __future__ import annotations

from typing import Any

from ..cli import Command, Env, arg

DRIFT_REPORT = "drift-report"
SHADOW_REPORT = "shadow-report"


def drift(
    model: str,
    since_s: float,
    drift_share: float,
    max_error_rise: float,
    out: str,
    empty_ok: bool,
    experiment: str | None,
) -> dict[str, Any]:
    from .drift import report
    from .drift.analysis import Options

    options = Options(drift_share, max_error_rise)
    where = {"experiment": experiment} if experiment else {}
    return report.report(model, since_s, options, out=out, empty_ok=empty_ok, **where)


def shadow(tolerance: float, out: str) -> dict[str, Any]:
    from .shadow import report

    return report.report(tolerance, out=out)


_OUT = arg("--out", default="", help="keep the files here (default: not kept)")

COMMANDS = (
    Command(
        DRIFT_REPORT,
        "a drift report, logged to MLflow",
        Env.MONITOR,
        "monitor.commands:drift",
        (
            arg("--model", default="", help="default: the live model"),
            arg("--since-s", type=float, required=True),
            arg("--drift-share", type=float, required=True),
            arg("--max-error-rise", type=float, required=True),
            _OUT,
            arg("--empty-ok", action="store_true", help="no predictions is no error"),
            arg("--experiment", help="default: the monitoring experiment"),
        ),
    ),
    Command(
        SHADOW_REPORT,
        "the shadow against live, to MLflow",
        Env.MONITOR,
        "monitor.commands:shadow",
        (arg("--tolerance", type=float, required=True), _OUT),
    ),
)
