"""What the router saw of a slot: its requests and errors since a point in its access log.

The router writes one JSON line per request (router.conf.tmpl's `mlops_router` format)
with the slot that answered, or the one it was routed to when nginx answered itself (a
502 from a slot that is down). A slot's errors are its 4xx and 5xx answers to
/invocations: MLflow answers 400 for a model's own exceptions, so 5xx alone would pass a
broken model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from . import paths

PREDICT_URI = "/invocations"


@dataclass
class Window:
    """A slot's /invocations requests in the router's log from `offset` on."""

    slot: str
    offset: int
    requests: int = 0
    errors: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def describe(self) -> str:
        return f"{self.requests} requests, {self.errors} errors ({self.error_rate:.1%})"


def log_offset(path: str = paths.ROUTER_LOG) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def read_new(window: Window, path: str = paths.ROUTER_LOG) -> Window:
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
        if entry.get("slot") != window.slot or entry.get("uri") != PREDICT_URI:
            continue
        window.requests += 1
        if int(entry.get("status", 0)) >= 400:
            window.errors += 1
    return window
