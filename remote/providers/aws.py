"""The AWS provider: the EC2 instance `pulumi up` made, found by its tags at every call.

A saved address or instance id is never trusted: the instance is the one tagged
Project=mlops-box, Stack=<stack>, Name=<name> that is not terminated.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from botocore.exceptions import WaiterError

from remote.aws_session import aws_errors, ec2_client
from remote.errors import AmbiguousBox, BoxNotFound, ProviderError, WaitTimeout
from remote.providers.base import BoxState, State
from remote.settings import PULUMI_PROJECT, BoxSettings

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import InstanceTypeDef

# How long `fab box.start` / `box.stop` wait for the box: a cold start of a large EC2
# instance (or a stop that flushes a big page cache) can take several minutes.
# How often the botocore waiters poll DescribeInstances (at most; short waits poll about
# ten times); the waiter's MaxAttempts is the timeout divided by the delay.
WAITER_DELAY_S = 5

# The one table from EC2 instance states to the project's states. shutting-down and
# terminated are absent on purpose: such an instance is gone, not "the box".
EC2_STATES: dict[str, State] = {
    "pending": State.PENDING,
    "running": State.RUNNING,
    "stopping": State.STOPPING,
    "stopped": State.STOPPED,
}


class AwsProvider:
    """The box as an EC2 instance; see `remote.providers.base.Provider` for the contract."""

    def __init__(
        self,
        settings: BoxSettings,
        *,
        ec2: EC2Client | None = None,
        out: TextIO | None = None,
    ) -> None:
        self.settings = settings
        self._ec2 = ec2
        self._out = out

    @property
    def ec2(self) -> EC2Client:
        # Created on first use, so building a provider never needs credentials.
        if self._ec2 is None:
            self._ec2 = ec2_client(self.settings)
        return self._ec2

    def start(self, timeout_s: float) -> BoxState:
        deadline = time.monotonic() + timeout_s
        instance = find_instance(self.ec2, self.settings)
        instance_id = instance["InstanceId"]
        current = _state_of(instance)
        if current is State.STOPPING:
            self._wait(instance_id, "instance_stopped", "stopped", deadline, timeout_s)
            current = State.STOPPED
        if current is State.STOPPED:
            with aws_errors(f"start {instance_id}"):
                self.ec2.start_instances(InstanceIds=[instance_id])
            current = State.PENDING
        if current is State.PENDING:
            self._wait(instance_id, "instance_running", "running", deadline, timeout_s)
        # Read again: a stopped-then-started instance has a new public IP.
        state = self.state()
        if state.address is None:
            raise ProviderError(
                f"{instance_id} is running but has no public address: give it one with "
                "`pulumi config set elasticIp true` and `pulumi up`, or put it in a public "
                "subnet that assigns public IPs."
            )
        return state

    def stop(self, timeout_s: float) -> BoxState:
        deadline = time.monotonic() + timeout_s
        instance = find_instance(self.ec2, self.settings)
        instance_id = instance["InstanceId"]
        current = _state_of(instance)
        if current is State.STOPPED:
            return _box_state(instance)
        if current is State.PENDING:
            # EC2 refuses to stop an instance that is still pending.
            self._wait(instance_id, "instance_running", "running", deadline, timeout_s)
            current = State.RUNNING
        if current is State.RUNNING:
            with aws_errors(f"stop {instance_id}"):
                self.ec2.stop_instances(InstanceIds=[instance_id])
        self._wait(instance_id, "instance_stopped", "stopped", deadline, timeout_s)
        return self.state()

    def state(self) -> BoxState:
        return _box_state(find_instance(self.ec2, self.settings))

    def address(self) -> str:
        state = self.state()
        if state.state is not State.RUNNING:
            raise ProviderError(
                f"Box {self.settings.name} ({state.box_id}) is {state.state.value}: "
                "start it with `fab box.start`."
            )
        if state.address is None:
            raise ProviderError(
                f"{state.box_id} has no public address: enable elasticIp or use a public subnet."
            )
        return state.address

    def _wait(
        self, instance_id: str, waiter_name: str, target: str, deadline: float, timeout_s: float
    ) -> None:
        """Run a botocore waiter until `deadline`, showing that it waits.

        `timeout_s` is the whole operation's timeout, the one the user gave and is told of.
        """
        out = self._out if self._out is not None else sys.stderr
        left = max(1.0, deadline - time.monotonic())
        delay = max(1, min(WAITER_DELAY_S, math.floor(left / 10)))
        attempts = max(1, math.ceil(left / delay))
        out.write(f"Waiting for {instance_id} to be {target} (up to {timeout_s:.0f}s)...")
        out.flush()
        started = time.monotonic()
        waiter: Any = self.ec2.get_waiter(waiter_name)  # type: ignore[call-overload]
        try:
            with aws_errors(f"wait for {instance_id} to be {target}"):
                try:
                    waiter.wait(
                        InstanceIds=[instance_id],
                        WaiterConfig={"Delay": delay, "MaxAttempts": attempts},
                    )
                except WaiterError as exc:
                    _raise_waiter_error(exc, instance_id, target, timeout_s)
        except BaseException:
            out.write("\n")
            raise
        out.write(f" {target} after {time.monotonic() - started:.0f}s\n")
        out.flush()


def find_instance(ec2: EC2Client, settings: BoxSettings) -> InstanceTypeDef:
    """Return the one live instance tagged for this box; BoxNotFound or AmbiguousBox."""
    tags = {"Project": PULUMI_PROJECT, "Stack": settings.stack, "Name": settings.name}
    filters: Any = [{"Name": f"tag:{key}", "Values": [value]} for key, value in tags.items()]
    found: list[InstanceTypeDef] = []
    with aws_errors(f"look up the box {settings.name}"):
        for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
            for reservation in page.get("Reservations", []):
                found.extend(reservation.get("Instances", []))
    live = [i for i in found if i.get("State", {}).get("Name") in EC2_STATES]
    where = (
        f"tagged Project={PULUMI_PROJECT}, Stack={settings.stack}, Name={settings.name} "
        f"in {settings.region or 'the default region'}"
    )
    if not live:
        gone = ", ".join(i["InstanceId"] for i in found)
        raise BoxNotFound(
            f"No EC2 instance {where}"
            + (f" (only terminated ones: {gone})" if gone else "")
            + f": create it with `pulumi up` on stack {settings.stack}, or check box.stack, "
            "box.name and box.region."
        )
    if len(live) > 1:
        ids = ", ".join(sorted(i["InstanceId"] for i in live))
        raise AmbiguousBox(
            f"{len(live)} EC2 instances are {where}: {ids}. Terminate the extra ones, "
            "or give each box its own stack or name."
        )
    return live[0]


def _state_of(instance: InstanceTypeDef) -> State:
    return EC2_STATES[instance.get("State", {}).get("Name", "")]


def _box_state(instance: InstanceTypeDef) -> BoxState:
    state = _state_of(instance)
    live = state in (State.PENDING, State.RUNNING)
    return BoxState(
        state=state,
        box_id=instance["InstanceId"],
        # An Elastic IP stays attached while stopped, but nothing answers there then.
        address=instance.get("PublicIpAddress") if live else None,
        instance_type=instance.get("InstanceType"),
        started_at=instance.get("LaunchTime") if state is State.RUNNING else None,
    )


def _raise_waiter_error(
    exc: WaiterError, instance_id: str, target: str, timeout_s: float
) -> NoReturn:
    reason = str(exc.kwargs.get("reason", ""))
    if "Max attempts exceeded" in reason:
        raise WaitTimeout(
            f"Timed out after {timeout_s:.0f}s waiting for {instance_id} to be {target}. "
            "Check it with `fab box.status` or in the EC2 console."
        ) from None
    if "terminal failure" not in reason:  # an API error the waiter did not retry
        raise ProviderError(f"Cannot wait for {instance_id} to be {target}: {reason}") from None
    last: Any = exc.last_response or {}
    states = [
        i.get("State", {}).get("Name")
        for r in last.get("Reservations", [])
        for i in r.get("Instances", [])
    ]
    now = states[0] if states else "unknown"
    raise ProviderError(
        f"{instance_id} went to state {now} instead of {target}. "
        "Check it with `fab box.status` or in the EC2 console."
    ) from None
