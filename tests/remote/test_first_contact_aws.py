"""First contact with the AWS box: its host key is pinned only if the EC2 console lists it.

Real: the AWS provider on moto (the instance, its lookup by tags, GetConsoleOutput's
request and decoding), a real sshd on loopback offering host key A, the project's
connection and known_hosts. The stand-in: moto answers GetConsoleOutput with one fixed
kernel log (moto/ec2/responses/general.py, SAMPLE_CONSOLE_OUTPUT) and cannot be told
another, because nothing boots in moto to write a console. Where a test needs cloud-init's
block on the console, a botocore `before-call` handler (the hook botocore's own Stubber
uses) answers that one operation with the recorded console text; every other call still
goes to moto. The tests where the console never shows the block use moto's own answer.
"""

from __future__ import annotations

import base64
import io
import os
import pwd
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from remote.errors import HostKeyMismatch, HostKeyUnverified
from remote.providers.aws.provider import AwsProvider
from remote.settings import BoxSettings
from remote.ssh import config_entry as ssh
from remote.ssh import known_hosts as host_keys
from remote.ssh.first_contact import wait_and_pin
from tests.remote.conftest import SeededBox
from tests.remote.sshd import Sshd, fingerprint_line, public_key_of, running_sshd

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cloud_init_console"
# Ubuntu 22.04's first boot on EC2 (see the fixtures' README); its block is replaced by
# one for the test's own sshd keys, rendered as cloud-init and util-linux's logger do.
JAMMY = (FIXTURES / "ubuntu-22.04-cloud-init-24.1.txt").read_bytes().decode()
PREFIX = "<14>May 14 09:12:35 cloud-init: "
SSH_TIMEOUT_S = 20


def cloud_init_console(*host_keys_printed: Path, end_line: bool = True) -> str:
    """The recorded console with cloud-init's fingerprint and key blocks for these keys."""
    block = [PREFIX + "#" * 61, PREFIX + "-----BEGIN SSH HOST KEY FINGERPRINTS-----"]
    block += [PREFIX + fingerprint_line(key) for key in host_keys_printed]
    if end_line:
        block += [PREFIX + "-----END SSH HOST KEY FINGERPRINTS-----", PREFIX + "#" * 61]
        block += ["-----BEGIN SSH HOST KEY KEYS-----"]
        block += [Path(f"{key}.pub").read_text().strip() for key in host_keys_printed]
        block += ["-----END SSH HOST KEY KEYS-----"]
    start = JAMMY.index(PREFIX + "#")
    end = JAMMY.index("-----END SSH HOST KEY KEYS-----") + len("-----END SSH HOST KEY KEYS-----")
    text = JAMMY[:start] + "\r\n".join(block) + JAMMY[end:]
    return text if end_line else JAMMY[:start] + "\r\n".join(block)


