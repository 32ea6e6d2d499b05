"""What a drift report reads on the box: the prediction log, the labels, the live model.

Standard library only. Each source has ONE reader here, so a change of its format is a
change of one function: `read_predictions` (the serving slots' JSONL log),
`read_labels` (what `fab monitor.labels` stored) and `live_model` (the deploy state).
The paths mirror remote/contract.py (the agent cannot import it); a test checks that
they agree.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..system import layout
from ..system.failure import AgentFailure

WARMUP_PREFIX = layout.WARMUP_ID  # the serving slots' own warm-up requests, never monitored

KIND_NO_MODEL = "no-model"
KIND_LABELS = "labels"

# Every log line starts with its time and request id (the serving slot writes those keys
# first), so lines outside the window are skipped without parsing their inputs.
_HEAD = re.compile(r'\{"time":\s*"([^"]+)",\s*"request_id":\s*"((?:[^"\\]|\\.)*)"')


@dataclass
class Predictions:
    """One model version's successful predictions in a window, one entry per input row."""

    inputs: dict[str, list[Any]] = field(default_factory=dict)  # column -> values (None: absent)
    outputs: list[Any] = field(default_factory=list)
    times: list[str] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    rows_in_request: list[int] = field(default_factory=list)
    requests: int = 0
    failed: int = 0  # this version's requests in the window that did not answer 200
    other_lines: int = 0  # other models' or versions' predictions in the window
    seen_ids: set[str] = field(default_factory=set)  # every logged request id, any time

    @property
    def rows(self) -> int:
        return len(self.outputs)


def log_lines(log_dir: str, slots: Iterable[str] = ("*",)) -> Iterator[tuple[str, Iterator[str]]]:
    """The prediction log's files, read as (slot, its lines): each of `slots`' (default:
    every slot's) `<slot>.jsonl` and its rotations `.1`, `.2`, ..., in name order; a
    missing file (a slot that never served) has none. The one reader of the log: what
    the lines mean is the caller's."""
    for pattern in slots:
        base = os.path.join(log_dir, f"{pattern}.jsonl")
        for path in sorted({*glob.glob(base), *glob.glob(f"{base}.[0-9]*")}):
            slot = os.path.basename(path).split(".jsonl")[0]
            yield slot, file_lines(path)


def file_lines(path: str) -> Iterator[str]:
    """A log file's lines (torn ones too: the caller parses); none if it does not exist."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            yield from handle
    except FileNotFoundError:
        return


def read_predictions(
    model: str, version: str, since: datetime.datetime, log_dir: str = layout.PREDICTION_LOG_DIR
) -> Predictions:
    """Read every slot's log (`<slot>.jsonl` and its rotations `.1`, `.2`, ...): the rows
    `model`/`version` predicted since `since` (UTC) with status 200, warm-ups left out.

    A line: {"time", "request_id", "slot", "model", "version", "status", "latency_ms",
    "inputs": [one record per row], "outputs": [one prediction per row] | null, "error"}.
    A request id seen twice for this version (live and shadow) counts once.
    """
    found = Predictions()
    start = since.astimezone(datetime.UTC).isoformat(timespec="milliseconds")[:23]
    taken: set[str] = set()
    for _slot, lines in log_lines(log_dir):
        for line in lines:
            try:
                head = _HEAD.match(line)
                if head is not None and head[1][:23] < start:  # before the window
                    request_id = head[2] if "\\" not in head[2] else json.loads(f'"{head[2]}"')
                    if not request_id.startswith(WARMUP_PREFIX):
                        found.seen_ids.add(request_id)
                    continue
                record = json.loads(line)
                request_id = str(record["request_id"])
                if request_id.startswith(WARMUP_PREFIX):
                    continue
                found.seen_ids.add(request_id)
                if str(record["time"])[:23] < start:
                    continue
                if (record.get("model"), str(record.get("version"))) != (model, version):
                    found.other_lines += 1
                    continue
                if request_id in taken:
                    continue
                taken.add(request_id)
                inputs, outputs = record.get("inputs"), record.get("outputs")
                ok = record.get("status") == 200 and isinstance(inputs, list)
                if not ok or not isinstance(outputs, list) or len(outputs) != len(inputs):
                    found.failed += 1
                    continue
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # not a log line (a torn last line of a file being written)
            found.requests += 1
            columns = found.inputs
            for row, output in zip(inputs, outputs, strict=True):
                row = row if isinstance(row, dict) else {}
                for column in row:
                    if column not in columns:
                        columns[column] = [None] * found.rows
                for column, values in columns.items():
                    values.append(row.get(column))
                found.outputs.append(output)
                found.times.append(record["time"])
                found.request_ids.append(request_id)
                found.rows_in_request.append(len(inputs))
    return found


def read_labels(labels_dir: str = layout.LABELS_DIR) -> dict[str, tuple[float, str]]:
    """request id -> (true value, its column's name), from every uploaded file in upload
    order: a later upload for the same request id corrects an earlier one."""
    labels: dict[str, tuple[float, str]] = {}
    for path in sorted(glob.glob(os.path.join(labels_dir, "*.jsonl"))):
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    item = json.loads(line)
                    labels[str(item["request_id"])] = (float(item["value"]), str(item["name"]))
                except (ValueError, KeyError, TypeError):
                    raise AgentFailure(
                        KIND_LABELS,
                        f"{path} line {number} is not a label: remove the file and upload "
                        "its labels again with `fab monitor.labels`.",
                    ) from None
    return labels


def live_model(state_file: str = layout.DEPLOY_STATE_FILE) -> tuple[str, str]:
    """(name, version) of the model the router sends live traffic to."""
    try:
        with open(state_file, encoding="utf-8") as handle:
            live = (json.load(handle) or {}).get("live") or {}
        model = live.get("model") or {}
        return str(model["name"]), str(model["version"])
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        raise AgentFailure(
            KIND_NO_MODEL,
            "No model is live on the box: give --model NAME@ALIAS, NAME/VERSION or a models:/ URI.",
        ) from None
