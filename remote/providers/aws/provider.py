"""The AWS provider: the EC2 instance `pulumi up` made, and the stack's wiring around it."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from ipaddress import IPv4Network
from typing import TYPE_CHECKING, Any, TextIO

from botocore.exceptions import WaiterError

from remote.changes import Changed
from remote.errors import ConfigError, ProviderError, WaitTimeout
from remote.providers.aws import front_door_rule, security_group, stack
from remote.providers.aws.console import (
    BEGIN_FINGERPRINTS,
    ConsoleFingerprints,
    console_text,
    parse_host_key_fingerprints,
)
from remote.providers.aws.instances import (
    box_state,
    find_instance,
    raise_waiter_error,
    state_of,
)
from remote.providers.aws.session import aws_errors, ec2_client
from remote.providers.base import (
    AccessChange,
    AccessCheck,
    BoxState,
    Database,
    HostKeyEvidence,
    State,
)
from remote.settings import BoxSettings
from remote.waiting import wait_for

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

# How often the botocore waiters poll DescribeInstances (at most; short waits poll about
# ten times); the waiter's MaxAttempts is the timeout divided by the delay.
WAITER_DELAY_S = 5
# GetConsoleOutput is a rate-limited API, and the console changes slowly.
CONSOLE_POLL_S = 10.0


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
        current = state_of(instance)
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
        current = state_of(instance)
        if current is State.STOPPED:
            return box_state(instance)
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
        return box_state(find_instance(self.ec2, self.settings))

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

    # -- the verbs a cloud needs ----------------------------------------------------------

    def create(self) -> Changed:
        raise ConfigError(
            f"The AWS box is made by Pulumi: run `pulumi up` on stack {self.settings.stack}."
        )

    def destroy(self) -> bool:
        raise ConfigError(
            f"The AWS box is removed by Pulumi: run `pulumi destroy` on stack "
            f"{self.settings.stack}."
        )

    def host_key_evidence(self, timeout_s: float) -> HostKeyEvidence:
        """The SHA256 fingerprints cloud-init printed on the instance's console."""
        instance_id = find_instance(self.ec2, self.settings)["InstanceId"]
        source = f"the console output of {instance_id}"
        seen = [ConsoleFingerprints(frozenset(), complete=False)]

        def probe() -> ConsoleFingerprints | None:
            seen[0] = parse_host_key_fingerprints(console_text(self.ec2, instance_id))
            return seen[0] if seen[0].complete else None

        # Out of time, a block without its END line still lists keys the instance printed;
        # no block at all is an empty record, which the caller refuses.
        with contextlib.suppress(WaitTimeout):
            wait_for(
                probe,
                what=f"the SSH host key fingerprints in {source}",
                timeout_s=timeout_s,
                poll_s=CONSOLE_POLL_S,
                out=self._out,
            )
        if seen[0].complete:
            # Older images print MD5 fingerprints only, which are no evidence.
            note = "(its fingerprint block lists no SHA256 fingerprint)"
        else:
            note = (
                f"(no {BEGIN_FINGERPRINTS} block within {timeout_s:.0f}s: cloud-init prints "
                "it at the instance's first boot only, and EC2 keeps a boot's console output "
                "for an hour at least, not for ever)"
            )
        return HostKeyEvidence(source, fingerprints=seen[0].fingerprints, note=note)

    def allow_ssh_from(self, ip: str | None, echo_url: str) -> AccessChange:
        access = security_group.allow_my_ip(self.settings, ip, echo_url, ec2=self.ec2)
        hint = security_group.pulumi_drift_hint(self.settings, access.cidr)
        changed = Changed([access.cidr] if access.changed else [])
        return AccessChange(access.describe(), changed, hint if changed else None)

    def front_door_access(self, cidr: IPv4Network) -> AccessCheck:
        return front_door_rule.front_door_access(self.ec2, self.settings, cidr)

    def artifact_bucket(self) -> str | None:
        return stack.find_artifact_bucket(self.settings)

    def database(self) -> Database:
        return stack.find_database(self.settings)

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
                    raise_waiter_error(exc, instance_id, target, timeout_s)
        except BaseException:
            out.write("\n")
            raise
        out.write(f" {target} after {time.monotonic() - started:.0f}s\n")
        out.flush()
