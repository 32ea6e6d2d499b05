"""Concept drift: the model's error on labelled predictions, over time, against the error
its training run measured on held-out rows (`val_rmse`).

Labels join predictions by request id. A label is used when its request is one of this
model version's predictions in the window and carried one row (a request of several
rows has one id for several predictions); every other label is counted by why it was
not used, never dropped silently. Residuals are label minus prediction: positive when
the model predicts too little.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .stats import HISTOGRAM_BINS

if TYPE_CHECKING:
    import pandas as pd

GENERIC_LABEL = "label"
# Below this many labelled predictions an error rise is shown but not judged.
MIN_LABELS = 30
MAX_BUCKETS = 24
# (name, pandas frequency, seconds): the first that cuts the window in <= MAX_BUCKETS.
BUCKETS = (
    ("5 min", "5min", 300),
    ("15 min", "15min", 900),
    ("1 h", "1h", 3600),
    ("3 h", "3h", 3 * 3600),
    ("6 h", "6h", 6 * 3600),
    ("12 h", "12h", 12 * 3600),
    ("1 day", "1D", 86400),
    ("7 days", "7D", 7 * 86400),
)


@dataclass(frozen=True)
class LabelCounts:
    stored: int  # labels on the box (the latest per request id)
    used: int
    other_target: int  # named after another column than this model's target
    multi_row: int  # for a request of several rows
    elsewhere: int  # for another model, version or time than this report's
    unknown: int  # for a request id no prediction log on the box has


@dataclass(frozen=True)
class ErrorBucket:
    start: str
    labelled: int
    rmse: float
    bias: float


@dataclass(frozen=True)
class ConceptDrift:
    labelled: int
    rmse: float | None
    val_rmse: float | None
    rise: float | None  # rmse / val_rmse - 1
    max_error_rise: float
    drifted: bool
    note: str  # why there is no verdict, if there is none
    bucket: str
    buckets: list[ErrorBucket]
    bias: float | None  # mean residual now
    residual_std: float | None
    reference_bias: float | None  # on the reference sample (training rows)
    reference_residual_std: float | None
    residuals: dict[str, Any]  # the residual histogram, reference and current


def join_labels(
    current: pd.DataFrame,
    labels: dict[str, tuple[float, str]],
    seen_ids: set[str],
    target: str | None,
) -> tuple[pd.DataFrame, LabelCounts]:
    """The labelled rows of `current` (time, prediction, label) and what became of
    every label."""
    import pandas as pd

    single = set(current.loc[current["rows_in_request"] == 1, "request_id"])
    several = set(current["request_id"]) - single
    used: dict[str, float] = {}
    other_target = multi_row = elsewhere = unknown = 0
    for request_id, (value, name) in labels.items():
        if target is not None and name not in (GENERIC_LABEL, target):
            other_target += 1
        elif request_id in single:
            used[request_id] = value
        elif request_id in several:
            multi_row += 1
        elif request_id in seen_ids:
            elsewhere += 1
        else:
            unknown += 1
    rows = current[current["request_id"].isin(used.keys())]
    labelled = pd.DataFrame(
        {
            "time": rows["time"].to_numpy(),
            "prediction": pd.to_numeric(rows["prediction"], errors="coerce").to_numpy(),
            "label": rows["request_id"].map(used).to_numpy(dtype=float),
        }
    ).dropna()
    counts = LabelCounts(len(labels), len(labelled), other_target, multi_row, elsewhere, unknown)
    return labelled, counts


def bucket_for(window_s: float) -> tuple[str, str]:
    """(name, pandas frequency) of the time buckets for a window this long."""
    for name, frequency, seconds in BUCKETS:
        if window_s / seconds <= MAX_BUCKETS:
            return name, frequency
    return BUCKETS[-1][0], BUCKETS[-1][1]


def concept_drift(
    labelled: pd.DataFrame,
    reference: pd.DataFrame,
    target: str | None,
    val_rmse: float | None,
    max_error_rise: float,
    window_s: float,
) -> ConceptDrift:
    import numpy as np
    import pandas as pd

    residual = labelled["label"] - labelled["prediction"]
    rmse = float(np.sqrt(np.mean(residual**2))) if len(residual) else None
    rise = rmse / val_rmse - 1 if rmse is not None and val_rmse else None
    note = ""
    if val_rmse is None:
        note = "the training run logged no val_rmse to compare with"
    elif len(labelled) < MIN_LABELS:
        note = f"{len(labelled)} labelled predictions; at least {MIN_LABELS} are needed to judge"
    drifted = not note and rise is not None and rise > max_error_rise

    name, frequency = bucket_for(window_s)
    buckets = []
    if len(labelled):
        times = pd.to_datetime(labelled["time"], utc=True, format="ISO8601")
        grouped = residual.groupby(times.dt.floor(frequency).to_numpy())
        for start, values in grouped:
            buckets.append(
                ErrorBucket(
                    pd.Timestamp(start).isoformat(),
                    len(values),
                    float(np.sqrt(np.mean(values**2))),
                    float(values.mean()),
                )
            )

    ref_residual = None
    if target is not None and {target, "prediction"} <= set(reference.columns):
        ref_residual = (
            pd.to_numeric(reference[target], errors="coerce")
            - pd.to_numeric(reference["prediction"], errors="coerce")
        ).dropna()
    return ConceptDrift(
        labelled=len(labelled),
        rmse=rmse,
        val_rmse=val_rmse,
        rise=rise,
        max_error_rise=max_error_rise,
        drifted=bool(drifted),
        note=note,
        bucket=name,
        buckets=buckets,
        bias=float(residual.mean()) if len(residual) else None,
        residual_std=float(residual.std()) if len(residual) > 1 else None,
        reference_bias=float(ref_residual.mean()) if ref_residual is not None else None,
        reference_residual_std=float(ref_residual.std()) if ref_residual is not None else None,
        residuals=_histogram(ref_residual, residual),
    )


def _histogram(reference: pd.Series | None, current: pd.Series) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    ref = reference if reference is not None else pd.Series([], dtype=float)
    both = pd.concat([ref, current]).to_numpy()
    if not len(both):
        return {}
    edges = np.histogram_bin_edges(both, bins=HISTOGRAM_BINS)
    return {
        "type": "histogram",
        "edges": [float(e) for e in edges],
        "reference": (np.histogram(ref.to_numpy(), edges)[0] / max(len(ref), 1)).tolist(),
        "current": (np.histogram(current.to_numpy(), edges)[0] / max(len(current), 1)).tolist(),
    }