def answer_console_with(ec2: Any, text: str) -> None:
    """GetConsoleOutput answers `text` (base64, as EC2 sends it); nothing else changes."""

    def answer(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        parsed = {"Output": base64.b64encode(text.encode()).decode(), "ResponseMetadata": {}}
        return AWSResponse("https://ec2.test/", 200, {}, None), parsed

    ec2.meta.events.register("before-call.ec2.GetConsoleOutput", answer)


@dataclass
class AwsBox:
    settings: BoxSettings
    provider: AwsProvider
    progress: io.StringIO
    server: Sshd
    key_a: Path  # what the sshd offers
    key_b: Path  # another host key
    instance_id: str
    warnings: list[str]

    def first_contact(
        self, *, trust_first_key: bool = False, timeout_s: float = SSH_TIMEOUT_S
    ) -> None:
        wait_and_pin(
            self.settings,
            self.provider,
            "127.0.0.1",
            timeout_s,
            trust_first_key=trust_first_key,
            port=self.server.port,
            warn=self.warnings.append,
        )


@pytest.fixture
def aws_box(
    ec2: Any,
    seeded_box: SeededBox,
    make_settings: Callable[..., BoxSettings],
    tmp_path: Path,
) -> Iterator[AwsBox]:
    settings = make_settings(user=pwd.getpwuid(os.getuid()).pw_name)
    progress = io.StringIO()
    provider = AwsProvider(settings, ec2=ec2, out=progress)
    with running_sshd(settings, tmp_path / "sshd") as (server, key_a, key_b):
        yield AwsBox(settings, provider, progress, server, key_a, key_b, seeded_box.instance_id, [])


def nothing_pinned(box: AwsBox) -> bool:
    return not ssh.known_hosts_path(box.settings).exists()


def test_a_key_the_console_lists_is_pinned(aws_box: AwsBox, ec2: Any) -> None:
    answer_console_with(ec2, cloud_init_console(aws_box.key_b, aws_box.key_a))

    aws_box.first_contact()

    assert host_keys.pinned_keys(aws_box.settings) == [public_key_of(aws_box.key_a)]
    assert aws_box.warnings == []
    # The block was there at the first look: no wait was shown.
    assert aws_box.progress.getvalue() == ""


def test_a_key_the_console_does_not_list_is_refused_and_nothing_pinned(
    aws_box: AwsBox, ec2: Any
) -> None:
    answer_console_with(ec2, cloud_init_console(aws_box.key_b))

    with pytest.raises(HostKeyMismatch) as info:
        aws_box.first_contact()

    message = str(info.value)
    assert f"the console output of {aws_box.instance_id} does not list" in message
    assert "ssh-ed25519 SHA256:" in message and "\n" not in message
    assert nothing_pinned(aws_box)


def test_a_console_without_the_block_is_refused_after_the_timeout(aws_box: AwsBox) -> None:
    # moto's own console output: a kernel log, no cloud-init block.
    with pytest.raises(HostKeyUnverified) as info:
        aws_box.first_contact(timeout_s=2)

    message = str(info.value)
    assert "`fab box.start --trust-first-key`" in message
    assert f"The console output of {aws_box.instance_id} vouched for no SSH host key" in message
    assert "within 2s" in message and "\n" not in message
    assert nothing_pinned(aws_box)
    assert (
        f"Waiting for the SSH host key fingerprints in the console output of "
        f"{aws_box.instance_id} (up to 2s)..."
    ) in aws_box.progress.getvalue()


def test_trust_first_key_pins_the_first_key_with_a_warning(aws_box: AwsBox) -> None:
    aws_box.first_contact(trust_first_key=True)

    assert host_keys.pinned_keys(aws_box.settings) == [public_key_of(aws_box.key_a)]
    fingerprint = fingerprint_line(aws_box.key_a).split()[1]
    assert aws_box.warnings == [
        # paramiko names a host on a port other than 22 as OpenSSH does, [host]:port.
        f"Warning: pinned the first host key {aws_box.settings.name} "
        f"([127.0.0.1]:{aws_box.server.port}) offered, "
        f"ssh-ed25519 {fingerprint}, on trust (--trust-first-key): the console output of "
        f"{aws_box.instance_id} vouched for no key."
    ]
    # The console was looked at once, not waited for.
    assert aws_box.progress.getvalue() == ""


def test_trust_first_key_does_not_override_a_console_that_lists_other_keys(
    aws_box: AwsBox, ec2: Any
) -> None:
    answer_console_with(ec2, cloud_init_console(aws_box.key_b))

    with pytest.raises(HostKeyMismatch, match="does not list"):
        aws_box.first_contact(trust_first_key=True)

    assert nothing_pinned(aws_box)
    assert aws_box.warnings == []


def test_a_block_without_its_end_line_is_waited_for_then_used(aws_box: AwsBox, ec2: Any) -> None:
    answer_console_with(ec2, cloud_init_console(aws_box.key_a, end_line=False))

    aws_box.first_contact(timeout_s=2)

    assert host_keys.pinned_keys(aws_box.settings) == [public_key_of(aws_box.key_a)]
    assert "Waiting for the SSH host key fingerprints" in aws_box.progress.getvalue()


def test_a_pinned_key_needs_no_console(aws_box: AwsBox) -> None:
    host_keys.pin_host_key(aws_box.settings, *public_key_of(aws_box.key_a))

    # moto's console lists nothing, and no opt-in is given: the pinned key decides.
    aws_box.first_contact()

    assert host_keys.pinned_keys(aws_box.settings) == [public_key_of(aws_box.key_a)]
    assert aws_box.progress.getvalue() == ""
