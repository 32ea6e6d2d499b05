"""The prediction log: one JSON line per prediction a slot makes, and its response headers.

`PredictionLog` wraps MLflow's own scoring app (ASGI) without touching how it parses
inputs: the slot's `predict` hands what MLflow parsed and what the model returned to
`capture()` (through a context variable, which MLflow's worker thread inherits), and the
middleware adds the request id, status and latency. Lines are written by a thread of
their own, off the request's path, to <dir>/<slot>.jsonl, rotated by size.

A line: {"time", "request_id", "slot", "model", "version", "status", "latency_ms",
"inputs", "outputs", "error"}; inputs and outputs as MLflow's JSON encodes them (a
DataFrame as a list of records), null when the request never reached the model.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import logging
import logging.handlers
import os
import queue
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

MAX_BYTES = 50 * 1024 * 1024
BACKUPS = 10
ERROR_CHARS = 500
LOGGED_PATH = "/invocations"

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_CAPTURE: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "mlops_prediction", default=None
)


def capture(key: str, value: Any) -> None:
    """Record what the model saw or said for the request being served (no-op outside one)."""
    found = _CAPTURE.get()
    if found is not None:
        found[key] = value


class Writer:
    """Writes log records from a queue on its own thread into a size-rotated file."""

    def __init__(self, path: str, encode: Callable[[Any], str]) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
        )
        self._encode = encode
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def put(self, record: dict[str, Any]) -> None:
        self._queue.put(record)

    def close(self, timeout_s: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)
        self._handler.close()

    def _run(self) -> None:
        while (record := self._queue.get()) is not None:
            self._handler.emit(logging.makeLogRecord({"msg": self._line(record), "args": None}))

    def _line(self, record: dict[str, Any]) -> str:
        """The record as one JSON line; inputs and outputs encoded by `encode` (MLflow's
        JSON encoder, which knows DataFrames and numpy arrays)."""
        data = {k: record.get(k) for k in ("inputs", "outputs")}
        rest = {k: v for k, v in record.items() if k not in data}
        try:
            parts = [f'"{k}": {"null" if v is None else self._encode(v)}' for k, v in data.items()]
        except (TypeError, ValueError) as exc:
            parts = ['"inputs": null', '"outputs": null', f'"log_error": {json.dumps(str(exc))}']
        return json.dumps(rest, default=str)[:-1] + ", " + ", ".join(parts) + "}"


class PredictionLog:
    """ASGI middleware: request id and identity headers on every response; a log line
    for every POST /invocations."""

    def __init__(self, app: App, *, slot: str, model: str, version: str, writer: Writer) -> None:
        self.app = app
        self.slot = slot
        self.model = model
        self.version = version
        self.writer = writer
        self._identity = [
            (b"x-model-slot", slot.encode()),
            (b"x-model-version", f"{model}/{version}".encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex
        logged = scope.get("method") == "POST" and scope.get("path") == LOGGED_PATH
        seen: dict[str, Any] = {"status": 0, "body": b""}
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in (b"x-model-slot", b"x-model-version", b"x-request-id")
                ]
                message = {
                    **message,
                    "headers": [*headers, *self._identity, (b"x-request-id", request_id.encode())],
                }
            elif message["type"] == "http.response.body" and logged and seen["status"] != 200:
                seen["body"] += message.get("body", b"")[: ERROR_CHARS * 4]
            await send(message)

        found: dict[str, Any] = {}
        token = _CAPTURE.set(found)
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            _CAPTURE.reset(token)
            if logged:
                self.writer.put(
                    self._record(request_id, seen, found, time.perf_counter() - started)
                )

    def _record(
        self, request_id: str, seen: dict[str, Any], found: dict[str, Any], seconds: float
    ) -> dict[str, Any]:
        status = int(seen["status"])
        return {
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            "request_id": request_id,
            "slot": self.slot,
            "model": self.model,
            "version": self.version,
            "status": status,
            "latency_ms": round(seconds * 1000, 3),
            "inputs": found.get("inputs"),
            "outputs": found.get("outputs") if status == 200 else None,
            "error": None if status == 200 else _error(seen["body"]),
        }


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            text = value.decode("latin-1").strip()
            return text[:200] or None
    return None


def _error(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    with contextlib.suppress(ValueError, AttributeError):
        text = str(json.loads(text).get("message", text))
    return text.strip()[:ERROR_CHARS]
