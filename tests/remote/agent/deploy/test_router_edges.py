"""The router's edges: a candidate's smallest weights, the versions nginx reports for a
candidate and a mirror, live traffic still proxied while a mirror copies it, and the
one-line summary at the top of the config. Pure rendering; no box, no mocks."""

from __future__ import annotations

from typing import Any

import pytest

from remote.agent.deploy import router, state

MODEL_1 = {"name": "taxi", "version": "1", "uri": "models:/taxi/1", "source": "models:/taxi/1"}
MODEL_2 = {**MODEL_1, "version": "2", "uri": "models:/taxi/2"}
MODEL_3 = {**MODEL_1, "version": "3", "uri": "models:/taxi/3"}
LIVE = {"slot": "blue", "model": MODEL_1}
CANDIDATE = {"slot": "green", "model": MODEL_2, "weight": 12.5}
MIRROR = {"slot": "shadow", "model": MODEL_3, "sample": 10}


def _state(**routing: Any) -> dict[str, Any]:
    return {**state.empty(), "revision": 7, **routing}


def _versions(config: str) -> str:
    return config.split("map $mlops_route $mlops_route_version {\n")[1].split("    default")[0]


@pytest.mark.parametrize(
    ("weight", "split"),
    [
        (0, None),  # a candidate at 0% takes nothing: no split at all
        (0.0, None),
        (0.01, "0.01% green;"),
        (1, "1% green;"),
        (99.99, "99.99% green;"),
    ],
)
def test_a_candidate_at_0_percent_gets_no_split_and_any_more_gets_its_share(
    weight: float, split: str | None
) -> None:
    config = router.render(_state(live=LIVE, candidate={**CANDIDATE, "weight": weight}))
    if split is None:
        assert "split_clients" not in config and "$http_x_canary" not in config
        assert "map $mlops_request_id $mlops_route {\n    default blue;\n}" in config
    else:
        assert f"    {split}\n    * blue;" in config
        assert "always  green;" in config


@pytest.mark.parametrize(
    ("routing", "versions"),
    [
        ({"live": LIVE}, ['blue "taxi/1";']),
        ({"live": LIVE, "candidate": CANDIDATE}, ['blue "taxi/1";', 'green "taxi/2";']),
        ({"live": LIVE, "mirror": MIRROR}, ['blue "taxi/1";', 'shadow "taxi/3";']),
        (
            {"live": LIVE, "candidate": CANDIDATE, "mirror": MIRROR},
            ['blue "taxi/1";', 'green "taxi/2";', 'shadow "taxi/3";'],
        ),
    ],
)
def test_every_slot_in_the_routing_has_its_version_for_the_answers_headers(
    routing: dict[str, Any], versions: list[str]
) -> None:
    config = router.render(_state(**routing))
    assert _versions(config) == "".join(f"    {version}\n" for version in versions)


def test_while_a_mirror_copies_requests_the_live_slot_still_answers_them() -> None:
    config = router.render(_state(live=LIVE, mirror=MIRROR))
    assert (
        "    location / {\n"
        "        proxy_pass http://mlops_$mlops_route;\n"
        "        mirror /__mlops/mirror;\n"
        "        mirror_request_body on;\n    }"
    ) in config


def test_the_summary_names_the_live_slot_the_candidate_and_the_mirror() -> None:
    assert router.summary(_state()) == "no model is live"
    assert router.summary(_state(live=LIVE, candidate=CANDIDATE, mirror=MIRROR)) == (
        "live blue (taxi/1), candidate green (taxi/2) at 12.5%, mirror to shadow (taxi/3) of 10%"
    )
    config = router.render(_state(live=LIVE, candidate=CANDIDATE))
    assert "Routing: live blue (taxi/1), candidate green (taxi/2) at 12.5%\n" in config


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("XGBoost_Taxi.v2-final", True),  # letters of any case, digits, . _ - are fine
        ("taxi$model", False),  # nginx would read a variable
        ("taxi\\model", False),
        ("taxi{model}", False),
        ("taxi\nmodel", False),
    ],
)
def test_a_version_label_is_kept_unless_nginx_could_misread_it(name: str, kept: bool) -> None:
    config = router.render(_state(live={"slot": "blue", "model": {**MODEL_1, "name": name}}))
    assert _versions(config) == (f'    blue "{name}/1";\n' if kept else "\n")
