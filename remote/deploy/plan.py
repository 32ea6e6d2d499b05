"""What a deploy command asks for, checked before anything on the box changes (pure).

`BlueGreenPlan` and `RollbackPlan` hold validated arguments; `env_key` names a model's
virtualenv by what goes into it, so two models with the same requirements share one.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass

from remote.errors import ConfigError
from remote.model_names import check_model_uri

DEFAULT_BAKE_S = 60.0
DEFAULT_TERMINATION_WAIT_S = 600.0
DEFAULT_MAX_ERROR_RATE = 0.01
MAX_WAIT_S = 7 * 24 * 3600.0
_REQUIREMENT = re.compile(r"[A-Za-z0-9][^\s\x00-\x1f]*(?: ?[;<>=!~,].*)?")


def number(name: str, value: float | str, what: str) -> float:
    """`value` as a number, or the one-line refusal: "--NAME is 'x': give WHAT." """
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--{name} is {value!r}: give {what}.") from None


def check_seconds(name: str, value: float | str, *, maximum: float = MAX_WAIT_S) -> float:
    seconds = number(name, value, "seconds, such as 60")
    if not 0 <= seconds <= maximum:
        raise ConfigError(f"--{name} is {value}: give seconds from 0 to {maximum:.0f}.")
    return seconds


def check_milliseconds(name: str, value: float) -> float:
    ms = number(name, value, "milliseconds, such as 500")
    if not 0 <= ms <= MAX_WAIT_S * 1000:
        raise ConfigError(f"--{name} is {value}: give milliseconds, such as 500 (0: not judged).")
    return ms


def check_rate(name: str, value: float | str) -> float:
    rate = number(name, value, "a fraction such as 0.01")
    if not 0 <= rate < 1:
        raise ConfigError(f"--{name} is {value}: give a fraction from 0 to below 1, such as 0.01.")
    return rate


def check_percent(name: str, value: float | str) -> float:
    """A percent the router can split by: nginx's split_clients counts in hundredths."""
    percent = number(name, value, "a number such as 10")
    if not 0.01 <= percent <= 100 or abs(round(percent, 2) - percent) > 1e-9:
        raise ConfigError(
            f"--{name} is {value}: give a percent from 0.01 to 100, in steps of 0.01 "
            "(the router splits traffic by hundredths of a percent)."
        )
    return round(percent, 2)


@dataclass(frozen=True)
class BlueGreenPlan:
    model_uri: str
    bake_s: float = DEFAULT_BAKE_S
    termination_wait_s: float = DEFAULT_TERMINATION_WAIT_S
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_uri", check_model_uri(self.model_uri))
        object.__setattr__(self, "bake_s", check_seconds("bake", self.bake_s))
        object.__setattr__(
            self, "termination_wait_s", check_seconds("termination-wait", self.termination_wait_s)
        )
        object.__setattr__(
            self, "max_error_rate", check_rate("max-error-rate", self.max_error_rate)
        )


@dataclass(frozen=True)
class RollbackPlan:
    termination_wait_s: float = DEFAULT_TERMINATION_WAIT_S

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "termination_wait_s", check_seconds("termination-wait", self.termination_wait_s)
        )


def check_requirements(requirements: list[str]) -> list[str]:
    """The model's requirement lines, refused if one could be read as a pip option."""
    for line in requirements:
        if not _REQUIREMENT.fullmatch(line):
            raise ConfigError(f"The model's requirements.txt has {line!r}, not a package.")
    return requirements


