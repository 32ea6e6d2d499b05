"""The provider contract: start it, stop it, what state is it in, what address does it have.

Each provider module implements exactly these verbs with these signatures; the
docstrings below are the contract.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

# Generous enough for an EC2 start (a cold start may take minutes); the local box is faster.
START_TIMEOUT_S = 480
STOP_TIMEOUT_S = 300


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
