"""The AWS provider against moto's fake EC2: finding the box, start, stop, state."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

from remote.box.status import format_status, format_uptime
from remote.errors import AmbiguousBox, BoxNotFound, ConfigError, ProviderError, WaitTimeout
from remote.providers import State, get_provider
from remote.providers.aws import AwsProvider
from remote.settings import BoxSettings

Describe = Callable[[Any, str], dict[str, Any]]


def provider(settings: BoxSettings) -> tuple[AwsProvider, io.StringIO]:
    out = io.StringIO()
    return AwsProvider(settings, out=out), out


def set_moto_state(instance_id: str, name: str, code: int) -> None:
    """Put the fake instance in a state moto never holds on its own.

    moto's EC2 instances go from running to stopped (and back) within the API call, and
    moto's state manager (moto.moto_api.state_manager) has no model for EC2 instances in
    moto 5.2, so a transient state like `stopping` is set on moto's backend object.
    """
    backend = ec2_backends[DEFAULT_ACCOUNT_ID]["eu-west-1"]
    instance = backend.get_instance(instance_id)
    instance._state.name = name
    instance._state.code = code


def test_finds_the_box_by_its_tags_and_reports_its_state(
    ec2: Any, seed: Callable[..., Any], settings: BoxSettings, describe: Describe
) -> None:
    seed(ec2, name="other-box")
    seed(ec2, stack="prod")
    box = seed(ec2, instance_type="t3.large")

    state = get_provider(settings).state()

    actual = describe(ec2, box.instance_id)
    assert state.box_id == box.instance_id
    assert state.state is State.RUNNING
    assert state.instance_type == "t3.large"
    assert state.address == actual["PublicIpAddress"]
    assert state.started_at == actual["LaunchTime"]


def test_stop_stops_the_instance(
    ec2: Any, seeded_box: Any, settings: BoxSettings, describe: Describe
) -> None:
    aws, out = provider(settings)

    state = aws.stop(timeout_s=30)

    assert describe(ec2, seeded_box.instance_id)["State"]["Name"] == "stopped"
    assert state.state is State.STOPPED
    assert state.address is None
    assert state.started_at is None
    assert f"Waiting for {seeded_box.instance_id} to be stopped (up to 30s)..." in out.getvalue()


def test_stopping_a_stopped_box_is_a_no_op(
    ec2: Any, seeded_box: Any, settings: BoxSettings, describe: Describe
) -> None:
    ec2.stop_instances(InstanceIds=[seeded_box.instance_id])
    aws, out = provider(settings)

    state = aws.stop(timeout_s=30)

    assert state.state is State.STOPPED
    assert describe(ec2, seeded_box.instance_id)["State"]["Name"] == "stopped"
    assert out.getvalue() == ""  # nothing was waited for


def test_start_returns_the_new_public_ip(
    ec2: Any, seeded_box: Any, settings: BoxSettings, describe: Describe
) -> None:
    old_ip = describe(ec2, seeded_box.instance_id)["PublicIpAddress"]
    ec2.stop_instances(InstanceIds=[seeded_box.instance_id])
    aws, out = provider(settings)

    state = aws.start(timeout_s=60)

    actual = describe(ec2, seeded_box.instance_id)
    assert actual["State"]["Name"] == "running"
    assert state.state is State.RUNNING
    # moto, like EC2, hands out a fresh public IP at every start.
    assert state.address == actual["PublicIpAddress"] != old_ip
    assert aws.address() == state.address
    assert f"Waiting for {seeded_box.instance_id} to be running (up to 60s)..." in out.getvalue()


def test_starting_a_running_box_changes_nothing(
    ec2: Any, seeded_box: Any, settings: BoxSettings, describe: Describe
) -> None:
    ip = describe(ec2, seeded_box.instance_id)["PublicIpAddress"]
    aws, out = provider(settings)

    state = aws.start(timeout_s=60)

    assert state.state is State.RUNNING
    assert state.address == ip == describe(ec2, seeded_box.instance_id)["PublicIpAddress"]
    assert out.getvalue() == ""


def test_start_waits_out_a_stopping_box_before_starting_it(
    ec2: Any, seeded_box: Any, settings: BoxSettings, describe: Describe
) -> None:
    instance_id = seeded_box.instance_id
    ec2.stop_instances(InstanceIds=[instance_id])
    set_moto_state(instance_id, "stopping", 64)
    seen_at_start: list[str] = []
    polls = 0

    def finish_stopping_after_a_poll(**_: Any) -> None:
        # The lookup and the waiter's first poll see `stopping`; then the stop completes.
        nonlocal polls
        polls += 1
        if polls == 2:
            set_moto_state(instance_id, "stopped", 80)

    def record_state_at_start(**_: Any) -> None:
        seen_at_start.append(describe(ec2, instance_id)["State"]["Name"])

    aws, out = provider(settings)
    aws.ec2.meta.events.register("after-call.ec2.DescribeInstances", finish_stopping_after_a_poll)
    aws.ec2.meta.events.register("before-call.ec2.StartInstances", record_state_at_start)

    state = aws.start(timeout_s=10)

    assert seen_at_start == ["stopped"]  # EC2 refuses to start a stopping instance
    assert state.state is State.RUNNING
    assert describe(ec2, instance_id)["State"]["Name"] == "running"
    assert f"Waiting for {instance_id} to be stopped" in out.getvalue()


def test_a_box_stuck_stopping_times_out_with_a_clear_message(
    ec2: Any, seeded_box: Any, settings: BoxSettings
) -> None:
    set_moto_state(seeded_box.instance_id, "stopping", 64)
    aws, _ = provider(settings)

    with pytest.raises(
        WaitTimeout, match=rf"Timed out after 2s waiting for {seeded_box.instance_id} to be stopped"
    ):
        aws.start(timeout_s=2)


def test_start_without_a_public_ip_says_what_is_needed(
    ec2: Any, seed: Callable[..., Any], settings: BoxSettings
) -> None:
    box = seed(ec2, public_ip=False)
    ec2.stop_instances(InstanceIds=[box.instance_id])

    with pytest.raises(ProviderError, match=r"has no public address.*elasticIp.*public\s+subnet"):
        AwsProvider(settings, out=io.StringIO()).start(timeout_s=30)


def test_address_of_a_stopped_box_says_to_start_it(
    ec2: Any, seeded_box: Any, settings: BoxSettings
) -> None:
    ec2.stop_instances(InstanceIds=[seeded_box.instance_id])

    with pytest.raises(ProviderError, match=r"is stopped: start it with `fab box.start`"):
        AwsProvider(settings).address()


def test_no_box_says_to_run_pulumi_up(
    ec2: Any, seed: Callable[..., Any], settings: BoxSettings
) -> None:
    seed(ec2, stack="prod")

    with pytest.raises(BoxNotFound) as caught:
        AwsProvider(settings).state()

    message = str(caught.value)
    assert "pulumi up" in message
    assert "Stack=test" in message and "Name=mlops-test" in message and "eu-west-1" in message


def test_two_boxes_are_ambiguous_and_both_ids_are_named(
    ec2: Any, seed: Callable[..., Any], settings: BoxSettings
) -> None:
    first, second = seed(ec2), seed(ec2)

    with pytest.raises(AmbiguousBox) as caught:
        AwsProvider(settings).stop(timeout_s=30)

    assert first.instance_id in str(caught.value) and second.instance_id in str(caught.value)


def test_a_terminated_box_is_not_the_box(ec2: Any, seeded_box: Any, settings: BoxSettings) -> None:
    ec2.terminate_instances(InstanceIds=[seeded_box.instance_id])

    with pytest.raises(
        BoxNotFound, match=rf"only terminated ones: {seeded_box.instance_id}.*pulumi up"
    ):
        AwsProvider(settings).start(timeout_s=30)


def test_missing_region_is_a_config_error(
    aws_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    make_settings: Callable[..., BoxSettings],
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)

    with pytest.raises(ConfigError, match="No AWS region is set"):
        AwsProvider(make_settings(region=None)).state()


def test_status_shows_state_id_type_address_and_uptime(
    ec2: Any, seeded_box: Any, settings: BoxSettings, describe: Describe
) -> None:
    state = AwsProvider(settings).state()
    launched = describe(ec2, seeded_box.instance_id)["LaunchTime"]

    text = format_status(settings, state, now=launched + timedelta(hours=2, minutes=13))

    assert "state:     running" in text
    assert f"id:        {seeded_box.instance_id}" in text
    assert "type:      t3.xlarge" in text
    assert f"address:   {state.address}" in text
    assert "uptime:    2h 13m" in text


@pytest.mark.parametrize(
    ("elapsed", "shown"),
    [
        (timedelta(seconds=20), "<1m"),
        (timedelta(minutes=5, seconds=59), "5m"),
        (timedelta(hours=2, minutes=13), "2h 13m"),
        (timedelta(days=3, hours=4, minutes=30), "3d 4h"),
        (timedelta(seconds=-5), "<1m"),  # a clock a little behind AWS's
    ],
)
def test_format_uptime(elapsed: timedelta, shown: str) -> None:
    assert format_uptime(elapsed) == shown


def test_status_of_a_stopped_box_has_no_address_or_uptime(settings: BoxSettings) -> None:
    from remote.providers.base import BoxState

    text = format_status(
        settings,
        BoxState(State.STOPPED, "i-0123", None, "t3.xlarge", None),
        now=datetime(2025, 1, 1, tzinfo=UTC),
    )

    assert "state:     stopped" in text
    assert "address:   -" in text and "uptime:    -" in text
