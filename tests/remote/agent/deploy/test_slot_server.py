"""A model slot's server around MLflow's scoring app: one prediction-log line per
prediction, and every answer names its slot. A stand-in app; no box."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from remote.agent.deploy.slot_server import predlog


async def _scoring_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Stands in for MLflow's app: answers 200 with the prediction, or 400."""
    await receive()
    ok = scope["path"] == "/invocations" and scope["query_string"] != b"fail"
    if ok:
        predlog.capture("inputs", [{"x": 1}])
        predlog.capture("outputs", [2.5])
    await send(
        {
            "type": "http.response.start",
            "status": 200 if ok else 400,
            "headers": [(b"content-type", b"application/json"), (b"x-model-slot", b"wrong")],
        }
    )
    body = b'{"predictions": [2.5]}' if ok else b'{"message": "bad input"}'
    await send({"type": "http.response.body", "body": body})


def _call(app: Any, path: str, headers: list[tuple[bytes, bytes]], query: bytes = b"") -> Any:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": headers,
        "query_string": query,
    }
    # Not asyncio.run: it leaves no current event loop, which Pulumi's tests need later.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(app(scope, receive, send))
    finally:
        loop.close()
    return dict(sent[0]["headers"])


def test_each_prediction_is_one_json_line_and_every_answer_names_the_slot(tmp_path: Path) -> None:
    writer = predlog.Writer(str(tmp_path / "green.jsonl"), json.dumps)
    app = predlog.PredictionLog(
        _scoring_app, slot="green", model="taxi", version="2", writer=writer
    )
    headers = _call(app, "/invocations", [(b"x-request-id", b"req-1")])
    failed = _call(app, "/invocations", [], query=b"fail")
    _call(app, "/ping", [])
    writer.close()
    assert headers[b"x-model-slot"] == b"green" and headers[b"x-model-version"] == b"taxi/2"
    assert headers[b"x-request-id"] == b"req-1"
    assert failed[b"x-model-slot"] == b"green" and len(failed[b"x-request-id"]) == 32
    lines = [json.loads(line) for line in (tmp_path / "green.jsonl").read_text().splitlines()]
    assert len(lines) == 2  # /ping is not a prediction
    first, second = lines
    assert first["request_id"] == "req-1" and first["status"] == 200
    assert first["inputs"] == [{"x": 1}] and first["outputs"] == [2.5]
    assert (first["slot"], first["model"], first["version"]) == ("green", "taxi", "2")
    assert second["status"] == 400 and second["error"] == "bad input"
    assert second["inputs"] is None and second["outputs"] is None
