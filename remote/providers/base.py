"""The provider contract: start it, stop it, what state is it in, what address does it have,
and the few verbs a cloud needs (make or remove the box, vouch for its SSH host keys, open
SSH to this machine, check the front door's firewall rule, the stack's artifact bucket and
database).

Each provider module implements exactly these verbs with these signatures; the
docstrings below are the contract. Callers never ask which provider they hold.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Network
from typing import Protocol

from remote.changes import Changed

# Generous enough for an EC2 start (a cold start may take minutes); the local box is faster.
START_TIMEOUT_S = 480
STOP_TIMEOUT_S = 300
# Answers with the caller's public address; what `allow_ssh_from` asks by default.
DEFAULT_ECHO_URL = "https://checkip.amazonaws.com"


class State(enum.Enum):
    """The project's box states; each provider maps its own states onto these."""

    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True)
class BoxState:
    """What a provider knows about its box right now."""

    state: State
    box_id: str
    address: str | None = None
    instance_type: str | None = None
    # When the box last started; None when it is not running.
    started_at: datetime | None = None


@dataclass(frozen=True)
class AccessChange:
    """What opening SSH to this machine did, in words, and what the user should do next."""

    summary: str
    changed: Changed
    follow_up: str | None = None


@dataclass(frozen=True)
class AccessCheck:
    """Whether the box's firewall lets a network reach a port, and what to do if not."""

    allowed: bool
    summary: str
    follow_up: str | None = None


@dataclass(frozen=True)
class Database:
    """Where a PostgreSQL database for the box's MLflow is, and which secret holds its
    master user's name and password. Nothing here is secret: the box reads the secret
    itself, with its own AWS identity, every time MLflow starts."""

    host: str
    port: int
    dbname: str
    instance: str  # the RDS instance identifier, for the commands that fix it
    secret_arn: str
    region: str


def sha256_fingerprint(key_base64: str) -> str:
    """OpenSSH's fingerprint of a public key blob: `SHA256:` and unpadded base64, as
    `ssh-keygen -l` prints it (and cloud-init writes it to the console)."""
    try:
        blob = base64.b64decode(key_base64, validate=True)
    except (binascii.Error, ValueError):
        return ""  # not a key blob: it matches no fingerprint
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class HostKeyEvidence:
    """What the provider vouches for about the box's SSH host keys, learned without SSH.

    Either the exact public keys (`keys`: (type, base64) pairs, e.g. read from the box's
    own files) or their SHA256 fingerprints as the cloud shows them (`fingerprints`). It
    is falsy when it vouches for no key; `note` then says why, for the user.
    """

    source: str
    keys: frozenset[tuple[str, str]] = frozenset()
    fingerprints: frozenset[str] = frozenset()
    note: str = ""

    def __bool__(self) -> bool:
        return bool(self.keys or self.fingerprints)

    def vouches_for(self, key_type: str, key_base64: str) -> bool:
        """Whether the key the box offers is one this evidence names."""
        if (key_type, key_base64) in self.keys:
            return True
        return sha256_fingerprint(key_base64) in self.fingerprints


class Provider(Protocol):
    """One box, found from the settings; never a saved address."""

    def start(self, timeout_s: float) -> BoxState:
        """Start the box and return its state once it is running and has an address.

        A running box is left as it is. A box that is stopping is waited out first.
        Raises BoxNotFound, ProviderError or WaitTimeout.
        """
        ...

    def stop(self, timeout_s: float) -> BoxState:
        """Stop the box and return its state once stopped. Stopping a stopped box is a no-op."""
        ...

    def state(self) -> BoxState:
        """Return the box's current state, without changing anything."""
        ...

    def address(self) -> str:
        """Return the address to reach the box at now; ProviderError if it has none."""
        ...

    def create(self) -> Changed:
        """Make the box (and the key pair it is reached with) if absent; say what was made.

        ConfigError where the box is made by something else (`pulumi up`).
        """
        ...

    def destroy(self) -> bool:
        """Stop and delete the box; return whether there was one. ConfigError as for create."""
        ...

    def host_key_evidence(self, timeout_s: float) -> HostKeyEvidence:
        """The box's SSH host keys as the provider knows them, not as the network says.

        Waits (with progress, at most `timeout_s`; 0: look once) until the provider has
        them; returns an empty (falsy) record, never an error, if it has none by then.
        BoxNotFound or ProviderError if the box itself cannot be found or asked.
        """
        ...

    def allow_ssh_from(self, ip: str | None, echo_url: str) -> AccessChange:
        """Let only `ip` (default: this machine's public address, asked of `echo_url`) reach
        the box's SSH port. ConfigError where the box has no firewall of its own."""
        ...

    def front_door_access(self, cidr: IPv4Network) -> AccessCheck:
        """Whether the box's firewall lets `cidr` reach the TLS front door's port
        (contract.FRONT_DOOR_PORT), and the command that opens it if not. Reads only:
        the firewall is the stack's (httpsAllowedCidrs), never changed from here."""
        ...

    def artifact_bucket(self) -> str | None:
        """The object-store bucket made for MLflow's artifacts, None if the box has none."""
        ...

    def database(self) -> Database:
        """The stack's PostgreSQL database for MLflow: where it is and its secret's ARN.

        Never the password: this machine does not read the secret (the box does).

        DatabaseNotConfigured where the box has none; other DatabaseErrors if it is not
        usable yet.
        """
        ...
