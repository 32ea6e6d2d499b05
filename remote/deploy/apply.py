"""The deploy commands: prepare on the controller, switch on the box, follow it.

A blue-green deploy, a canary or a shadow has two halves. Here, over SSH: make sure
serving is set up, begin a transition on the box (refused if one runs), have the box
resolve and copy the model from its MLflow, build the model's environment. None of that
touches the traffic, and if the SSH connection drops the transition's lease ends with
it. Then the box runs the steps itself as the unit mlops-deploy-<revision>
(remote/agent/deploy/kinds/), and this side only follows its
progress lines: a dropped connection no longer matters. `promote` and `abort` act on
what the box says runs: they ask a running canary and follow it to its end, or end a
shadow (promote: a blue-green deploy of its model first).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from remote.agent.deploy import commands as deploy_cmds
from remote.deploy import status
from remote.deploy.env import ensure_env
from remote.deploy.plan import DEFAULT_BAKE_S, BlueGreenPlan, CanaryPlan, RollbackPlan
from remote.deploy.setup import ensure_serving
from remote.errors import DeployBusy, DeployError, MlopsBoxError
from remote.mlflow.spec import ENV_FILE, installed_python
from remote.mlflow.status import require_running
from remote.system.agent import run_agent
from remote.system.run import Connection, run

Say = Callable[[str], None]
ERRORS: dict[str, type[MlopsBoxError]] = {"busy": DeployBusy}
FETCH_TIMEOUT_S = 900


def _agent(conn: Connection, command: str, *args: str, **options: Any) -> dict[str, Any]:
    return run_agent(conn, command, *args, errors=ERRORS, error=DeployError, **options)


def session_pid(conn: Connection) -> int:
    """The pid of this SSH connection's session on the box: the preparing deploy's lease."""
    return int(run(conn, "echo $PPID", what="read the SSH session", error=DeployError).strip())


def begin(conn: Connection, kind: str, model_uri: str, by: str) -> int:
    args = [kind, "--holder", str(session_pid(conn)), "--by", by]
    if model_uri:
        args += ["--model", model_uri]
    return int(_agent(conn, deploy_cmds.BEGIN, *args)["revision"])


def mlflow_python(conn: Connection) -> str:
    """The MLflow server's Python on the box, whose MLflow client resolves models."""
    installed = require_running(
        conn, needed_by="a deploy resolves its model there", error=DeployError
    )
    return installed_python(installed)


def prepare_and_launch(
    conn: Connection, kind: str, model_uri: str, launch: list[str], *, what: str, by: str, say: Say
) -> int:
    """Begin a `kind` transition of `model_uri`, have the box fetch the model, build its
    environment and launch the steps with the `launch` arguments; its revision. A failure
    before the launch ends the transition in history as refused."""
    python = mlflow_python(conn)
    changed = ensure_serving(conn, say=say)
    if changed:
        say(f"Serving set up: {changed}")
    revision = begin(conn, kind, model_uri, by)
    say(f"Revision {revision}: {what}")
    try:
        model = _agent(
            conn,
            deploy_cmds.MODEL_FETCH,
            model_uri,
            "--revision",
            str(revision),
            python=python,
            env_file=f"-{ENV_FILE}",
            timeout_s=FETCH_TIMEOUT_S,
        )["model"]
        say(f"Resolved {model_uri} to {model['name']}/{model['version']} ({model['dir']})")
        env = ensure_env(conn, list(model["requirements"]), say=say)
        _agent(conn, deploy_cmds.LAUNCH, str(revision), "--env", env, *launch)
    except MlopsBoxError as exc:
        _abandon(conn, revision, str(exc))
        raise
    return revision


def blue_green(conn: Connection, plan: BlueGreenPlan, *, by: str, say: Say) -> dict[str, Any]:
    """Deploy `plan.model_uri` blue-green; the history entry of a deploy that went live,
    else DeployError saying what happened and what serves now."""
    launch = [
        *("--bake", str(plan.bake_s)),
        *("--termination-wait", str(plan.termination_wait_s)),
        *("--max-error-rate", str(plan.max_error_rate)),
    ]
    what = f"blue-green deploy of {plan.model_uri}"
    revision = prepare_and_launch(
        conn, "blue-green", plan.model_uri, launch, what=what, by=by, say=say
    )
    return _finished(status.follow(conn, revision, say=say))


