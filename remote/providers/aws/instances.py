"""The box's EC2 instance, found by its tags at every call, and the one table of its states.

A saved address or instance id is never trusted: the instance is the one tagged
Project=mlops-box, Stack=<stack>, Name=<name> that is not terminated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from botocore.exceptions import WaiterError

from remote.contract import PROJECT, box_tags
from remote.errors import AmbiguousBox, BoxNotFound, ProviderError, WaitTimeout
from remote.providers.aws.session import aws_errors
from remote.providers.base import BoxState, State
from remote.settings import BoxSettings

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import InstanceTypeDef

# The one table from EC2 instance states to the project's states. shutting-down and
# terminated are absent on purpose: such an instance is gone, not "the box".
EC2_STATES: dict[str, State] = {
    "pending": State.PENDING,
    "running": State.RUNNING,
    "stopping": State.STOPPING,
    "stopped": State.STOPPED,
}


def find_instance(ec2: EC2Client, settings: BoxSettings) -> InstanceTypeDef:
    """Return the one live instance tagged for this box; BoxNotFound or AmbiguousBox."""
    tags = box_tags(settings.stack, settings.name)
    filters: Any = [{"Name": f"tag:{key}", "Values": [value]} for key, value in tags.items()]
    found: list[InstanceTypeDef] = []
    with aws_errors(f"look up the box {settings.name}"):
        for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
            for reservation in page.get("Reservations", []):
                found.extend(reservation.get("Instances", []))
    live = [i for i in found if i.get("State", {}).get("Name") in EC2_STATES]
    where = (
        f"tagged Project={PROJECT}, Stack={settings.stack}, Name={settings.name} "
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


def state_of(instance: InstanceTypeDef) -> State:
    return EC2_STATES[instance.get("State", {}).get("Name", "")]


def box_state(instance: InstanceTypeDef) -> BoxState:
    state = state_of(instance)
    live = state in (State.PENDING, State.RUNNING)
    return BoxState(
        state=state,
        box_id=instance["InstanceId"],
        # An Elastic IP stays attached while stopped, but nothing answers there then.
        address=instance.get("PublicIpAddress") if live else None,
        instance_type=instance.get("InstanceType"),
        started_at=instance.get("LaunchTime") if state is State.RUNNING else None,
    )


def raise_waiter_error(
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
