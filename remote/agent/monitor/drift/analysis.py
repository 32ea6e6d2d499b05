"""One drift report from its inputs: the reference sample, the logged predictions, the
labels. Pure: no files, no MLflow; `report` gathers the inputs and `render` draws.

The reference sample (the training run's reference/reference.csv) holds the model's
input columns, the target and `prediction`. The inputs are the signature's columns (or,
without a signature, the reference's columns the requests carry too); the target is the
one column left besides `prediction`. Nothing is filtered on the target: every logged
prediction in the window is monitored, labelled or not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from . import concept as drift_concept
from . import stats
from .concept import ConceptDrift, LabelCounts
from .stats import ColumnDrift, Quality

if TYPE_CHECKING:
    import pandas as pd

    from ..predictions import Predictions

PREDICTION = "prediction"


@dataclass(frozen=True)
class Options:
    """The thresholds a report judges by: the controller chooses them (remote/monitor/options.py
    owns their defaults), the agent keeps none of its own."""

    drift_share: float
    max_error_rise: float


@dataclass
class Report:
    model: str
    version: str
    since: str
    until: str
    requests: int
    rows: int
    failed: int
    reference_rows: int
    target: str | None
    options: Options
    columns: list[ColumnDrift]
    prediction: ColumnDrift | None
    quality: Quality
    concept: ConceptDrift | None
    labels: LabelCounts | None
    distributions: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def share(self) -> float:
        return len(self.drifted_columns) / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.columns) and self.share >= self.options.drift_share

    @property
    def reasons(self) -> list[str]:
        """Why the report says drift; empty when it does not."""
        found = []
        if self.dataset_drift:
            found.append(
                f"{len(self.drifted_columns)} of {len(self.columns)} input columns drifted "
                f"({self.share:.0%} >= {self.options.drift_share:.0%})"
            )
        if self.prediction is not None and self.prediction.drifted:
            found.append("the predictions drifted")
        if self.concept is not None and self.concept.drifted and self.concept.rise is not None:
            found.append(
                f"the error rose {self.concept.rise:.0%} over val_rmse "
                f"(more than {self.options.max_error_rise:.0%})"
            )
        return found

    @property
    def drift(self) -> bool:
        return bool(self.reasons)

    def summary(self) -> dict[str, Any]:
        """The report as JSON-able data (NaN as null)."""
        data = asdict(self)
        data.pop("distributions")
        data.update(
            drift=self.drift,
            reasons=self.reasons,
            drifted_columns=self.drifted_columns,
            share=self.share,
            dataset_drift=self.dataset_drift,
        )
        safe: dict[str, Any] = _json_safe(data)
        return safe


def analyse(
    reference: pd.DataFrame,
    predictions: Predictions,
    labels: dict[str, tuple[float, str]],
    *,
    signature: list[dict[str, Any]] | None,
    val_rmse: float | None,
    model: str,
    version: str,
    since: str,
    until: str,
    window_s: float,
    options: Options,
) -> Report:
    import pandas as pd

    current = pd.DataFrame(predictions.inputs, index=range(predictions.rows))
    logged = set(predictions.inputs)
    notes: list[str] = []
    if signature:
        declared = {str(c["name"]): str(c.get("type", "")) for c in signature}
    else:
        declared = {c: "" for c in reference.columns if c != PREDICTION and c in logged}
        notes.append(
            "The model has no column signature: its inputs are taken to be the "
            "reference's columns the requests carry."
        )
    leftover = [c for c in reference.columns if c not in declared and c != PREDICTION]
    target = leftover[0] if len(leftover) == 1 else None
    if len(leftover) > 1:
        notes.append(
            f"The reference's columns {', '.join(leftover)} are neither inputs nor "
            "`prediction`: no target known, labels must be named `label`."
        )
    absent = [c for c in declared if c not in reference.columns]
    if absent:
        notes.append(f"The reference sample lacks the inputs {', '.join(absent)}: not tested.")
    tested = {c: t for c, t in declared.items() if c in reference.columns and c in logged}
    kinds = {c: stats.kind_of(reference[c], t or None) for c, t in tested.items()}

    cleaned = {
        c: (stats.clean(reference[c], k), stats.clean(current[c], k)) for c, k in kinds.items()
    }
    columns = [stats.column_drift(c, *cleaned[c], k) for c, k in kinds.items()]
    distributions = {c: stats.distribution(*cleaned[c], k) for c, k in kinds.items()}
    outputs = pd.Series([one_value(o) for o in predictions.outputs], dtype=object)
    prediction = None
    if PREDICTION in reference.columns:
        kind = stats.kind_of(reference[PREDICTION])
        pair = (stats.clean(reference[PREDICTION], kind), stats.clean(outputs, kind))
        prediction = stats.column_drift(PREDICTION, *pair, kind)
        distributions[PREDICTION] = stats.distribution(*pair, kind)
    else:
        notes.append("The reference has no `prediction` column: prediction drift not tested.")

    quality = stats.quality(
        cleaned,
        kinds,
        (len(reference), len(current)),
        new_columns=sorted(logged - set(declared)),
        missing_columns=sorted(c for c in declared if c not in logged),
    )
    concept = counts = None
    if labels:
        meta = pd.DataFrame(
            {
                "time": predictions.times,
                "request_id": predictions.request_ids,
                "rows_in_request": predictions.rows_in_request,
                "prediction": outputs,
            }
        )
        labelled, counts = drift_concept.join_labels(meta, labels, predictions.seen_ids, target)
        concept = drift_concept.concept_drift(
            labelled, reference, target, val_rmse, options.max_error_rise, window_s
        )
    return Report(
        model=model,
        version=version,
        since=since,
        until=until,
        requests=predictions.requests,
        rows=predictions.rows,
        failed=predictions.failed,
        reference_rows=len(reference),
        target=target,
        options=options,
        columns=columns,
        prediction=prediction,
        quality=quality,
        concept=concept,
        labels=counts,
        distributions=distributions,
        notes=notes,
    )


def one_value(output: Any) -> Any:
    """A row's prediction: a number or class, or the single value of a one-key record."""
    if isinstance(output, dict) and len(output) == 1:
        return next(iter(output.values()))
    return None if isinstance(output, (dict, list)) else output


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