def env_key(requirements: list[str], python: str) -> str:
    """The name of the virtualenv for these requirements on this Python."""
    text = "\n".join([f"python {python}", *sorted(requirements)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


DEFAULT_STEPS = (5, 25, 50, 100)
DEFAULT_MIN_REQUESTS = 20
# Without --max-duration, a canary may wait this many times its bakes for enough requests.
DEFAULT_DURATION_FACTOR = 3


def parse_steps(text: str | tuple[int, ...]) -> tuple[int, ...]:
    """`5,25,50,100` as whole percentages: strictly increasing, from 1 to 100, ending at 100."""
    if isinstance(text, tuple):
        text = ",".join(str(step) for step in text)
    if not text.strip():
        raise ConfigError("--steps is empty: give percentages such as 5,25,50,100.")
    example = "give whole percentages that grow and end at 100, such as 5,25,50,100"
    try:
        steps = tuple(int(part) for part in str(text).replace(" ", "").split(","))
    except ValueError:
        raise ConfigError(f"--steps {text!r} is not a list of numbers: {example}.") from None
    if any(not 1 <= step <= 100 for step in steps):
        raise ConfigError(f"--steps {text}: each step is from 1 to 100 percent; {example}.")
    if any(later <= earlier for earlier, later in itertools.pairwise(steps)):
        raise ConfigError(f"--steps {text} do not grow step by step: {example}.")
    if steps[-1] != 100:
        raise ConfigError(f"--steps {text} end at {steps[-1]}%, not 100%: {example}.")
    return steps


@dataclass(frozen=True)
class CanaryPlan:
    """A canary's validated arguments. max_duration_s 0 means the default: three times
    the bakes (room for a quiet step to wait for enough requests)."""

    model_uri: str
    steps: tuple[int, ...] = DEFAULT_STEPS
    bake_s: float = DEFAULT_BAKE_S
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE
    max_p99_ms: float = 0.0
    min_requests: int = DEFAULT_MIN_REQUESTS
    max_duration_s: float = 0.0
    termination_wait_s: float = DEFAULT_TERMINATION_WAIT_S

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "model_uri", check_model_uri(self.model_uri))
        set_(self, "steps", parse_steps(self.steps))
        set_(self, "bake_s", check_seconds("bake", self.bake_s))
        set_(self, "max_error_rate", check_rate("max-error-rate", self.max_error_rate))
        set_(self, "max_p99_ms", check_milliseconds("max-p99-ms", self.max_p99_ms))
        set_(self, "termination_wait_s", check_seconds("termination-wait", self.termination_wait_s))
        try:
            minimum = int(str(self.min_requests))
        except ValueError:
            minimum = 0
        if minimum < 1:
            raise ConfigError(
                f"--min-requests is {self.min_requests}: give a whole number of 1 or more "
                "(a step with no requests is never a pass)."
            )
        set_(self, "min_requests", minimum)
        bakes = self.bake_s * len(self.steps)
        if bakes > MAX_WAIT_S:
            raise ConfigError(
                f"--bake {self.bake_s:.0f}s for {len(self.steps)} steps is {bakes:.0f}s of bakes, "
                f"past a canary's cap of {MAX_WAIT_S:.0f}s (7 days): give a shorter --bake or "
                "fewer --steps."
            )
        duration = check_seconds("max-duration", self.max_duration_s)
        if not duration:
            duration = min(max(bakes * DEFAULT_DURATION_FACTOR, 60.0), MAX_WAIT_S)
        elif duration < bakes:
            raise ConfigError(
                f"--max-duration {duration:.0f}s is shorter than the bakes "
                f"({len(self.steps)} steps x {self.bake_s:.0f}s = {bakes:.0f}s): give at least "
                f"{bakes:.0f}, or fewer steps or a shorter --bake."
            )
        set_(self, "max_duration_s", duration)

    def launch_args(self) -> list[str]:
        """The agent's deploy-launch options for this canary."""
        return [
            "--steps",
            ",".join(str(step) for step in self.steps),
            "--bake",
            str(self.bake_s),
            "--max-error-rate",
            str(self.max_error_rate),
            "--max-p99-ms",
            str(self.max_p99_ms),
            "--min-requests",
            str(self.min_requests),
            "--max-duration",
            str(self.max_duration_s),
            "--termination-wait",
            str(self.termination_wait_s),
        ]
