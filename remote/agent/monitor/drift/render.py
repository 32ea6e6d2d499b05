"""A drift report as files: report.html (one page, its pictures inside), summary.png and
figures.json (the numbers behind every picture, and the report's summary).

matplotlib draws with its file-only backend; it is imported inside the functions, as
every package of the monitor's environment.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from .. import report_files
from .analysis import PREDICTION, Report
from .stats import TEST_NAMES, ColumnDrift

REFERENCE_COLOR = "#7f8c9b"
CURRENT_COLOR = "#d9822b"
DRIFT_COLOR = "#c0392b"
OK_COLOR = "#2e86c1"


def write(report: Report, out_dir: Path) -> list[Path]:
    """Write report.html, summary.png and figures.json into `out_dir`; return their paths."""
    report_files.use_file_backend()
    # Three pictures, each drawn once: a figure costs more than its subplots.
    png = report_files.png
    summary = png(_summary_figure(report))
    distributions = png(_distributions_figure(report)) if report.distributions else None
    concept = report.concept
    errors = png(_concept_figure(report)) if concept is not None and concept.buckets else None
    data = report.summary()
    figures = {
        "summary": data,
        "distributions": report.distributions,
        "error_over_time": data["concept"],
    }
    page = _html(report, summary, distributions, errors)
    return report_files.write(out_dir, page, summary, figures)


def _verdict(report: Report) -> str:
    if report.drift:
        return "DRIFT: " + "; ".join(report.reasons)
    return "No drift"


def _summary_figure(report: Report) -> Any:
    import matplotlib.pyplot as plt

    tested = [c for c in [*report.columns, report.prediction] if c is not None and c.test]
    has_error = report.concept is not None and bool(report.concept.buckets)
    figure, axes = plt.subplots(
        1, 2 if has_error else 1, figsize=(11 if has_error else 6.5, 0.45 * len(tested) + 1.8)
    )
    bars = axes[0] if has_error else axes
    names = [c.column for c in tested]
    scores = [c.score or 0.0 for c in tested]
    colors = [DRIFT_COLOR if c.drifted else OK_COLOR for c in tested]
    bars.barh(names, scores, color=colors)
    bars.invert_yaxis()
    if tested:
        bars.axvline(tested[0].threshold, color="black", linestyle="--", linewidth=1)
        kind = "p-value (drift below the line)" if tested[0].is_p_value else "distance"
        bars.set_xlabel(f"{kind}; red: drifted")
    bars.set_title(f"{report.model} v{report.version}: {report.rows} rows", fontsize=10)
    if has_error:
        _draw_error(axes[1], report)
    figure.suptitle(_verdict(report), color=DRIFT_COLOR if report.drift else "black", fontsize=10)
    figure.tight_layout()
    return figure


def _distributions_figure(report: Report) -> Any:
    """Reference vs current, one panel per input column and one for the predictions."""
    import matplotlib.pyplot as plt

    names = list(report.distributions)
    rows = (len(names) + 1) // 2
    figure, axes = plt.subplots(rows, 2, figsize=(13, 2.9 * rows), squeeze=False)
    for axis, name in zip(axes.flat, names, strict=False):
        _draw_distribution(axis, report, name)
    for axis in list(axes.flat)[len(names) :]:
        axis.set_visible(False)
    figure.tight_layout()
    return figure


def _draw_distribution(axis: Any, report: Report, name: str) -> None:
    data = report.distributions[name]
    if data["type"] == "bars":
        positions = range(len(data["labels"]))
        many = len(positions) > 8
        axis.bar([p - 0.2 for p in positions], data["reference"], 0.4, color=REFERENCE_COLOR)
        axis.bar([p + 0.2 for p in positions], data["current"], 0.4, color=CURRENT_COLOR)
        axis.set_xticks(
            list(positions),
            data["labels"],
            rotation=45 if many else 0,
            ha="right" if many else "center",
            fontsize=7,
        )
    else:
        edges = data["edges"]
        axis.stairs(data["reference"], edges, fill=True, color=REFERENCE_COLOR, alpha=0.6)
        axis.stairs(data["current"], edges, color=CURRENT_COLOR, linewidth=2)
    axis.set_ylabel("share of rows", fontsize=8)
    axis.legend(["reference", "current"], fontsize=7)
    drift = report.prediction if name == PREDICTION else _column(report, name)
    axis.set_title(
        f"{name}: {_describe(drift)}",
        fontsize=9,
        color=DRIFT_COLOR if drift is not None and drift.drifted else "black",
    )


def _concept_figure(report: Report) -> Any:
    """The error over time, and the residuals' distribution."""
    import matplotlib.pyplot as plt

    figure, (errors, residuals) = plt.subplots(1, 2, figsize=(13, 3.4))
    _draw_error(errors, report)
    _draw_residuals(residuals, report)
    figure.tight_layout()
    return figure


def _draw_error(axis: Any, report: Report) -> None:
    import pandas as pd

    concept = report.concept
    assert concept is not None
    starts = [pd.Timestamp(b.start) for b in concept.buckets]
    axis.plot(
        starts,
        [b.rmse for b in concept.buckets],
        marker="o",
        color=CURRENT_COLOR,
        label=f"RMSE per {concept.bucket}",
    )
    axis.plot(
        starts,
        [b.bias for b in concept.buckets],
        marker=".",
        color=REFERENCE_COLOR,
        label="mean residual (bias)",
    )
    if concept.val_rmse is not None:
        axis.axhline(concept.val_rmse, color="black", linewidth=1, label="val_rmse")
        limit = concept.val_rmse * (1 + concept.max_error_rise)
        axis.axhline(
            limit,
            color=DRIFT_COLOR,
            linestyle="--",
            linewidth=1,
            label=f"+{concept.max_error_rise:.0%}",
        )
    axis.axhline(0, color="grey", linewidth=0.5)
    axis.set_title("Error over time (labelled predictions)", fontsize=10)
    axis.legend(fontsize=7)
    axis.tick_params(axis="x", labelrotation=30, labelsize=7)


