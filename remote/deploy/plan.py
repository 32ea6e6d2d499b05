"""What a deploy command asks for, checked before anything on the box changes (pure).

`BlueGreenPlan` and `RollbackPlan` hold validated arguments; `env_key` names a model's
virtualenv by what goes into it, so two models with the same requirements share one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from remote.errors import ConfigError

DEFAULT_BAKE_S = 60.0
DEFAULT_TERMINATION_WAIT_S = 600.0
DEFAULT_MAX_ERROR_RATE = 0.01
MAX_WAIT_S = 7 * 24 * 3600.0
URI_EXAMPLES = "models:/taxi-duration@challenger, models:/taxi-duration/3 or runs:/<run id>/model"
# A scheme MLflow knows (models:/, runs:/, s3://, file:/, ...) or an absolute path on the box.
_URI = re.compile(r"(?:[a-z][a-z0-9+.-]*:/|/)[^\s\x00-\x1f]*")
_REQUIREMENT = re.compile(r"[A-Za-z0-9][^\s\x00-\x1f]*(?: ?[;<>=!~,].*)?")


def check_model_uri(uri: str) -> str:
    uri = uri.strip()
    if not uri:
        raise ConfigError(f"--model is missing: give a model URI such as {URI_EXAMPLES}.")
    if not _URI.fullmatch(uri) or uri in ("models:/", "runs:/"):
        raise ConfigError(f"--model {uri!r} is not a model URI: give one such as {URI_EXAMPLES}.")
    if uri.startswith("models:/") and not re.fullmatch(r"models:/[^/@]+(?:@[^/@]+|/[^/@]+)?", uri):
        raise ConfigError(
            f"--model {uri!r}: a registry URI is models:/<name>@<alias> or "
            "models:/<name>/<version>."
        )
    if uri.startswith("runs:/") and not re.fullmatch(r"runs:/[0-9a-f]{8,}/\S+", uri):
        raise ConfigError(f"--model {uri!r}: a run URI is runs:/<run id>/<artifact path>.")
    return uri


def check_seconds(name: str, value: float, *, maximum: float = MAX_WAIT_S) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--{name} is {value!r}: give seconds, such as 60.") from None
    if not 0 <= seconds <= maximum:
        raise ConfigError(f"--{name} is {value}: give seconds from 0 to {maximum:.0f}.")
    return seconds


def check_rate(name: str, value: float) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--{name} is {value!r}: give a fraction such as 0.01.") from None
    if not 0 <= rate < 1:
        raise ConfigError(f"--{name} is {value}: give a fraction from 0 to below 1, such as 0.01.")
    return rate


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
