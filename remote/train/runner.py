"""`fab train.run` and `fab train.logs` end to end: start, follow, report, register.

The job's id is printed before anything else; while the job runs its log streams here;
once it ended, one summary line says how (with the last log lines when it failed), and
the exit status is the job's. Stopping to follow (Ctrl-C, a dropped connection) prints
how to follow again and how to cancel; the job runs on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from remote.agent.system.layout import CHALLENGER_ALIAS as CHALLENGER
from remote.contract import TRAIN_USER
from remote.system.run import Connection, StreamEnd
from remote.train.follow import follow, last_lines, print_log, reattach_hint
from remote.train.jobs import PreparedJob, show, start
from remote.train.records import JobRecord

# The exit status when following stopped before the job ended (the shell's conventions).
STOPPED_FOLLOWING = {
    StreamEnd.INTERRUPTED: 130,
    StreamEnd.DISCONNECTED: 255,
    StreamEnd.TIMED_OUT: 124,
}


def run_job(conn: Connection, job: PreparedJob, *, detach: bool, say: Callable[[str], None]) -> int:
    """Start the job and (unless detached) follow it to its end; return the exit status."""
    started = start(conn, job, say=say)
    record = started.record
    say(
        f"Started {record.unit} as {TRAIN_USER}: MLflow run {record.run_id} in experiment "
        f"{record.experiment!r}"
    )
    if detach:
        registers = (
            f" Once it succeeds, the box registers its model as {record.register_as}."
            if record.register_as
            else ""
        )
        say(
            f"Detached.{registers} Follow: `fab train.logs {record.id} --follow`; "
            f"cancel: `fab train.cancel {record.id}`."
        )
        return 0
    registers = f"; it still registers {record.register_as}" if record.register_as else ""
    say(f"Following its log (Ctrl-C stops following, not the job{registers}):")
    return finish(conn, record, say=say)


def show_logs(conn: Connection, job_id: str, *, follow_it: bool, say: Callable[[str], None]) -> int:
    """Print the job's log; with `follow_it`, to its end, then how it ended."""
    record = show(conn, job_id)
    if not follow_it or record.ended:
        print_log(conn, record)
        say(record.summary())
        return 0 if not record.ended else report_registration(record, say)
    return finish(conn, record, say=say)


def finish(conn: Connection, record: JobRecord, *, say: Callable[[str], None]) -> int:
    """Follow the running job to its end and report it, with its registration."""
    end, final = follow(conn, record)
    if final is None:
        why = {
            StreamEnd.INTERRUPTED: "Stopped following.",
            StreamEnd.DISCONNECTED: "Lost the connection to the box.",
            StreamEnd.TIMED_OUT: "Stopped following: it ran longer than the follow timeout.",
        }[end]
        print(f"{why} {reattach_hint(record.id)}", file=sys.stderr, flush=True)
        return STOPPED_FOLLOWING[end]
    if final.state != "succeeded":
        print(final.summary(), file=sys.stderr, flush=True)
        if final.state in ("failed", "oom"):
            lines = last_lines(conn, final)
            print(
                "Its last log lines:",
                *(f"  {line}" for line in lines),
                sep="\n",
                file=sys.stderr,
                flush=True,
            )
        return final.exit_code or 1
    say(final.summary())
    return report_registration(final, say)


def report_registration(record: JobRecord, say: Callable[[str], None]) -> int:
    """Say what registering the job's model did (the job did it on the box): 1 if it failed."""
    if record.registered:
        say(f"Registered models:/{record.registered} (alias {CHALLENGER})")
    elif record.register_error:
        print(record.register_error, file=sys.stderr, flush=True)
        return 1
    return 0
