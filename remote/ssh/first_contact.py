"""The first host key of a box is pinned only on evidence, never on trust.

Whatever answers at the box's address first could be anything on the path to it. So
the key is pinned only when the provider vouches for it from outside SSH
(`Provider.host_key_evidence`: the exact keys in the local box's tree, the fingerprints
cloud-init printed on the EC2 console), or when the user says `--trust-first-key`
because the provider has no evidence to give; then a warning says what was pinned.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from remote.errors import HostKeyMismatch, HostKeyUnverified
from remote.providers.base import HostKeyEvidence, Provider, sha256_fingerprint
from remote.settings import BoxSettings
from remote.ssh import config_entry as ssh
from remote.ssh import known_hosts as host_keys
from remote.ssh.connection import wait_for_ssh

TRUST_FIRST_KEY_FLAG = "--trust-first-key"


def warn_on_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class FirstContact:
    """How a key is judged when none is pinned for the box yet."""

    evidence: HostKeyEvidence
    trust_first_key: bool = False
    warn: Callable[[str], None] = field(default=warn_on_stderr, compare=False)

    def admit(self, settings: BoxSettings, hostname: str, key_type: str, key_base64: str) -> None:
        """Pin the offered key if the evidence vouches for it (or, with no evidence at all,
        if the user trusts the first key); otherwise raise and pin nothing."""
        fingerprint = sha256_fingerprint(key_base64)
        if self.evidence.vouches_for(key_type, key_base64):
            host_keys.pin_host_key(settings, key_type, key_base64)
            return
        if self.evidence:
            raise HostKeyMismatch(
                f"{settings.name} ({hostname}) offered a host key ({key_type} {fingerprint}) "
                f"that {self.evidence.source} does not list, so nothing was pinned: something "
                "other than the box may be answering at its address; do not connect."
            )
        if not self.trust_first_key:
            raise no_evidence(settings, self.evidence, hostname)
        host_keys.pin_host_key(settings, key_type, key_base64)
        self.warn(
            f"Warning: pinned the first host key {settings.name} ({hostname}) offered, "
            f"{key_type} {fingerprint}, on trust ({TRUST_FIRST_KEY_FLAG}): "
            f"{self.evidence.source} vouched for no key."
        )


def no_evidence(
    settings: BoxSettings, evidence: HostKeyEvidence, address: str
) -> HostKeyUnverified:
    """The refusal when nothing vouches for the box's key; it names the opt-in."""
    source = evidence.source[:1].upper() + evidence.source[1:]
    return HostKeyUnverified(
        f"{source} vouched for no SSH host key of {settings.name} {evidence.note}, so "
        f"none was pinned in {ssh.known_hosts_path(settings)}: if you trust the network path "
        f"to {address}, run `fab box.start {TRUST_FIRST_KEY_FLAG}` to pin the first key it "
        "offers."
    )


def pin_known_keys(settings: BoxSettings, evidence: HostKeyEvidence) -> bool:
    """Pin the exact keys the evidence names, if none is pinned yet; return whether it did.

    For a box whose keys the project made itself (the local box, at create time): no
    connection is needed to know them. Fingerprints alone cannot be pinned this way.
    """
    if not evidence.keys or host_keys.pinned_keys(settings):
        return False
    for key_type, key_base64 in sorted(evidence.keys):
        host_keys.pin_host_key(settings, key_type, key_base64)
    return True


def wait_and_pin(
    settings: BoxSettings,
    provider: Provider,
    address: str,
    timeout_s: float,
    *,
    trust_first_key: bool = False,
    port: int = 22,
    warn: Callable[[str], None] = warn_on_stderr,
) -> None:
    """Wait for SSH on the box; if no key is pinned yet, pin only one the provider vouches for.

    The evidence is asked for first (up to `timeout_s`), so a box that cannot be vouched
    for is refused before any connection. With `trust_first_key` the provider is asked
    once, without waiting: what it lists still decides; only if it lists nothing is the
    first key offered pinned, with a warning.
    """
    first_contact = None
    if not host_keys.pinned_keys(settings):
        evidence = provider.host_key_evidence(0 if trust_first_key else timeout_s)
        if not evidence and not trust_first_key:
            raise no_evidence(settings, evidence, address)
        first_contact = FirstContact(evidence, trust_first_key, warn)
    wait_for_ssh(settings, address, timeout_s, port=port, first_contact=first_contact)
