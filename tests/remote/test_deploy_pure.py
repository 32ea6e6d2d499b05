"""Serving's pure parts: argument checks, the router template, the state file, the bake's
count, the prediction log middleware and the status text. No box, no mocks."""

from __future__ import annotations

import asyncio
import datetime
import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from remote import contract
from remote.agent.deploy import gates, router, state
from remote.agent.deploy.slot_server import predlog
from remote.agent.system import layout
from remote.agent.system.failure import AgentFailure
from remote.deploy import status
from remote.deploy.plan import BlueGreenPlan, check_model_uri, check_requirements, env_key
from remote.errors import ConfigError
from remote.system import agent

MODEL_1 = {"name": "taxi", "version": "1", "uri": "models:/taxi/1", "source": "models:/taxi/1"}
MODEL_2 = {**MODEL_1, "version": "2", "uri": "models:/taxi@challenger"}


def test_the_idle_auto_stop_counts_a_running_transition_as_busy() -> None:
    # the idle auto-stop counts a running transition as busy by this pattern
    assert fnmatch.fnmatch(f"{layout.TRANSITION_UNIT}.service", contract.DEPLOY_UNIT_PATTERN)


@pytest.mark.parametrize(
    "uri",
    [
        "models:/taxi-duration@challenger",
        "models:/taxi-duration/3",
        "models:/m-870f1b2151504d3caae4d469becc6d32",
        "runs:/7e924cecc4724defb25e92f47d5a8bb6/model",
        "s3://bucket/path/model",
    ],
)
def test_model_uris_mlflow_resolves_are_taken(uri: str) -> None:
    assert check_model_uri(f" {uri} ") == uri


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("", "--model is missing"),
        ("taxi-duration", "is not a model URI"),
        ("models:/", "is not a model URI"),
        ("models:/a/b/c", "models:/<name>@<alias>"),
        ("models:/a@b@c", "models:/<name>@<alias>"),
        ("runs:/xyz/model", "runs:/<run id>/<artifact path>"),
        ("models:/taxi/1\nrm -rf", "is not a model URI"),
    ],
)
def test_bad_model_uris_are_refused_saying_what_to_give(uri: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_model_uri(uri)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bake_s": -1}, "--bake is -1"),
        ({"termination_wait_s": 10**9}, "--termination-wait"),
        ({"max_error_rate": 1.5}, "--max-error-rate is 1.5"),
        ({"bake_s": "soon"}, "--bake is 'soon'"),
    ],
)
def test_bad_deploy_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        BlueGreenPlan("models:/taxi/1", **kwargs)
    assert message in str(refused.value)


def test_an_environment_is_named_by_its_requirements_in_any_order_and_the_python() -> None:
    one = env_key(["mlflow==3.1", "pandas==2.2"], "3.11.2")
    assert one == env_key(["pandas==2.2", "mlflow==3.1"], "3.11.2")
    assert one != env_key(["mlflow==3.1", "pandas==2.3"], "3.11.2")
    assert one != env_key(["mlflow==3.1", "pandas==2.2"], "3.12.3")


def test_a_requirement_that_reads_as_a_pip_option_is_refused() -> None:
    assert check_requirements(["mlflow==3.1", "numpy>=1.24; python_version>'3'"])
    with pytest.raises(ConfigError, match="not a package"):
        check_requirements(["--index-url=http://evil"])


# -- the router template ------------------------------------------------------------------


def _state(**routing: Any) -> dict[str, Any]:
    return {**state.empty(), "revision": 7, **routing}


def test_the_router_sends_everything_to_the_live_slot_and_names_it_on_errors_too() -> None:
    config = router.render(_state(live={"slot": "green", "model": MODEL_2}))
    assert "listen 127.0.0.1:8000;" in config
    assert "map $mlops_request_id $mlops_route {\n    default green;\n}" in config
    assert 'green "taxi/2";' in config
    assert "proxy_pass http://mlops_$mlops_route;" in config
    assert "add_header X-Model-Slot $mlops_answered_slot always;" in config
    assert "add_header X-Model-Version $mlops_answered_version always;" in config
    assert "split_clients" not in config and "mirror" not in config.split("server {")[1]
    assert "{{" not in config
    # The same routing renders the same file, whatever else changed in the state.
    assert config == router.render(
        {**_state(live={"slot": "green", "model": MODEL_2}), "revision": 9}
    )


def test_with_nothing_live_the_router_answers_503_saying_how_to_deploy() -> None:
    config = router.render(_state())
    assert "return 503" in config and "fab deploy.blue-green" in config
    assert "proxy_pass" not in config


def test_a_candidate_gets_its_weight_per_request_and_a_header_forces_a_side() -> None:
    config = router.render(
        _state(
            live={"slot": "blue", "model": MODEL_1},
            candidate={"slot": "green", "model": MODEL_2, "weight": 12.5},
        )
    )
    assert 'split_clients "${mlops_request_id}" $mlops_split {\n    12.5% green;\n    * blue;' in (
        config
    )
    assert "always  green;" in config and "never   blue;" in config
    full = router.render(
        _state(
            live={"slot": "blue", "model": MODEL_1},
            candidate={"slot": "green", "model": MODEL_2, "weight": 100},
        )
    )
    assert "split_clients" not in full and "default green;" in full


