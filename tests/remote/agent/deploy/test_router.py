"""The router's nginx config, rendered from the deploy state: the one routing template,
for blue-green, canary and shadow. Pure rendering; no box, no mocks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from remote.agent.deploy import router, state
from remote.system import agent

MODEL_1 = {"name": "taxi", "version": "1", "uri": "models:/taxi/1", "source": "models:/taxi/1"}
MODEL_2 = {**MODEL_1, "version": "2", "uri": "models:/taxi@challenger"}


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


def _routing(sample: float) -> str:
    current = {
        **state.empty(),
        "live": {"slot": "blue", "model": MODEL_1},
        "mirror": {"slot": "shadow", "model": {**MODEL_1, "version": "2"}, "sample": sample},
    }
    return router.render(current)


def test_the_router_hands_copies_to_the_relay_which_answers_at_once_and_forwards() -> None:
    config = _routing(10)
    main, relay = config.split("# The mirror relay")
    # the router: a copy of the sampled (or X-Shadow: always) requests, to the relay only,
    # on a fresh connection with a short timeout, keeping the request id
    assert "mirror /__mlops/mirror;" in main and "10% 1;" in main
    assert "always  1;" in main and "never   0;" in main
    mirror_location = main.split("location = /__mlops/mirror")[1]
    assert "proxy_pass http://127.0.0.1:8100$request_uri;" in mirror_location
    assert "proxy_read_timeout 1s;" in mirror_location
    assert "X-Request-ID $mlops_request_id" in mirror_location
    assert "mlops_shadow" not in main.split("# Which slot")[1]
    # the relay: answers at once, forwards to the shadow slot in the background, capped
    assert "listen 127.0.0.1:8100;" in relay and "empty_gif;" in relay
    assert "mirror /__mlops/shadow;" in relay and "limit_conn mlops_mirror 64;" in relay
    assert "proxy_ignore_client_abort on;" in relay
    assert "proxy_pass http://mlops_shadow$request_uri;" in relay
    assert "/var/log/nginx/mlops-mirror.log" in relay


def test_without_a_mirror_there_is_no_relay() -> None:
    config = router.render({**state.empty(), "live": {"slot": "blue", "model": MODEL_1}})
    assert "8100" not in config and "mirror" not in config.split("server {")[1]
