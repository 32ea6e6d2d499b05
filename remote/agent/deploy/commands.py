"""Serving's on-box steps: a transition's life (begin, fetch, launch, run, end), what
runs now (promote, abort, stop, status, history), the front door and the model server."""

from __future__ import annotations

from typing import Any

from ..cli import Command, Env, arg
from .kinds import KINDS

BEGIN = "deploy-begin"
MODEL_FETCH = "model-fetch"
ABANDON = "deploy-abandon"
LAUNCH = "deploy-launch"
RUN = "deploy-run"
RETIRE = "retire"
TAKE_BACK = "deploy-take-back"
SHADOW_END = "shadow-end"
PROMOTE = "deploy-promote"
ABORT = "deploy-abort"
BOOT = "serving-boot"
STOP = "deploy-stop"
STATUS = "deploy-status"
HISTORY = "deploy-history"
FRONT_DOOR_CERT = "front-door-cert"
SERVE = "serve"


def fetch(uri: str, revision: int) -> dict[str, Any]:
    from . import models, transition

    model = models.fetch(uri)
    transition.record_model(revision, model)
    return {"model": model}


def launch(revision: int, **options: Any) -> dict[str, Any]:
    from . import transition

    return transition.launch(revision, options)


def _steps(text: str) -> tuple[int, ...]:
    return tuple(int(step) for step in text.split(","))


_BY = arg("--by", required=True)
_REVISION = arg("revision", type=int)

COMMANDS = (
    Command(
        BEGIN,
        "record a new transition, or refuse",
        Env.SYSTEM,
        "deploy.transition:begin",
        (
            arg("kind", choices=tuple(KINDS)),
            arg("--model", dest="model_uri", default=""),
            arg(
                "--holder",
                dest="holder_pid",
                type=int,
                required=True,
                help="pid of the SSH session",
            ),
            _BY,
        ),
    ),
    Command(
        MODEL_FETCH,
        "resolve and copy a model (MLflow's Python)",
        Env.MLFLOW,
        "deploy.commands:fetch",
        (arg("uri"), arg("--revision", type=int, required=True)),
    ),
    Command(
        ABANDON,
        "end a transition that never ran",
        Env.SYSTEM,
        "deploy.transition:abandon",
        (_REVISION, arg("--reason", required=True)),
    ),
    Command(
        LAUNCH,
        "run the transition as a unit, with its kind's settings",
        Env.SYSTEM,
        "deploy.commands:launch",
        (
            _REVISION,
            arg("--env", help="the model's environment"),
            arg("--bake", type=float),
            arg("--termination-wait", type=float),
            arg("--max-error-rate", type=float),
            arg("--steps", type=_steps, help="a canary's weights: 5,25,50,100"),
            arg("--min-requests", type=int),
            arg("--max-p99-ms", type=float),
            arg("--max-duration", type=float),
            arg("--sample", type=float, help="shadow: percent copied"),
            arg("--duration", type=float, help="shadow: seconds, 0: no end"),
        ),
    ),
    Command(
        RUN,
        "the transition's steps (in mlops-deploy)",
        Env.SYSTEM,
        "deploy.runner:run",
        (_REVISION,),
    ),
    Command(
        RETIRE,
        "stop a slot that lost its traffic (timer)",
        Env.SYSTEM,
        "deploy.transition:retire",
        (arg("slot"), _REVISION),
    ),
    Command(
        TAKE_BACK,
        "retry a canary's rollback that nginx refused (timer)",
        Env.SYSTEM,
        "deploy.control:take_back",
        (_REVISION,),
    ),
    Command(
        SHADOW_END,
        "mirror off, then the shadow slot stopped",
        Env.SYSTEM,
        "deploy.kinds.shadow:end",
        (
            arg("revision", type=int, nargs="?", help="the timer's: only this shadow"),
            _BY,
            arg("--reason", required=True),
        ),
    ),
    Command(
        PROMOTE,
        "a running canary's candidate live, or what shadow to promote",
        Env.SYSTEM,
        "deploy.control:promote",
        (_BY,),
    ),
    Command(
        ABORT,
        "end a running canary (100% stable first) or shadow (mirror off)",
        Env.SYSTEM,
        "deploy.control:abort",
        (_BY,),
    ),
    Command(BOOT, "at boot: close what the restart interrupted", Env.SYSTEM, "deploy.control:boot"),
    Command(STOP, "stop the router and every slot", Env.SYSTEM, "deploy.control:stop", (_BY,)),
    Command(STATUS, "the deploy state and the units", Env.SYSTEM, "deploy.control:status"),
    Command(HISTORY, "every deploy, rollback and stop", Env.SYSTEM, "deploy.control:history"),
    Command(
        FRONT_DOOR_CERT,
        "the front door's CA, key and certificate",
        Env.SYSTEM,
        "deploy.front_door:ensure_certificate",
        (arg("--dir", dest="directory", required=True, help="where they live (root-only)"),),
    ),
    Command(
        SERVE, "serve a model slot (the model's Python)", Env.MODEL, "deploy.slot_server.app:serve"
    ),
)