def test_a_mirror_copies_a_sample_to_its_slot() -> None:
    config = router.render(
        _state(
            live={"slot": "blue", "model": MODEL_1},
            mirror={"slot": "shadow", "model": MODEL_2, "sample": 10},
        )
    )
    assert "mirror /__mlops/mirror;" in config
    assert "10% 1;" in config
    assert "proxy_pass http://mlops_shadow$request_uri;" in config


def test_a_version_label_nginx_could_misread_is_left_out() -> None:
    odd = {**MODEL_1, "name": 'evil"; return 200 "x'}
    config = router.render(_state(live={"slot": "blue", "model": odd}))
    assert "evil" not in config.split("# Edits here")[1].split("\n", 1)[1]


def test_the_template_travels_in_the_bundle_and_renders_from_the_zip(tmp_path: Path) -> None:
    zipped = tmp_path / "agent.zip"
    zipped.write_bytes(agent.bundle()[1])
    script = "from mlops_agent.deploy import router, state; print(router.render(state.empty()))"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(zipped)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "return 503" in done.stdout


# -- the state file -----------------------------------------------------------------------


def test_the_state_is_written_whole_and_only_when_it_changed(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    assert state.load(path) == state.empty()
    with state.changing(path) as current:
        current["revision"] = 3
    assert json.loads(Path(path).read_text())["revision"] == 3
    mtime = os.stat(path).st_mtime_ns
    with state.changing(path) as current:
        pass
    assert os.stat(path).st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_failed_change_writes_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    with pytest.raises(RuntimeError), state.changing(path) as current:
        current["live"] = {"slot": "blue"}
        raise RuntimeError("nginx refused")
    assert state.load(path)["live"] is None


def test_a_running_deploy_is_refused_by_name_and_a_dead_one_is_closed() -> None:
    current = state.empty()
    current["transition"] = {
        "revision": 4,
        "kind": "blue-green",
        "model_uri": "models:/taxi/2",
        "phase": "preparing",
        "holder": state.holder_of(os.getpid()),
        "by": "ann@laptop",
        "started": "2026-01-01T00:00:00+00:00",
        "step": "preparing",
        "log": ["fetching"],
    }
    with pytest.raises(AgentFailure) as refused:
        state.refuse_if_busy(current)
    assert refused.value.kind == "busy"
    assert "a blue-green of models:/taxi/2 (revision 4" in refused.value.sentence
    assert "by ann@laptop" in refused.value.sentence
    current["transition"]["holder"] = {"pid": os.getpid(), "start": -1}  # a reused pid
    state.refuse_if_busy(current)
    assert current["transition"] is None
    assert current["history"][-1]["outcome"] == "interrupted"
    assert current["history"][-1]["log"] == ["fetching"]


# -- the bake's count ----------------------------------------------------------------------


def _line(slot: str, status_code: int, uri: str = "/invocations") -> str:
    return json.dumps({"slot": slot, "uri": uri, "status": status_code}) + "\n"


def test_the_bake_counts_the_slots_prediction_errors_4xx_included(tmp_path: Path) -> None:
    log = tmp_path / "router.log"
    log.write_text(_line("blue", 500))
    window = gates.Window("green", gates.log_offset(str(log)))
    with log.open("a") as handle:
        handle.write(_line("green", 200) + _line("green", 400) + _line("green", 200, "/ping"))
        handle.write(_line("blue", 502) + _line("green", 502) + '{"slot": "green", "ur')
    gates.read_new(window, str(log))
    assert (window.requests, window.errors) == (3, 2)
    with log.open("a") as handle:
        handle.write('i": "/invocations", "status": 200}\n')
    gates.read_new(window, str(log))
    assert (window.requests, window.errors) == (4, 2)
    log.write_text(_line("green", 200))  # rotated: a new, shorter file
    gates.read_new(window, str(log))
    assert window.requests == 5 and window.describe() == "5 requests, 2 errors (40.0%)"


# -- the prediction log -------------------------------------------------------------------


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


# -- the status text ----------------------------------------------------------------------


def test_status_says_what_serves_where_and_what_happened_last() -> None:
    current = _state(
        live={"slot": "green", "model": MODEL_2},
        previous={"slot": "blue", "model": MODEL_1},
        slots={
            "blue": {"model": MODEL_1, "retire_at": "2026-01-01T00:10:00+00:00"},
            "green": {"model": MODEL_2},
        },
    )
    current["last"] = {
        "revision": 7,
        "kind": "blue-green",
        "model_uri": "models:/taxi@challenger",
        "slot": "green",
        "outcome": "live",
        "finished": "2026-01-01T00:00:00+00:00",
    }
    units = {
        slot: {"port": port, "active": "active", "enabled": slot == "green"}
        for slot, port in layout.SLOT_PORTS.items()
    }
    answer = {"state": current, "slots": units, "nginx": "active", "router_configured": True}
    text = status.describe_status(
        answer, "box", datetime.datetime(2026, 1, 1, 0, 0, 0, tzinfo=datetime.UTC)
    )
    assert "router nginx active on 127.0.0.1:8000, revision 7" in text
    assert "live      green  taxi/2  (models:/taxi@challenger)" in text
    assert "stopped in 600s by a timer" in text
    assert "Revision 7 (blue-green of models:/taxi@challenger) is live in slot green." in text
