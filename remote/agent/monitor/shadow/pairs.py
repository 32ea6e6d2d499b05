"""A shadow's figures: live and shadow predictions paired by request id (standard library).

The live slots (blue, green) and the shadow slot each log every prediction they make
(deploy/slot_server/predlog.py); a mirrored request keeps its X-Request-ID, so the same
id in a live log and in the shadow's log is one request answered twice. From the pairs:
how often the two agree (classification: the same answer; regression: the absolute
difference, its mean and p95, and the share within a relative tolerance), each side's
latency and errors, and the pairs that differ most. The mirror relay's log
(deploy/router.py) adds what never
reached the shadow's own log: copies the shadow did not answer, or that were dropped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..drift.analysis import one_value
from ..predictions import WARMUP_PREFIX, file_lines, log_lines

DEFAULT_TOLERANCE = 0.05  # relative: |live - shadow| <= 5% of the larger of the two
TOP_DIFFERENCES = 10
MAX_CLASSES = 20  # integer answers with at most this many distinct values are classes


@dataclass(frozen=True)
class Record:
    """One logged prediction, as much of it as the report needs."""

    request_id: str
    time: str
    slot: str
    status: int
    latency_ms: float
    outputs: list[Any] | None
    first_input: dict[str, Any] | None = None


def read_records(
    log_dir: str, slots: Iterable[str], start: str, end: str = "\uffff"
) -> Iterator[Record]:
    """The predictions `slots` logged from `start` to `end` (ISO times, UTC), warm-ups
    left out: `<slot>.jsonl` and its rotations, torn lines skipped."""
    for slot, lines in log_lines(log_dir, slots):
        for line in lines:
            record = _record(line, slot)
            if record is not None and start[:23] <= record.time[:23] <= end[:23]:
                yield record


def _record(line: str, slot: str) -> Record | None:
    try:
        item = json.loads(line)
        request_id = str(item["request_id"])
        if request_id.startswith(WARMUP_PREFIX):
            return None
        inputs, outputs = item.get("inputs"), item.get("outputs")
        return Record(
            request_id=request_id,
            time=str(item["time"]),
            slot=str(item.get("slot") or slot),
            status=int(item["status"]),
            latency_ms=float(item["latency_ms"]),
            outputs=outputs if isinstance(outputs, list) else None,
            first_input=inputs[0] if isinstance(inputs, list) and inputs else None,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def read_relay(path: str, start: str, end: str = "\uffff") -> dict[str, int]:
    """How the mirror relay's copies ended, by status: forwarded copies the shadow slot
    answered (its status; 502 nothing listened, 504 it was too slow) and copies dropped
    at the relay's cap (`dropped`)."""
    counts: dict[str, int] = {}
    for line in file_lines(path):
        try:
            item = json.loads(line)
            if not start[:19] <= str(item["time"])[:19] <= end[:19]:
                continue
            if str(item.get("request_id", "")).startswith(WARMUP_PREFIX):
                continue  # the shadow's own check that copies reach it
            key = "dropped" if item.get("uri") != "/__mlops/shadow" else str(item["status"])
        except (ValueError, KeyError, TypeError):
            continue
        counts[key] = counts.get(key, 0) + 1
    return counts


@dataclass(frozen=True)
class Pair:
    request_id: str
    time: str
    live: Any
    shadow: Any
    first_input: dict[str, Any] | None
    difference: float | None = None  # regression: |live - shadow|


@dataclass
class Side:
    """One side's requests in the window: how many, how many failed, their latencies."""

    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def add(self, record: Record) -> None:
        self.requests += 1
        self.errors += record.status != 200
        self.latencies_ms.append(record.latency_ms)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.errors / self.requests if self.requests else 0.0,
            **{f"p{p}_ms": percentile(ordered, p) for p in (50, 90, 99)},
            "max_ms": ordered[-1] if ordered else None,
        }


@dataclass
class Comparison:
    live: Side
    shadow: Side
    pairs: list[Pair]  # one per row both sides answered (200), in time order
    kind: str  # "regression", "classification", or "none" (nothing paired)
    agreement: dict[str, Any]
    paired_requests: int
    unmatched_shadow: int  # shadow predictions with no live one (its live side not logged)

    def top(self, count: int = TOP_DIFFERENCES) -> list[Pair]:
        """The pairs that differ most (regression), or the first disagreements."""
        if self.kind == "regression":
            return sorted(self.pairs, key=lambda p: -(p.difference or 0.0))[:count]
        return [p for p in self.pairs if p.live != p.shadow][:count]


def compare(
    live: Iterable[Record], shadow: Iterable[Record], tolerance: float = DEFAULT_TOLERANCE
) -> Comparison:
    """Pair the two sides by request id, row by row, and measure their agreement."""
    live_side, shadow_side = Side(), Side()
    answered: dict[str, Record] = {}
    for record in live:
        live_side.add(record)
        if record.status == 200 and record.outputs is not None:
            answered[record.request_id] = record
    pairs: list[Pair] = []
    paired, unmatched = 0, 0
    seen: set[str] = set()
    for record in sorted(shadow, key=lambda r: r.time):
        shadow_side.add(record)
        if record.request_id in seen:
            continue
        seen.add(record.request_id)
        other = answered.get(record.request_id)
        if other is None:
            unmatched += 1
            continue
        if record.status != 200 or record.outputs is None or other.outputs is None:
            continue
        if len(record.outputs) != len(other.outputs):
            continue
        paired += 1
        for mine, theirs in zip(other.outputs, record.outputs, strict=True):
            pairs.append(
                Pair(
                    record.request_id,
                    other.time,
                    one_value(mine),
                    one_value(theirs),
                    other.first_input,
                )
            )
    kind = answer_kind([p.live for p in pairs] + [p.shadow for p in pairs])
    if kind == "regression":
        pairs = [
            Pair(p.request_id, p.time, p.live, p.shadow, p.first_input, abs(p.live - p.shadow))
            for p in pairs
        ]
    return Comparison(
        live_side,
        shadow_side,
        pairs,
        kind,
        agreement(pairs, kind, tolerance),
        paired,
        unmatched,
    )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def answer_kind(values: list[Any]) -> str:
    """regression for numbers, unless they are a few integers (JSON's 1, not 1.0: a
    regressor's 10.0 stays a number); classification otherwise."""
    if not values:
        return "none"
    if not all(_number(v) for v in values):
        return "classification"
    integers = not any(isinstance(v, float) for v in values)
    if integers and len(set(values)) <= MAX_CLASSES:
        return "classification"
    return "regression"


def within(live: float, shadow: float, tolerance: float) -> bool:
    return abs(live - shadow) <= tolerance * max(abs(live), abs(shadow))


def agreement(pairs: list[Pair], kind: str, tolerance: float) -> dict[str, Any]:
    if not pairs:
        return {"rows": 0}
    if kind == "classification":
        same = sum(p.live == p.shadow for p in pairs)
        return {"rows": len(pairs), "agreement_rate": same / len(pairs)}
    differences = sorted(p.difference or 0.0 for p in pairs)
    close = sum(within(p.live, p.shadow, tolerance) for p in pairs)
    return {
        "rows": len(pairs),
        "mean_abs_diff": sum(differences) / len(differences),
        "p95_abs_diff": percentile(differences, 95),
        "max_abs_diff": differences[-1],
        "within_tolerance": close / len(pairs),
        "tolerance": tolerance,
    }


def percentile(ordered: list[float], pct: float) -> float | None:
    """The nearest-rank percentile of sorted values; None without values."""
    if not ordered:
        return None
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]