def canary(conn: Connection, plan: CanaryPlan, *, by: str, say: Say) -> dict[str, Any]:
    """Roll `plan.model_uri` out step by step beside the live model, judged at each step
    (remote/agent/deploy/kinds/canary.py); the history entry once it is live, else DeployError."""
    what = f"canary deploy of {plan.model_uri}"
    revision = prepare_and_launch(
        conn, "canary", plan.model_uri, plan.launch_args(), what=what, by=by, say=say
    )
    return _finished(status.follow(conn, revision, say=say))


def rollback(conn: Connection, plan: RollbackPlan, *, by: str, say: Say) -> dict[str, Any]:
    """Go back to the previous model: one reload while its slot is warm."""
    revision = begin(conn, "rollback", "", by)
    say(f"Revision {revision}: rollback")
    try:
        _agent(
            conn,
            deploy_cmds.LAUNCH,
            str(revision),
            "--termination-wait",
            str(plan.termination_wait_s),
        )
    except MlopsBoxError as exc:
        _abandon(conn, revision, str(exc))
        raise
    return _finished(status.follow(conn, revision, say=say))


def promote(
    conn: Connection, *, by: str, say: Say, bake_s: float = DEFAULT_BAKE_S
) -> dict[str, Any]:
    """Make what runs live now, as the box's state says (serving.promote): a canary's
    candidate (its loop on the box does it), or a shadow's model by a blue-green deploy
    (`bake_s`) that ends the shadow once it is live. Its history entry."""
    answer = _agent(conn, deploy_cmds.PROMOTE, "--by", by)
    if "shadow" in answer:
        return _promote_shadow(conn, answer["shadow"], by=by, say=say, bake_s=bake_s)
    return _finished(_followed(conn, answer, say))


def promote_uri(model: dict[str, Any]) -> str:
    """The URI of exactly the version the shadow served (an alias may have moved since)."""
    uri = str(model.get("uri") or "")
    if uri.startswith("models:/") and "@" in uri:
        return f"models:/{model['name']}/{model['version']}"
    return uri


def _promote_shadow(
    conn: Connection, mirror: dict[str, Any], *, by: str, say: Say, bake_s: float
) -> dict[str, Any]:
    """A blue-green deploy of the shadow's model, then the shadow's end. A deploy that
    does not go live leaves the shadow running."""
    plan = BlueGreenPlan(promote_uri(mirror["model"]), bake_s)
    say(f"Promoting the shadow {status.label(mirror['model'])}: blue-green to {plan.model_uri}")
    entry = blue_green(conn, plan, by=by, say=say)
    reason = f"promoted: live in slot {entry.get('slot')}"
    # Only this shadow: its --duration may have ended it while the deploy ran.
    ended = _agent(
        conn, deploy_cmds.SHADOW_END, str(mirror["revision"]), "--by", by, "--reason", reason
    )
    say(
        ended["message"].capitalize() + "."
        if "message" in ended
        else status.outcome_sentence(ended)
    )
    return entry


def abort(conn: Connection, *, by: str, say: Say) -> dict[str, Any]:
    """End what runs, as the box's state says (serving.abort): a canary (100% on the live
    slot, the candidate stopped) or a shadow (the mirror off, its slot stopped); its
    history entry."""
    return _followed(conn, _agent(conn, deploy_cmds.ABORT, "--by", by), say)


def _followed(conn: Connection, answer: dict[str, Any], say: Say) -> dict[str, Any]:
    """The history entry of what the agent did at once, or of the transition it asked."""
    if "entry" in answer:
        return dict(answer["entry"])
    return status.follow(conn, int(answer["revision"]), say=say, shown=int(answer["shown"]))


def stop(conn: Connection, *, by: str) -> dict[str, Any]:
    """Stop the router and every slot; what was live becomes what `rollback` restarts."""
    return _agent(conn, deploy_cmds.STOP, "--by", by)


def _abandon(conn: Connection, revision: int, reason: str) -> None:
    # If even this fails, the lease ends with this SSH session and the next deploy closes it.
    with contextlib.suppress(MlopsBoxError):
        _agent(conn, deploy_cmds.ABANDON, str(revision), "--reason", reason)


def _finished(entry: dict[str, Any]) -> dict[str, Any]:
    if entry.get("outcome") != "live":
        raise DeployError(status.outcome_sentence(entry))
    return entry
