"""A training job's on-box steps: start it, record its end, show, list, cancel, register."""

from __future__ import annotations

from ..cli import Command, Env, arg

START = "train-start"
FINISHED = "train-finished"
SHOW = "train-show"
CANCEL = "train-cancel"
LIST = "train-list"
NOTE = "train-note"
REGISTER = "train-register"

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
    Command(
        NOTE,
        "record the model version a job registered",
        Env.SYSTEM,
        "train.jobs:note",
        (_JOB, arg("--registered", required=True)),
    ),
    Command(
        REGISTER,
        "register a run's logged model",
        Env.MODEL,
        "train.register:register",
        (
            arg("run_id"),
            arg("name"),
            arg("--alias", required=True),
            arg("--logged-model", default=""),
        ),
    ),
)
