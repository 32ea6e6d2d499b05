"""What each kind of transition is launched with: one frozen record per kind, built from
`deploy-launch`'s options and kept in the state file with the transition.

The controller owns every value (remote/deploy/plan.py): the agent has no default of its
own, and a kind launched without one of its settings is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ..system.failure import AgentFailure

KIND_LAUNCH = "launch"

_Settings = TypeVar("_Settings", bound="Settings")


@dataclass(frozen=True)
class Settings:
    @classmethod
    def of(cls: type[_Settings], values: Mapping[str, Any]) -> _Settings:
        """The record from the launch's options (or the state file's copy); every field
        is required, the others are ignored."""
        missing = [f.name for f in dataclasses.fields(cls) if values.get(f.name) is None]
        if missing:
            options = ", ".join("--" + name.replace("_", "-") for name in missing)
            raise AgentFailure(KIND_LAUNCH, f"This transition needs {options}.")
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls)})

    def stored(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Rollback(Settings):
    termination_wait: float


@dataclass(frozen=True)
class BlueGreen(Settings):
    env: str
    bake: float
    termination_wait: float
    max_error_rate: float


@dataclass(frozen=True)
class Canary(Settings):
    env: str
    steps: tuple[int, ...]
    bake: float
    termination_wait: float
    max_error_rate: float
    min_requests: int
    max_p99_ms: float
    max_duration: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(int(step) for step in self.steps))


@dataclass(frozen=True)
class Shadow(Settings):
    env: str
    sample: float
    duration: float
