"""A training job's on-box steps: start it, record its end, show, list, cancel.

The job itself (its entry, then registering its model) is train/execute.py, which the
job's unit runs: not a command, since its output is the job's log."""

from __future__ import annotations

from ..cli import Command, Env, arg

START = "train-start"
FINISHED = "train-finished"
SHOW = "train-show"
CANCEL = "train-cancel"
LIST = "train-list"

_JOB = arg("job_id", metavar="job")

COMMANDS = (
    Command(
        START,
        "start a staged job (or say what it lacks)",
        Env.SYSTEM,
        "train.start:start",
        (arg("staging"),),
    ),
    Command(
        FINISHED,
        "record how a job's unit ended (its ExecStopPost)",
        Env.SYSTEM,
        "train.jobs:finished",
        (_JOB,),
    ),
    Command(
        SHOW, "one job's record, reconciled with systemd", Env.SYSTEM, "train.jobs:show", (_JOB,)
    ),
    Command(CANCEL, "stop a job's unit", Env.SYSTEM, "train.jobs:cancel", (_JOB,)),
    Command(LIST, "every job's record, reconciled with systemd", Env.SYSTEM, "train.jobs:listing"),
)
