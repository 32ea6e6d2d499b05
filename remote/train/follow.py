"""A job's log on the box: followed live until the job ends, or printed whole.

The log is the job's own output in the journal (`_SYSTEMD_UNIT=` the job's unit: its
processes, not systemd's lines about it). Following runs one command on the box that
prints the log from the job's start, follows it, and ends once the unit is gone (or
once the SSH session running it is). Ctrl-C or a dropped connection only stop the
following: the job is a unit of its own on the box.
"""

from __future__ import annotations

import shlex
from typing import TextIO

from remote.agent.train.jobs import ALIVE_STATES
from remote.system.run import Connection, StreamEnd, check, stream, sudo
from remote.train.jobs import show
from remote.train.records import JobRecord

FOLLOW_TIMEOUT_S = 24 * 3600
LOG_TIMEOUT_S = 600
LAST_LINES = 10
POLL_S = 0.2  # how often the box checks whether the job's unit still runs


def _journal(unit: str, *flags: str) -> str:
    return " ".join(
        ["journalctl", "-q", "-o", "cat", "--no-pager", *flags, f"_SYSTEMD_UNIT={unit}"]
    )


def follow_command(unit: str) -> str:
    """The one command that follows the unit's log until the unit is gone.

    It runs as root (the journal is root's); the login shell's parent, the sshd session,
    is passed in so that it also stops when the connection does.
    """
    alive = "|".join(ALIVE_STATES)
    script = (
        f"{_journal(unit, '-f', '--no-tail')} & j=$!; "
        'while [ -d "/proc/$1" ]; do '
        f"case $(systemctl show -p ActiveState --value {unit}) in "
        f"{alive}) sleep {POLL_S};; *) break;; esac; done; "
        # The unit ends after its ExecStopPost, well after the job's last line reached the
        # journal: a moment is enough for journalctl to print it.
        f'sleep {POLL_S}; kill "$j" 2>/dev/null; wait "$j" 2>/dev/null; exit 0'
    )
    return f'{sudo(f"sh -c {shlex.quote(script)}")} follow "$PPID"'


def follow(
    conn: Connection,
    record: JobRecord,
    *,
    out: TextIO | None = None,
    timeout_s: float = FOLLOW_TIMEOUT_S,
) -> tuple[StreamEnd, JobRecord | None]:
    """Print the job's log as it comes until it ends; then its final record.

    The record is None when following stopped first (Ctrl-C, a dropped connection, the
    timeout): the job itself runs on.
    """
    end, _ = stream(conn, follow_command(record.unit), timeout_s=timeout_s, out=out)
    if end is not StreamEnd.EXITED:
        return end, None
    return end, show(conn, record.id)


def print_log(conn: Connection, record: JobRecord, *, out: TextIO | None = None) -> StreamEnd:
    """Print everything the job has logged so far."""
    end, _ = stream(conn, sudo(_journal(record.unit)), timeout_s=LOG_TIMEOUT_S, out=out)
    return end


def last_lines(conn: Connection, record: JobRecord, lines: int = LAST_LINES) -> list[str]:
    found = check(conn, sudo(_journal(record.unit, "-n", str(lines))))
    return [line for line in found.stdout.splitlines() if line.strip()]


def reattach_hint(job_id: str) -> str:
    return (
        f"Job {job_id} keeps running on the box. Follow it again: "
        f"`fab train.logs {job_id} --follow`; cancel it: `fab train.cancel {job_id}`."
    )
