"""wait_for: progress while waiting, a clear timeout, and errors on a line of their own."""

from __future__ import annotations

import io

import pytest

from remote.errors import WaitTimeout
from remote.waiting import wait_for


def test_returns_the_first_answer_and_says_how_long_it_took() -> None:
    answers = iter([None, None, "up"])
    out = io.StringIO()
    assert (
        wait_for(lambda: next(answers), what="the box", timeout_s=5, poll_s=0.01, out=out) == "up"
    )
    assert out.getvalue().startswith("Waiting for the box (up to 5s)...")
    assert out.getvalue().endswith("ready after 0s\n")


def test_times_out_naming_what_it_waited_for_and_the_hint() -> None:
    out = io.StringIO()
    with pytest.raises(WaitTimeout, match=r"Timed out after 0s waiting for sshd\. Is it on\?"):
        wait_for(lambda: None, what="sshd", timeout_s=0.05, poll_s=0.01, hint="Is it on?", out=out)
    assert out.getvalue().endswith("\n")


def test_a_probe_error_ends_the_progress_line_first() -> None:
    calls = iter([None])

    def probe() -> None:
        next(calls)  # None once, then StopIteration: the probe fails while a wait is shown

    out = io.StringIO()
    with pytest.raises(StopIteration):
        wait_for(probe, what="the server", timeout_s=5, poll_s=0.01, out=out)
    assert out.getvalue() == "Waiting for the server (up to 5s)...\n"
