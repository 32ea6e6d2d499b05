"""Bounded waits that show progress.

Every wait in the project goes through `wait_for`, so each one has a timeout with a
clear message and prints what it waits for while it waits.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO, TypeVar

from remote.errors import WaitTimeout

T = TypeVar("T")

DEFAULT_POLL_S = 1.0
# How often the elapsed time is repeated on a wait's progress line.
PROGRESS_EVERY_S = 10.0


def wait_for(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout_s: float,
    poll_s: float = DEFAULT_POLL_S,
    hint: str = "",
    out: TextIO | None = None,
) -> T:
    """Call `probe` until it returns something other than None, and return that.

    Shows `what` with the elapsed time on `out` (stderr by default) while waiting, and
    raises WaitTimeout naming `what`, the timeout and `hint` when time runs out.
    """
    stream = out if out is not None else sys.stderr
    start = time.monotonic()
    last_report = start
    reported = False
    while True:
        try:
            result = probe()
        except BaseException:
            if reported:  # the error goes on a line of its own, not after the dots
                stream.write("\n")
                stream.flush()
            raise
        now = time.monotonic()
        if result is not None:
            if reported:
                stream.write(f" ready after {now - start:.0f}s\n")
                stream.flush()
            return result
        if now - start >= timeout_s:
            if reported:
                stream.write("\n")
            raise WaitTimeout(
                f"Timed out after {timeout_s:.0f}s waiting for {what}."
                + (f" {hint}" if hint else "")
            )
        if not reported:
            stream.write(f"Waiting for {what} (up to {timeout_s:.0f}s)...")
            reported = True
        elif now - last_report >= PROGRESS_EVERY_S:
            stream.write(f" {now - start:.0f}s")
            last_report = now
        stream.flush()
        time.sleep(min(poll_s, max(0.0, timeout_s - (now - start))))
