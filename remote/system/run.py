"""The one way to run a command on the box.

`run` is for steps that must work: it raises the caller's error class with what it was
doing and the last lines of the command's output, so every failure reads "Could not X
on the box: <why>". `check` is for probes, whose failure is an answer, not an error.
`feed` runs a command with data on its stdin. Commands never carry file contents or
secrets in their argv (see `system.files`).
"""

from __future__ import annotations

import enum
import shlex
import sys
import time
from typing import Any, TextIO

from invoke.exceptions import ThreadException

from remote.errors import MlopsBoxError

Connection = Any  # fabric.Connection: fabric ships no type information
Result = Any  # invoke.runners.Result

# How many lines of a failing command's output go into its error message.
TAIL_LINES = 3


class RemoteCommandError(MlopsBoxError):
    """A command on the box failed."""


def sudo(command: str) -> str:
    """`command` as root, never prompting (the login user has passwordless sudo)."""
    return f"sudo -n {command}"


def sh(script: str) -> str:
    """A shell script as one command word, for `sudo` (which runs no shell itself)."""
    return f"sh -c {shlex.quote(script)}"


def check(conn: Connection, command: str, *, timeout_s: float | None = None) -> Result:
    """Run a probe: hidden, never raising on a non-zero exit; the caller reads the result."""
    return conn.run(command, hide=True, warn=True, timeout=timeout_s)


def feed(conn: Connection, command: str, data: bytes, *, timeout_s: float = 120) -> tuple[int, str]:
    """Run `command` with `data` on its stdin: (its exit status, its stderr).

    Over a channel of its own, binary-safe and at the network's speed (Invoke's own
    stdin feeding sends a byte at a time from a non-terminal stream); for a file no one
    else may read (`system.files`). The command must print little on stdout.
    """
    conn.open()
    channel = conn.client.get_transport().open_session(timeout=timeout_s)
    try:
        channel.settimeout(timeout_s)
        channel.exec_command(command)
        channel.sendall(data)
        channel.shutdown_write()
        stderr = channel.makefile_stderr("rb").read().decode(errors="replace")
        return channel.recv_exit_status(), stderr
    finally:
        channel.close()


def run(
    conn: Connection,
    command: str,
    *,
    what: str,
    timeout_s: float | None = None,
    error: type[MlopsBoxError] = RemoteCommandError,
    hint: str = "",
) -> str:
    """Run `command`, hidden; return its stdout, or raise `error` saying what failed and why."""
    result = check(conn, command, timeout_s=timeout_s)
    if not result.ok:
        raise error(f"Could not {what} on the box: {tail(result)}." + (f" {hint}" if hint else ""))
    return str(result.stdout)


class StreamEnd(enum.Enum):
    """How `stream` ended."""

    EXITED = "exited"  # the command ended by itself (see the exit status)
    INTERRUPTED = "interrupted"  # Ctrl-C here
    DISCONNECTED = "disconnected"  # the connection dropped
    TIMED_OUT = "timed out"


STREAM_POLL_S = 0.2


def stream(
    conn: Connection, command: str, *, timeout_s: float, out: TextIO | None = None
) -> tuple[StreamEnd, int | None]:
    """Run `command`, copying its output here as it comes, until it ends, Ctrl-C, a
    dropped connection or the timeout; return how it ended and its exit status.

    Ctrl-C only closes our channel (Fabric would forward it to a command without a
    terminal by waiting forever): what the command started on the box keeps running.
    """
    promise = conn.run(
        command, asynchronous=True, warn=True, out_stream=out or sys.stdout, err_stream=sys.stderr
    )
    end = StreamEnd.EXITED
    deadline = time.monotonic() + timeout_s
    try:
        while not promise.runner.process_is_finished:
            if time.monotonic() >= deadline:
                end = StreamEnd.TIMED_OUT
                promise.runner.kill()
                break
            time.sleep(STREAM_POLL_S)
    except KeyboardInterrupt:
        end = StreamEnd.INTERRUPTED
        promise.runner.kill()
    try:
        result = promise.join()
    except (ThreadException, OSError, EOFError):
        return (end if end is not StreamEnd.EXITED else StreamEnd.DISCONNECTED), None
    if end is StreamEnd.EXITED and result.exited == -1:  # closed without an exit status
        return StreamEnd.DISCONNECTED, None
    return end, result.exited


def tail(result: Result, lines: int = TAIL_LINES) -> str:
    """The last lines of a result's stderr (else stdout) on one line, or its exit status."""
    text = (result.stderr or "").strip() or (result.stdout or "").strip()
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept) if kept else f"exit status {result.exited}"


def key_values(text: str) -> dict[str, str]:
    """A probe script's `key=value` lines as a dict (later lines win)."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
