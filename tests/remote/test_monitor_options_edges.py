"""The monitoring options' edges: the longest and shortest durations taken, the refusal
that names the range and the flag, and each threshold's end values. Pure; no box."""

from __future__ import annotations

import pytest

from remote.errors import MonitorError
from remote.monitor.options import DriftRequest, drift_request, duration_s


@pytest.mark.parametrize(("text", "seconds"), [("1m", 60), ("366d", 366 * 86400)])
def test_the_shortest_and_longest_durations_are_taken(text: str, seconds: int) -> None:
    assert duration_s(text, "--since") == seconds


@pytest.mark.parametrize("text", ["367d", "53w"])
def test_a_duration_over_the_longest_is_refused_naming_the_range(text: str) -> None:
    with pytest.raises(MonitorError, match=r"\(from 1m to 366d\)\.$"):
        duration_s(text, "--every")


def test_a_bad_since_in_a_drift_request_is_refused_as_since() -> None:
    with pytest.raises(MonitorError, match=r"^--since is 'soon': give a duration"):
        drift_request("", "soon", 0.5, 0.2)


@pytest.mark.parametrize(
    ("drift_share", "max_error_rise", "refused"),
    [
        (1.0, 0.2, ""),  # a share of exactly 1 is taken
        (1.0001, 0.2, "--drift-share"),
        (1e-9, 0.2, ""),
        (0.5, 0.0, ""),  # no rise at all is taken
        (0.5, 100.0, ""),  # nor is 100 (10000%) too much
        (0.5, 100.001, "--max-error-rise"),
        (0.5, -0.001, "--max-error-rise"),
    ],
)
def test_the_thresholds_end_values(drift_share: float, max_error_rise: float, refused: str) -> None:
    if not refused:
        request = DriftRequest("", 60, drift_share, max_error_rise)
        assert (request.drift_share, request.max_error_rise) == (drift_share, max_error_rise)
        return
    with pytest.raises(MonitorError, match=f"^{refused} is "):
        DriftRequest("", 60, drift_share, max_error_rise)
