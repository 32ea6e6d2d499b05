"""The instance's console output, and the SSH host key fingerprints cloud-init prints there.

At an instance's first boot cloud-init's keys_to_console module runs `ssh-keygen -l -f`
on each /etc/ssh/ssh_host_*key.pub and writes the lines, through `logger -s`, between

    -----BEGIN SSH HOST KEY FINGERPRINTS-----
    -----END SSH HOST KEY FINGERPRINTS-----

to the console, each prefixed by what logger adds (`<14>Apr 22 19:51:35 cloud-init: `
since cloud-init 21.2, `ec2: ` or `<14>... ec2: ` before). The console is written by
the instance itself and read through the EC2 API, not over the network path SSH takes,
which is what makes these fingerprints evidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from remote.providers.aws.session import aws_errors

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

BEGIN_FINGERPRINTS = "-----BEGIN SSH HOST KEY FINGERPRINTS-----"
END_FINGERPRINTS = "-----END SSH HOST KEY FINGERPRINTS-----"
# `<bits> SHA256:<43 base64 chars> <comment> (<TYPE>)`, after whatever prefix logger gave
# the line. Older images print MD5 (`256 ab:cd:...`): not matched, so not evidence.
_FINGERPRINT = re.compile(r"(?<!\S)(SHA256:[A-Za-z0-9+/]{43})(?!\S)")


@dataclass(frozen=True)
class ConsoleFingerprints:
    """The SHA256 fingerprints listed in the console's fingerprint blocks.

    `complete` is whether a block ended with its END line: a block still open at the end
    of the text may lose lines to a later read of the console, or to nothing at all (a
    getty's terminal reset can swallow the END line).
    """

    fingerprints: frozenset[str]
    complete: bool


def parse_host_key_fingerprints(console: str) -> ConsoleFingerprints:
    """The fingerprints cloud-init printed in `console`; pure, for any line endings.

    Only lines inside a BEGIN..END block count (a block without its END runs to the end
    of the text); the `BEGIN SSH HOST KEY KEYS` block that follows and everything else
    on the console is ignored.
    """
    found: set[str] = set()
    inside = complete = False
    for line in console.splitlines():
        if BEGIN_FINGERPRINTS in line:
            inside = True
        elif END_FINGERPRINTS in line:
            complete |= inside
            inside = False
        elif inside:
            found.update(_FINGERPRINT.findall(line))
    return ConsoleFingerprints(frozenset(found), complete)


def console_text(ec2: EC2Client, instance_id: str) -> str:
    """The instance's console output now (the most recent 64 KB), decoded; "" if none yet."""
    with aws_errors(f"read the console output of {instance_id}"):
        try:
            # Latest: the live serial output, on Nitro instance types only; others refuse
            # it and have only the buffered copy, which EC2 posts some minutes after boot.
            answer = ec2.get_console_output(InstanceId=instance_id, Latest=True)
        except ClientError:
            answer = ec2.get_console_output(InstanceId=instance_id)
    # EC2 sends it base64-encoded; botocore decodes it (UTF-8, errors replaced).
    return answer.get("Output") or ""
