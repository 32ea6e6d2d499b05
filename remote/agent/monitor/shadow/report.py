"""`shadow-report`: the running (or last) shadow against the live model, logged to MLflow.

Runs with the monitor's environment's Python (matplotlib for the picture), as root (it
reads the prediction logs and the MLflow server's credentials). The figures come from
pairs.py (live and shadow predictions paired by request id); the files are the
reports' usual three (report_files); the run goes to the deployments experiment, tagged
with the shadow's model version and the live one.
"""

from __future__ import annotations

import datetime
import html
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ...deploy import state
from ...deploy.kinds.shadow import window
from ...system import layout
from .. import report_files, tracking
from .pairs import DEFAULT_TOLERANCE, Comparison, compare, read_records, read_relay

EXPERIMENT = "mlops-box-deployments"
LIVE_COLOR = "#2e86c1"
SHADOW_COLOR = "#d9822b"


def _ms(moment: str) -> str:
    """An ISO time as the prediction log writes it (UTC, milliseconds), for comparing."""
    parsed = datetime.datetime.fromisoformat(moment).astimezone(datetime.UTC)
    return parsed.isoformat(timespec="milliseconds")[:23]


def report(
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    out: str = "",
    experiment: str = EXPERIMENT,
    base: str = layout.MLFLOW_URL,
    log_dir: str = layout.PREDICTION_LOG_DIR,
) -> dict[str, Any]:
    shadow = window(state.load())
    start = _ms(shadow["started"])
    end = _ms(shadow["ended"] or datetime.datetime.now(datetime.UTC).isoformat())
    comparison = compare(
        read_records(log_dir, layout.LIVE_SLOTS, start, end),
        read_records(log_dir, [layout.SHADOW_SLOT], start, end),
        tolerance,
    )
    relay = read_relay(layout.MIRROR_LOG, start, end)
    summary = _summary(shadow, comparison, relay, start, end)
    os.makedirs(layout.MPL_CACHE_DIR, exist_ok=True)
    os.environ.setdefault("MPLCONFIGDIR", layout.MPL_CACHE_DIR)
    out_dir = Path(out) if out else Path(tempfile.mkdtemp(prefix="mlops-shadow-"))
    model = shadow["model"]
    try:
        files = write(summary, comparison, out_dir)
        run_id = tracking.log_report(
            base,
            experiment,
            tracking.ModelVersion(
                model["name"], str(model["version"]), str(model.get("run_id") or ""), ""
            ),
            metrics=_metrics(summary),
            params={"tolerance": str(tolerance), "window": f"{start} to {end}"},
            tags={"mlops-box.live_model": summary["live_model"], "mlops-box.kind": "shadow"},
            files=files,
            title="shadow",
        )
    finally:
        if not out:
            shutil.rmtree(out_dir, ignore_errors=True)
    return {
        **summary,
        "run_id": run_id,
        "experiment": experiment,
        "files": [f.name for f in files],
    }


def verdict(kind: str, a: dict[str, Any]) -> str:
    """How far the shadow agrees with live, in one sentence (the report's and the task's)."""
    if kind == "regression":
        return (
            f"{a['within_tolerance']:.1%} of {a['rows']} rows within {a['tolerance']:.0%}; "
            f"mean |live - shadow| {a['mean_abs_diff']:.4g}, p95 {a['p95_abs_diff']:.4g}, "
            f"max {a['max_abs_diff']:.4g}"
        )
    if kind == "classification":
        return f"The same answer for {a['agreement_rate']:.1%} of {a['rows']} rows"
    return "No paired predictions yet: is traffic reaching the live model?"


def _summary(
    shadow: dict[str, Any], comparison: Comparison, relay: dict[str, int], start: str, end: str
) -> dict[str, Any]:
    live = shadow.get("live") or {}
    return {
        "shadow_model": state.model_label(shadow["model"]),
        "live_model": state.model_label(live.get("model")),
        "since": start,
        "until": end,
        "running": shadow["ended"] is None,
        "sample": shadow["sample"],
        "kind": comparison.kind,
        "live": comparison.live.summary(),
        "shadow": comparison.shadow.summary(),
        "paired_requests": comparison.paired_requests,
        "unmatched_shadow": comparison.unmatched_shadow,
        "agreement": comparison.agreement,
        "verdict": verdict(comparison.kind, comparison.agreement),
        "relay": relay,
        "top": [
            {
                "request_id": p.request_id,
                "time": p.time,
                "live": p.live,
                "shadow": p.shadow,
                "difference": p.difference,
                "input": p.first_input,
            }
            for p in comparison.top()
        ],
    }


def _metrics(summary: dict[str, Any]) -> dict[str, float]:
    metrics: dict[str, Any] = {
        "paired_requests": summary["paired_requests"],
        "unmatched_shadow": summary["unmatched_shadow"],
        **{f"relay_{k}": v for k, v in summary["relay"].items()},
    }
    for side in ("live", "shadow"):
        for key, value in summary[side].items():
            metrics[f"{side}_{key}"] = value
    for key, value in summary["agreement"].items():
        metrics[key] = value
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v == v}


