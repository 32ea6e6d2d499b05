"""What the router saw of a slot: its requests and errors since a point in its access log,
and the canary's gate: whether a candidate's own requests pass.

The router writes one JSON line per request (router.conf.tmpl's `mlops_router` format)
with the slot it was routed to (`route`) and the slot that answered (`slot`: the slot's
own header, or the route when nginx answered itself, such as a 502 from a slot that is
down). A slot's requests are its /invocations routed to it or answered by it; its errors
are its 4xx and 5xx answers: MLflow answers 400 for a model's own exceptions, so 5xx
alone would pass a broken model. A request routed to the slot that another slot answered
(a retry) or that nginx answered because the slot did not is an upstream failure: it
fails the canary's gate even when the client got a 200.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from ..system import layout

PREDICT_URI = "/invocations"
# What nginx answers itself when it cannot reach or hear from an upstream.
UNREACHED = (502, 504)

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


@dataclass
class Window:
    """A slot's /invocations requests in the router's log from `offset` on."""

    slot: str
    offset: int
    requests: int = 0
    errors: int = 0
    upstream_failures: int = 0
    total: int = 0  # every slot's /invocations in the window: the slot's share is of these
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def share(self) -> float:
        return self.requests / self.total if self.total else 0.0

    @property
    def p99_ms(self) -> float | None:
        return percentile(self.latencies_ms, 99)

    def describe(self) -> str:
        return f"{self.requests} requests, {self.errors} errors ({self.error_rate:.1%})"

    def figures(self) -> dict[str, Any]:
        """The window as the deploy history keeps it."""
        p99 = self.p99_ms
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 4),
            "p99_ms": None if p99 is None else round(p99, 1),
            "upstream_failures": self.upstream_failures,
            "total": self.total,
            "share": round(self.share, 4),
        }


def percentile(values: list[float], pct: float) -> float | None:
    """The nearest-rank percentile; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))]


def log_offset(path: str = layout.ROUTER_LOG) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def read_new(window: Window, path: str = layout.ROUTER_LOG) -> Window:
    """Count the complete lines written since the last read into `window`."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return window
    if size < window.offset:  # the log was rotated: read the new file from its start
        window.offset = 0
    with open(path, "rb") as handle:
        handle.seek(window.offset)
        data = handle.read(size - window.offset)
    complete = data[: data.rfind(b"\n") + 1]
    window.offset += len(complete)
    for line in complete.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("uri") == PREDICT_URI:
            count(window, entry)
    return window


def count(window: Window, entry: dict[str, Any]) -> None:
    """Add one /invocations line of the router's log to `window`."""
    window.total += 1
    routed, answered = entry.get("route"), entry.get("slot")
    if window.slot not in (routed, answered):
        return
    status = int(entry.get("status", 0))
    window.requests += 1
    if status >= 400:
        window.errors += 1
    tries = str(entry.get("upstream_status", ""))
    retried = routed == window.slot and answered != window.slot
    if retried or "," in tries or (status in UNREACHED and tries in ("", "-", str(status))):
        window.upstream_failures += 1
    with contextlib.suppress(TypeError, ValueError):
        window.latencies_ms.append(float(entry.get("request_time", 0)) * 1000)


@dataclass(frozen=True)
class Gate:
    """What a canary step must show: its error rate (4xx and 5xx) at most `max_error_rate`,
    its p99 at most `max_p99_ms` (0: not judged), from at least `min_requests` requests."""

    max_error_rate: float
    min_requests: int
    max_p99_ms: float = 0.0


def judge(window: Window, gate: Gate, *, final: bool) -> tuple[str, str]:
    """(PASS, FAIL or INCONCLUSIVE, why) for a candidate's window.

    During the bake (`final` False) only what cannot get better fails it early: a router
    that could not reach the slot, or an error rate above the gate over enough requests.
    At the end of the bake the latency is judged too; too few requests is inconclusive,
    never a pass.
    """
    figures = window.describe()
    if window.upstream_failures:
        return FAIL, (
            f"the router could not get an answer from {window.slot} for "
            f"{window.upstream_failures} of its requests ({figures})"
        )
    enough = window.requests >= gate.min_requests
    if enough and window.error_rate > gate.max_error_rate:
        return FAIL, f"{figures}: error rate above {gate.max_error_rate:.1%}"
    if not final:
        return INCONCLUSIVE, figures
    if not enough:
        return INCONCLUSIVE, f"{figures}: fewer than the {gate.min_requests} needed to judge"
    p99 = window.p99_ms
    if gate.max_p99_ms and p99 is not None and p99 > gate.max_p99_ms:
        return FAIL, f"{figures}, p99 {p99:.0f} ms: above {gate.max_p99_ms:.0f} ms"
    latency = f", p99 {p99:.0f} ms" if p99 is not None else ""
    return PASS, f"{figures}{latency}"
