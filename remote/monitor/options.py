"""What a user may type for monitoring, checked before anything touches the box.

Pure: durations (`--since 24h`, `--every 1d`), model references and the two
thresholds, each refused with one sentence that says what to give instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from remote.errors import ConfigError, MonitorError
from remote.model_names import check_model_uri

UNITS_S = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MIN_DURATION_S = 60
MAX_DURATION_S = 366 * 86400
MODEL_FORMS = "NAME@ALIAS, NAME/VERSION, models:/NAME@ALIAS, models:/NAME/VERSION or models:/m-<id>"
_DURATION = re.compile(r"(\d+)\s*([mhdw])")


def duration_s(text: str, flag: str) -> int:
    """`30m`, `12h`, `1d`, `2w` as seconds; MonitorError for anything else."""
    match = _DURATION.fullmatch(text.strip().lower())
    seconds = int(match[1]) * UNITS_S[match[2]] if match else 0
    if not MIN_DURATION_S <= seconds <= MAX_DURATION_S:
        raise MonitorError(
            f"{flag} is {text!r}: give a duration such as 30m, 12h, 1d or 2w "
            f"(from 1m to {MAX_DURATION_S // 86400}d)."
        )
    return seconds


def model_ref(text: str) -> str:
    """A model reference as given (`models:/` may be left out), if it names one model the
    way a deploy's --model does (remote/model_names.py); empty means the live model."""
    text = text.strip()
    if not text:
        return text
    uri = text if text.startswith("models:/") else f"models:/{text}"
    try:
        check_model_uri(uri)
    except ConfigError:
        raise MonitorError(f"--model is {text!r}: give {MODEL_FORMS}.") from None
    return text


@dataclass(frozen=True)
class DriftRequest:
    """A checked drift report request. An empty model means the live one."""

    model: str
    since_s: int
    drift_share: float = 0.5
    max_error_rise: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.drift_share <= 1:
            raise MonitorError(
                f"--drift-share is {self.drift_share}: give the share of drifted input "
                "columns that makes the dataset drift, above 0 and at most 1 (default 0.5)."
            )
        if not 0 <= self.max_error_rise <= 100:
            raise MonitorError(
                f"--max-error-rise is {self.max_error_rise}: give the error's rise over the "
                "validation error that counts as drift, e.g. 0.2 for 20% (default)."
            )

    def agent_args(self) -> list[str]:
        args = [
            f"--since-s={self.since_s}",
            f"--drift-share={self.drift_share}",
            f"--max-error-rise={self.max_error_rise}",
        ]
        return [f"--model={self.model}", *args] if self.model else args


def number(text: str | float, flag: str) -> float:
    """A number the user typed (invoke hands text over as it is); MonitorError if it is not."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value:
        raise MonitorError(f"{flag} is {text!r}: give a number, such as 0.5.")
    return value


def drift_request(
    model: str, since: str, drift_share: str | float, max_error_rise: str | float
) -> DriftRequest:
    return DriftRequest(
        model_ref(model),
        duration_s(since, "--since"),
        number(drift_share, "--drift-share"),
        number(max_error_rise, "--max-error-rise"),
    )
