"""`drift-report`: one drift report of a model version, computed on the box, logged to MLflow.

Runs with the monitor's environment's Python (numpy, scipy, pandas, matplotlib, PyYAML),
as root (it reads the MLflow server's credentials, the prediction logs and the labels).
It resolves the model in MLflow (an alias is followed each time), fetches its training
run's reference sample and val_rmse, reads this version's predictions in the window and
the labels, writes report.html, summary.png and figures.json, and logs them with the
report's figures as a run of the monitoring experiment, tagged with the model version.
"""

from __future__ import annotations

import datetime
import io
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ...system import layout
from ...system.failure import AgentFailure
from .. import predictions as monitor_inputs
from .. import tracking
from . import render
from .analysis import Options, Report, analyse

EXPERIMENT = "mlops-box-monitoring"
KIND_EMPTY = "empty-window"


def report(
    model_ref: str,
    since_s: float,
    options: Options,
    *,
    out: str = "",
    empty_ok: bool = False,
    experiment: str = EXPERIMENT,
    base: str = layout.MLFLOW_URL,
) -> dict[str, Any]:
    clock = _Clock()
    import pandas as pd

    clock.lap("import_pandas")
    until = datetime.datetime.now(datetime.UTC)
    since = until - datetime.timedelta(seconds=since_s)
    if not model_ref:
        name, version = monitor_inputs.live_model()
        model_ref = f"models:/{version}" if version.startswith("m-") else f"{name}/{version}"
    model = tracking.resolve(base, model_ref)
    run_artifacts, val_rmse = tracking.training_run(base, model)
    sample = tracking.reference_sample(base, model, run_artifacts)
    try:
        reference = pd.read_csv(io.BytesIO(sample))
    except (ValueError, UnicodeDecodeError) as exc:
        raise AgentFailure(
            tracking.KIND_NO_REFERENCE,
            f"The reference sample of {model.label} is not a CSV file ({exc}): log it again.",
        ) from None
    signature = tracking.signature_inputs(base, model)
    clock.lap("mlflow_read")
    predictions = monitor_inputs.read_predictions(model.name, model.version, since)
    labels = monitor_inputs.read_labels()
    clock.lap("read_logs")
    window = _window(since_s)
    if not predictions.rows:
        sentence = (
            f"No predictions of {model.label} in the last {window} on the box "
            f"({predictions.other_lines} of other models or versions, {predictions.failed} "
            "failed): widen --since, or check that it serves (`fab deploy.status`)."
        )
        if empty_ok:
            return {"skipped": sentence, "model": model.name, "version": model.version}
        raise AgentFailure(KIND_EMPTY, sentence)

    result = analyse(
        reference,
        predictions,
        labels,
        signature=signature,
        val_rmse=val_rmse,
        model=model.name,
        version=model.version,
        since=since.isoformat(timespec="seconds"),
        until=until.isoformat(timespec="seconds"),
        window_s=since_s,
        options=options,
    )
    clock.lap("analyse")
    os.makedirs(layout.MPL_CACHE_DIR, exist_ok=True)
    os.environ.setdefault("MPLCONFIGDIR", layout.MPL_CACHE_DIR)
    out_dir = Path(out) if out else Path(tempfile.mkdtemp(prefix="mlops-drift-"))
    try:
        files = render.write(result, out_dir)
        clock.lap("render")
        run_id = tracking.log_report(
            base,
            experiment,
            model,
            metrics=_metrics(result),
            params={
                "window": window,
                "drift_share": str(options.drift_share),
                "max_error_rise": str(options.max_error_rise),
                "reference_rows": str(result.reference_rows),
            },
            tags={"mlops-box.drift": "yes" if result.drift else "no"},
            files=files,
        )
        clock.lap("mlflow_log")
    finally:
        if not out:
            shutil.rmtree(out_dir, ignore_errors=True)
    return {**_answer(result, run_id, experiment, [f.name for f in files]), **clock.figures()}


class _Clock:
    """How long each stage took, and the process's peak memory, for the benchmark."""

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.stages: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages[stage] = round(now - self.last, 3)
        self.last = now

    def figures(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "seconds": round(time.perf_counter() - self.started, 3),
            "stages": self.stages,
            # The whole process's CPU (interpreter start included): unlike the wall
            # time, it does not grow when other work shares the box's cores.
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # ru_maxrss is in kB on Linux
        }


def _window(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _metrics(result: Report) -> dict[str, float]:
    metrics: dict[str, float] = {
        "drift": float(result.drift),
        "dataset_drift": float(result.dataset_drift),
        "drifted_share": result.share,
        "drifted_columns": float(len(result.drifted_columns)),
        "requests": float(result.requests),
        "rows": float(result.rows),
        "failed_requests": float(result.failed),
        "quality_issues": float(result.quality.issues),
    }
    for column in [*result.columns, result.prediction]:
        if column is not None and column.score is not None:
            metrics[f"drift_score.{column.column}"] = column.score
    if result.prediction is not None:
        metrics["prediction_drift"] = float(result.prediction.drifted)
    concept, labels = result.concept, result.labels
    if concept is not None and labels is not None:
        metrics["labels_used"] = float(labels.used)
        metrics["labels_unknown"] = float(labels.unknown)
        for name in ("rmse", "val_rmse", "rise"):
            value = getattr(concept, name)
            if value is not None:
                metrics["error_rise" if name == "rise" else name] = value
    return {k: v for k, v in metrics.items() if v == v}  # MLflow refuses NaN


def _answer(result: Report, run_id: str, experiment: str, files: list[str]) -> dict[str, Any]:
    summary = result.summary()
    concept = summary["concept"] or {}
    return {
        "model": result.model,
        "version": result.version,
        "since": result.since,
        "until": result.until,
        "drift": result.drift,
        "reasons": result.reasons,
        "requests": result.requests,
        "rows": result.rows,
        "columns": len(result.columns),
        "drifted_columns": result.drifted_columns,
        "prediction_drift": summary["prediction"] and summary["prediction"]["drifted"],
        "quality_issues": result.quality.issues,
        "labels": summary["labels"],
        "rmse": concept.get("rmse"),
        "val_rmse": concept.get("val_rmse"),
        "error_rise": concept.get("rise"),
        "concept_note": concept.get("note"),
        "run_id": run_id,
        "experiment": experiment,
        "files": files,
    }