def write(summary: dict[str, Any], comparison: Comparison, out_dir: Path) -> list[Path]:
    report_files.use_file_backend()
    picture = report_files.png(_figure(comparison))
    page = report_files.page(
        f"Shadow: {summary['shadow_model']} against {summary['live_model']}",
        _html(summary, picture),
    )
    figures = {
        "summary": summary,
        "pairs": [[p.live, p.shadow] for p in comparison.pairs[:5000]],
        "latency_ms": {
            "live": comparison.live.latencies_ms[:5000],
            "shadow": comparison.shadow.latencies_ms[:5000],
        },
    }
    return report_files.write(out_dir, page, picture, json.loads(json.dumps(figures, default=str)))


def _figure(comparison: Comparison) -> Any:
    import matplotlib.pyplot as plt

    figure, (agree, latency) = plt.subplots(1, 2, figsize=(11, 4.6))
    pairs = comparison.pairs
    if comparison.kind == "regression":
        xs, ys = [p.live for p in pairs], [p.shadow for p in pairs]
        agree.scatter(xs, ys, s=8, alpha=0.5, color=SHADOW_COLOR)
        low, high = min(xs + ys), max(xs + ys)
        agree.plot([low, high], [low, high], color="#555555", linewidth=1, label="agree")
        agree.set_xlabel("live prediction")
        agree.set_ylabel("shadow prediction")
        agree.legend(loc="upper left")
    elif comparison.kind == "classification":
        classes = sorted({str(p.live) for p in pairs} | {str(p.shadow) for p in pairs})
        index = {c: i for i, c in enumerate(classes)}
        counts = [[0] * len(classes) for _ in classes]
        for p in pairs:
            counts[index[str(p.shadow)]][index[str(p.live)]] += 1
        agree.imshow(counts, cmap="Oranges")
        agree.set_xticks(range(len(classes)), classes, rotation=45)
        agree.set_yticks(range(len(classes)), classes)
        agree.set_xlabel("live answer")
        agree.set_ylabel("shadow answer")
    else:
        agree.text(0.5, 0.5, "no paired predictions", ha="center", va="center")
        agree.set_axis_off()
    agree.set_title(f"Live against shadow ({len(pairs)} rows)")
    every = comparison.live.latencies_ms + comparison.shadow.latencies_ms
    if every:  # the same bins for both sides, so their bars compare
        low, high = min(every), max(every)
        bins = [low + (high - low) * i / 40 for i in range(41)] if high > low else 1
        for side, color, name in (
            (comparison.live, LIVE_COLOR, "live"),
            (comparison.shadow, SHADOW_COLOR, "shadow"),
        ):
            if side.latencies_ms:
                latency.hist(side.latencies_ms, bins=bins, alpha=0.6, color=color, label=name)
    latency.set_xlabel("model server latency (ms)")
    latency.set_ylabel("requests")
    latency.set_title("Latency")
    latency.legend()
    figure.tight_layout()
    return figure


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


def _html(summary: dict[str, Any], picture: bytes) -> list[str]:
    e = html.escape
    sides = "".join(
        f"<tr><td>{name}</td><td>{e(summary[model])}</td>"
        + "".join(
            f"<td>{_number(summary[name][key])}</td>"
            for key in ("requests", "errors", "p50_ms", "p90_ms", "p99_ms", "max_ms")
        )
        + "</tr>"
        for name, model in (("live", "live_model"), ("shadow", "shadow_model"))
    )
    relay = ", ".join(f"{k}: {v}" for k, v in sorted(summary["relay"].items())) or "none logged"
    top = "".join(
        f"<tr><td>{e(t['request_id'])}</td><td>{_number(t['live'])}</td>"
        f"<td>{_number(t['shadow'])}</td><td>{_number(t['difference'] or '')}</td>"
        f"<td><code>{e(json.dumps(t['input'], default=str))}</code></td></tr>"
        for t in summary["top"]
    )
    sample = f"{summary['sample']:g}% sample, " if summary["sample"] is not None else ""
    return [
        f"<h1>Shadow {e(summary['shadow_model'])} against live {e(summary['live_model'])}</h1>",
        f"<p>From {e(summary['since'])} to {e(summary['until'])} UTC ({sample}"
        f"{'running' if summary['running'] else 'ended'}).</p>",
        f"<h2>{e(summary['verdict'])}</h2>",
        report_files.img(picture, "live against shadow, and latency"),
        "<h2>Requests</h2>",
        f"<p>{summary['paired_requests']} requests paired by request id; "
        f"{summary['unmatched_shadow']} shadow predictions without a live one. "
        f"Copies through the mirror relay, by how the shadow answered: {e(relay)} "
        "(502: nothing listened; 504: too slow; dropped: over the relay's cap).</p>",
        "<table><tr><th>side</th><th>model</th><th>requests</th><th>errors</th>"
        f"<th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr>{sides}</table>",
        "<h2>The pairs that differ most</h2>",
        "<table><tr><th>request id</th><th>live</th><th>shadow</th><th>|difference|</th>"
        f"<th>input (first row)</th></tr>{top}</table>"
        if top
        else "<p>No pair differs.</p>",
    ]
