"""`fab monitor.labels FILE`: ground truth for logged predictions, checked here, kept on the box.

A labels file is CSV or JSON lines with two columns: `request_id` (the X-Request-Id a
prediction was answered with) and the true value, in a column named as the model's
training target (`duration_min` for the example) or `label`. Every row is checked here
first; a file with anything wrong uploads nothing.

On the box each upload is one file of its own in LABELS_DIR, written atomically (temp
file, then rename) and never changed after: `<the box's UTC time>-<content hash>.jsonl`. A later
upload for the same request id corrects an earlier one; the same file twice is one
upload. The drift report joins them to predictions by request id.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remote.changes import Changed
from remote.contract import LABELS_DIR, MONITOR_DIR
from remote.errors import LabelsError
from remote.system import files
from remote.system.files import RemoteFile
from remote.system.run import Connection, check, run, sudo

REQUEST_ID = "request_id"
GENERIC = "label"
MAX_ID_CHARS = 200  # the serving slots keep at most this much of an X-Request-Id
CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
COLUMNS_HINT = (
    f"give `{REQUEST_ID}` and one value column, named as the model's training target "
    f"(e.g. duration_min) or `{GENERIC}`"
)


@dataclass(frozen=True)
class Labels:
    name: str  # the value column's name: the target's, or "label"
    values: dict[str, float]  # request id -> true value, in file order

    def content(self) -> bytes:
        lines = (
            json.dumps({"request_id": rid, "value": value, "name": self.name})
            for rid, value in self.values.items()
        )
        return ("\n".join(lines) + "\n").encode()

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.content()).hexdigest()[:16]


def read(path: Path) -> Labels:
    """The labels in `path`, checked; LabelsError names the first problem."""
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + JSONL_SUFFIXES:
        raise LabelsError(f"{path} is not a .csv or .jsonl file: {COLUMNS_HINT}.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsError(f"Cannot read {path}: {exc}.") from None
    rows = _csv_rows(path, text) if suffix in CSV_SUFFIXES else _jsonl_rows(path, text)
    name = ""
    values: dict[str, float] = {}
    for number, row in rows:
        if not name:
            name = _value_column(path, list(row))
        elif set(row) != {REQUEST_ID, name}:
            raise LabelsError(
                f"{path} line {number} has the columns {', '.join(map(str, row))}, not "
                f"{REQUEST_ID}, {name} as before: {COLUMNS_HINT}."
            )
        request_id = str(row[REQUEST_ID] if row[REQUEST_ID] is not None else "").strip()
        if not request_id or len(request_id) > MAX_ID_CHARS:
            raise LabelsError(
                f"{path} line {number}: the request id {request_id!r} is empty or longer "
                f"than {MAX_ID_CHARS} characters."
            )
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in request_id):
            raise LabelsError(
                f"{path} line {number}: the request id {request_id!r} has a control "
                "character; no served request has one."
            )
        if request_id in values:
            raise LabelsError(f"{path} line {number}: request id {request_id!r} is there twice.")
        values[request_id] = _number(path, number, name, row[name])
    if not values:
        raise LabelsError(f"{path} holds no labels: {COLUMNS_HINT}.")
    return Labels(name, values)


def _csv_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(text.splitlines())
    for row in reader:
        if None in row or any(v is None for v in row.values()):
            raise LabelsError(
                f"{path} line {reader.line_num} has {len(row)} fields, not the header's "
                f"{len(reader.fieldnames or [])}."
            )
        yield reader.line_num, {k.strip(): v for k, v in row.items()}


def _jsonl_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict):
            raise LabelsError(f"{path} line {number} is not a JSON object: {COLUMNS_HINT}.")
        yield number, row


def _value_column(path: Path, columns: list[str]) -> str:
    others = [c for c in columns if c != REQUEST_ID]
    if REQUEST_ID in columns and len(others) == 1:
        return others[0]
    raise LabelsError(f"{path} has the columns {', '.join(columns) or '(none)'}: {COLUMNS_HINT}.")


def _number(path: Path, number: int, name: str, value: Any) -> float:
    try:
        result = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        result = math.nan
    if not math.isfinite(result):
        raise LabelsError(
            f"{path} line {number}: {name} is {value!r}, not a number (labels are the true "
            "values the model predicts)."
        )
    return result


@dataclass(frozen=True)
class Uploaded:
    path: str  # on the box
    count: int
    changed: Changed


def upload(conn: Connection, labels: Labels) -> Uploaded:
    """Keep `labels` on the box as one new file, unless this very upload is there already."""
    existing = check(conn, sudo(f"sh -c {shlex.quote(f'ls {LABELS_DIR}/*-{labels.digest}.jsonl')}"))
    if existing.ok and existing.stdout.strip():
        return Uploaded(existing.stdout.split()[0], len(labels.values), Changed())
    run(
        conn,
        sudo(f"install -d -m 750 {MONITOR_DIR} {LABELS_DIR}"),
        what=f"make {LABELS_DIR}",
        error=LabelsError,
    )
    # The box's clock, not this machine's: uploads from several laptops are corrections
    # in the order the box received them (the drift report reads the files in name order).
    stamp = run(conn, "date -u +%Y%m%dT%H%M%S.%NZ", what="read the box's clock", error=LabelsError)
    path = f"{LABELS_DIR}/{stamp.strip()}-{labels.digest}.jsonl"
    files.write(conn, RemoteFile(path, labels.content(), 0o640))
    return Uploaded(path, len(labels.values), Changed([path]))
