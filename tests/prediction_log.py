"""Prediction log lines exactly as the serving slots write them, for the drift tests.

Until the serving slots' log and the drift report meet in one test, these lines stand in
for a slot's log: the same keys in the same order, `inputs` and `outputs` encoded by
MLflow's own JSON encoder as the slot encodes them (a DataFrame as a list of records).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
from mlflow.utils.proto_json_utils import NumpyEncoder, _get_jsonable_obj

WARMUP_ID = "mlops-warmup-0"


def _encode(value: Any) -> str:
    return json.dumps(_get_jsonable_obj(value, pandas_orient="records"), cls=NumpyEncoder)


def line(
    *,
    time: datetime.datetime,
    request_id: str,
    model: str,
    version: str,
    inputs: pd.DataFrame | None,
    outputs: Any,
    slot: str = "blue",
    status: int = 200,
) -> str:
    """One line: {"time", "request_id", "slot", "model", "version", "status",
    "latency_ms", "error", "inputs", "outputs"}."""
    rest = {
        "time": time.astimezone(datetime.UTC).isoformat(timespec="milliseconds"),
        "request_id": request_id,
        "slot": slot,
        "model": model,
        "version": version,
        "status": status,
        "latency_ms": 4.2,
        "error": None if status == 200 else "the model failed",
    }
    encoded_inputs = "null" if inputs is None else _encode(inputs)
    encoded_outputs = _encode(outputs) if status == 200 and outputs is not None else "null"
    return _join(rest, encoded_inputs, encoded_outputs)


def _join(rest: dict[str, Any], inputs: str, outputs: str) -> str:
    return json.dumps(rest)[:-1] + f', "inputs": {inputs}, "outputs": {outputs}' + "}\n"


def lines(
    frame: pd.DataFrame,
    predictions: Sequence[float],
    *,
    model: str,
    version: str,
    start: datetime.datetime,
    end: datetime.datetime,
    id_prefix: str = "req",
    slot: str = "blue",
) -> Iterator[str]:
    """One single-row request per row of `frame`, spread evenly from `start` to `end`,
    with request ids `<id_prefix>-<row number>`; a warm-up request first."""
    yield line(
        time=start,
        request_id=WARMUP_ID,
        model=model,
        version=version,
        inputs=frame.iloc[:1],
        outputs=list(predictions[:1]),
        slot=slot,
    )
    step = (end - start) / max(len(frame), 1)
    # Encoded once for all rows (as the slot encodes each request's frame), for speed.
    records = _get_jsonable_obj(frame, pandas_orient="records")
    for i, record in enumerate(records):
        rest = {
            "time": (start + step * i).astimezone(datetime.UTC).isoformat(timespec="milliseconds"),
            "request_id": f"{id_prefix}-{i}",
            "slot": slot,
            "model": model,
            "version": version,
            "status": 200,
            "latency_ms": 4.2,
            "error": None,
        }
        inputs = json.dumps([record], cls=NumpyEncoder)
        yield _join(rest, inputs, json.dumps([float(predictions[i])]))