def _draw_residuals(axis: Any, report: Report) -> None:
    assert report.concept is not None
    data = report.concept.residuals
    if not data:
        axis.set_visible(False)
        return
    if data["reference"] and any(data["reference"]):
        axis.stairs(
            data["reference"],
            data["edges"],
            fill=True,
            color=REFERENCE_COLOR,
            alpha=0.6,
            label="reference (training rows)",
        )
    axis.stairs(
        data["current"], data["edges"], color=CURRENT_COLOR, linewidth=2, label="current (labelled)"
    )
    axis.axvline(0, color="black", linewidth=0.5)
    axis.set_xlabel("residual: label - prediction")
    axis.set_ylabel("share of rows")
    axis.set_title("Residuals", fontsize=10)
    axis.legend(fontsize=8)


def _column(report: Report, name: str) -> ColumnDrift | None:
    return next((c for c in report.columns if c.column == name), None)


def _describe(drift: ColumnDrift | None) -> str:
    if drift is None or not drift.test or drift.score is None:
        return "not tested (no values on one side)"
    verdict = "drift" if drift.drifted else "no drift"
    return f"{TEST_NAMES[drift.test]} {drift.score:.3g} ({verdict}, threshold {drift.threshold})"


def _html(report: Report, summary: bytes, distributions: bytes | None, errors: bytes | None) -> str:
    e = html.escape
    rows = "".join(
        f"<tr class={'drift' if c.drifted else 'ok'}><td>{e(c.column)}</td><td>{c.kind}</td>"
        f"<td>{e(_describe(c))}</td></tr>"
        for c in [*report.columns, *([report.prediction] if report.prediction else [])]
    )
    q = report.quality
    quality = [
        *(
            f"{e(c)}: {cur:.1%} missing ({n} rows; reference {ref:.1%})"
            for c, (ref, cur, n) in q.missing.items()
        ),
        *(
            f"{e(c)}: unseen categories " + ", ".join(f"{e(v)} ({n})" for v, n in seen.items())
            for c, seen in q.unseen.items()
        ),
        *(
            f"{e(c)}: {n} values ({share:.1%}) outside the reference's [{low:g}, {high:g}]"
            for c, (n, share, low, high) in q.out_of_range.items()
        ),
        *([f"new columns: {e(', '.join(q.new_columns))}"] if q.new_columns else []),
        *([f"missing columns: {e(', '.join(q.missing_columns))}"] if q.missing_columns else []),
        *([f"{report.failed} requests did not answer 200"] if report.failed else []),
    ]
    parts = [
        f"<h1>{e(report.model)} v{e(report.version)}</h1>",
        f"<p>Predictions from {e(report.since)} to {e(report.until)}: {report.requests} "
        f"requests, {report.rows} rows; reference sample: {report.reference_rows} rows.</p>",
        f"<h2 class={'drift' if report.drift else 'ok'}>{e(_verdict(report))}</h2>",
        report_files.img(summary, "summary"),
        "<h2>Data drift</h2>",
        f"<p>{len(report.drifted_columns)} of {len(report.columns)} input columns drifted "
        f"({report.share:.0%}; the dataset drifts at {report.options.drift_share:.0%}).</p>",
        f"<table><tr><th>column</th><th>kind</th><th>test</th></tr>{rows}</table>",
        "<h2>Data quality</h2>",
        "<ul>" + "".join(f"<li>{item}</li>" for item in quality) + "</ul>"
        if quality
        else "<p>No missing values, unseen categories or out-of-range values.</p>",
        *_concept_html(report, errors),
        "<h2>Distributions: reference vs current</h2>",
        *([report_files.img(distributions, "distributions")] if distributions else []),
        *(f"<p><i>{e(note)}</i></p>" for note in report.notes),
    ]
    return report_files.page(f"Drift: {report.model} v{report.version}", parts)


def _concept_html(report: Report, errors: bytes | None) -> list[str]:
    concept, labels = report.concept, report.labels
    if concept is None or labels is None:
        return [
            "<h2>Concept drift</h2><p>No labels on the box yet: upload them with "
            "<code>fab monitor.labels FILE</code>.</p>"
        ]
    figures = f"RMSE {concept.rmse:.3f}" if concept.rmse is not None else "no RMSE"
    if concept.val_rmse is not None:
        figures += f" against val_rmse {concept.val_rmse:.3f}"
    if concept.rise is not None:
        figures += f" ({concept.rise:+.0%}; drift above {concept.max_error_rise:+.0%})"
    bias = (
        ""
        if concept.bias is None
        else (
            f" Mean residual now {concept.bias:+.3f}; on the reference sample "
            f"{concept.reference_bias:+.3f}."
            if concept.reference_bias is not None
            else f" Mean residual now {concept.bias:+.3f}."
        )
    )
    return [
        "<h2>Concept drift</h2>",
        f"<p>{concept.labelled} labelled predictions: {figures}.{bias}"
        + (f" <i>{html.escape(concept.note)}</i>" if concept.note else "")
        + "</p>",
        f"<p>Labels on the box: {labels.stored}; used {labels.used}; for other predictions "
        f"(another model, version or time) {labels.elsewhere}; for requests of several rows "
        f"{labels.multi_row}; named after another target {labels.other_target}; for unknown "
        f"request ids {labels.unknown}.</p>",
        *([report_files.img(errors, "error over time and residuals")] if errors else []),
    ]
