"""Shadow mode's controller parts: the checks of the commands' arguments and what a
promote deploys. No box, no mocks. The shadow report's parts and the mirror's routing
are tested in tests/remote/agent/."""

from __future__ import annotations

import pytest

from remote.deploy import apply
from remote.deploy import shadow as controller
from remote.deploy.plan import check_rate
from remote.errors import ConfigError

MODEL = {"name": "taxi", "version": "1", "uri": "models:/taxi/1", "source": "models:/taxi/1"}


@pytest.mark.parametrize(
    ("sample", "duration", "message"),
    [
        ("0", "0", "--sample is 0"),
        ("100.5", "0", "--sample is 100.5"),
        ("ten", "0", "--sample is 'ten'"),
        # nginx's split_clients counts hundredths: these would render 0% or another share
        ("0.001", "0", "--sample is 0.001: give a percent from 0.01 to 100, in steps of 0.01"),
        ("12.345", "0", "--sample is 12.345"),
        ("10", "-1", "--duration is -1"),
        ("10", "soon", "--duration is 'soon'"),
    ],
)
def test_bad_arguments_are_one_sentence(sample: str, duration: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        controller.plan("models:/taxi/2", sample, duration)


def test_a_good_plan() -> None:
    plan = controller.plan(" models:/taxi@challenger ", "12.5", "3600")
    assert (plan.model_uri, plan.sample, plan.duration_s) == ("models:/taxi@challenger", 12.5, 3600)
    assert controller.plan("models:/taxi/2", "0.01", "0").sample == 0.01
    assert controller.plan("models:/taxi/2", "0.29", "0").sample == 0.29  # 0.29 is not exact
    with pytest.raises(ConfigError, match="--model is missing"):
        controller.plan("", "10", "0")
    with pytest.raises(ConfigError, match="--tolerance is 1"):
        check_rate("tolerance", "1")


def test_promote_deploys_the_version_the_shadow_served_not_where_an_alias_points_now() -> None:
    model = {**MODEL, "version": "7", "uri": "models:/taxi@challenger"}
    assert apply.promote_uri(model) == "models:/taxi/7"
    assert apply.promote_uri({**MODEL, "uri": "runs:/0123abcd/model"}) == "runs:/0123abcd/model"
