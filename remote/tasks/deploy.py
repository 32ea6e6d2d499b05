"""`fab deploy.*`: models served on the box behind the nginx router, blue-green, rollback."""

from __future__ import annotations

import datetime
import getpass
import socket
import webbrowser
from pathlib import Path
from typing import Any

from invoke import Collection

from remote import contract
from remote.deploy import apply, shadow
from remote.deploy import status as deploy_status
from remote.deploy.plan import (
    DEFAULT_BAKE_S,
    DEFAULT_MAX_ERROR_RATE,
    DEFAULT_TERMINATION_WAIT_S,
    BlueGreenPlan,
    RollbackPlan,
)
from remote.errors import DeployError
from remote.tasks._common import box_connection, box_of, hold_tunnel, say, task, user_errors


def _by() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


@task(
    name="blue-green",
    help={
        "model": "The model: models:/<name>@<alias>, models:/<name>/<version>, "
        "runs:/<run id>/model (resolved by the box's MLflow).",
        "bake": f"Seconds to watch the new slot's error rate after the switch "
        f"(default {DEFAULT_BAKE_S:.0f}).",
        "termination_wait": f"Seconds the old slot stays warm for an instant rollback "
        f"(default {DEFAULT_TERMINATION_WAIT_S:.0f}).",
        "max_error_rate": f"Error share (4xx and 5xx) that fails the bake "
        f"(default {DEFAULT_MAX_ERROR_RATE}).",
    },
)
@user_errors
def blue_green(
    c: Any,
    model: str = "",
    bake: float = DEFAULT_BAKE_S,
    termination_wait: float = DEFAULT_TERMINATION_WAIT_S,
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE,
) -> None:
    """Deploy a model blue-green: warm it up, switch in one reload, bake, roll back if bad."""
    plan = BlueGreenPlan(model, bake, termination_wait, max_error_rate)
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        entry = apply.blue_green(conn, plan, by=_by(), say=say)
    say(deploy_status.outcome_sentence(entry))


@task(help={"termination_wait": "Seconds the rolled-back slot stays warm (default 600)."})
@user_errors
def rollback(c: Any, termination_wait: float = DEFAULT_TERMINATION_WAIT_S) -> None:
    """Go back to the previous model (one reload while its slot is still warm)."""
    plan = RollbackPlan(termination_wait)
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        entry = apply.rollback(conn, plan, by=_by(), say=say)
    say(deploy_status.outcome_sentence(entry))


@task(help={"watch": "Follow a running deploy until it ends (reattaches after a drop)."})
@user_errors
def status(c: Any, watch: bool = False) -> None:
    """Show what serves where: the router, the live and previous model, each slot."""
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        answer = deploy_status.read_status(conn)
        transition = answer["state"].get("transition")
        if watch and transition and transition.get("phase") == "preparing":
            say(
                f"Revision {transition['revision']} is being prepared by {transition['by']} "
                "(the model fetched, its environment built); it switches on the box after."
            )
        elif watch and transition and answer.get("transition_alive"):
            say(f"Following revision {transition['revision']} ({transition['kind']})")
            entry = deploy_status.follow(conn, int(transition["revision"]), say=say)
            say(deploy_status.outcome_sentence(entry))
            answer = deploy_status.read_status(conn)
    now = datetime.datetime.now(datetime.UTC)
    say(deploy_status.describe_status(answer, settings.name, now))


@task
@user_errors
def history(c: Any) -> None:
    """List every deploy, rollback and stop on the box, with its outcome."""
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        state = deploy_status.read_state(conn) or {}
    say(deploy_status.describe_history(state.get("history", [])))


@task(help={"port": f"Local port of the tunnel (default {contract.ROUTER_PORT})."})
@user_errors
def tunnel(c: Any, port: int = contract.ROUTER_PORT) -> None:
    """Tunnel http://127.0.0.1:<port> to the box's model router until Ctrl-C."""
    settings, provider = box_of(c)
    hold_tunnel(
        settings,
        provider,
        local_port=port,
        remote_port=contract.ROUTER_PORT,
        health_path="/__mlops/health",
        what="the model router",
        hint="Is a model deployed? See `fab deploy.status`.",
        ready=lambda url: (
            f"Model router: {url}/invocations (tunnel to {settings.name}; Ctrl-C to close)"
        ),
    )


@task
@user_errors
def stop(c: Any) -> None:
    """Stop serving: the router and every model slot (`deploy.rollback` brings it back)."""
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        answer = apply.stop(conn, by=_by())
    say(f"Stopped serving on {settings.name} (was: {answer['was']}); revision {answer['revision']}")


@task(
    name="shadow",
    help={
        "model": "The model to shadow: a model URI as for deploy.blue-green.",
        "sample": "Percent of the live requests copied to the shadow (default 100).",
        "duration": "Seconds until the box ends the shadow by itself (default: no end).",
    },
)
@user_errors
def shadow_(c: Any, model: str = "", sample: str = "100", duration: str = "0") -> None:
    """Serve a model in the shadow slot with a copy of the live traffic; live answers all."""
    plan = shadow.plan(model, sample, duration)
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        entry = shadow.start(conn, plan, by=_by(), say=say)
    say(deploy_status.outcome_sentence(entry))
    say(
        "Compare it with `fab deploy.shadow-report`; end it with `fab deploy.abort` or "
        "`fab deploy.promote`."
    )


@task(
    name="shadow-report",
    help={
        "tolerance": "Relative difference within which two predictions agree (default 0.05).",
        "out": "Folder for the downloaded report (default: ./shadow-reports).",
        "open": "Open the report in the browser.",
    },
)
@user_errors
def shadow_report(
    c: Any,
    tolerance: str = str(shadow.DEFAULT_TOLERANCE),
    out: str = "shadow-reports",
    open_: bool = False,
) -> None:
    """Report the running (or last) shadow against the live model; logged to MLflow."""
    checked = shadow.check_tolerance(tolerance)
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        made = shadow.report(conn, Path(out).expanduser().absolute(), checked, say=say)
    say(made.describe())
    if open_:
        webbrowser.open(made.html.as_uri())


@task(help={"bake": f"After a shadow: the blue-green's bake (default {DEFAULT_BAKE_S:.0f})."})
@user_errors
def promote(c: Any, bake: str = str(DEFAULT_BAKE_S)) -> None:
    """Make the running shadow's model live (a blue-green deploy), then end the shadow."""
    bake_s = shadow.check_bake(bake)
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        if not shadow.running(conn):
            raise DeployError(f"Nothing to promote. {shadow.NO_SHADOW}")
        shadow.promote(conn, by=_by(), say=say, bake_s=bake_s)


@task
@user_errors
def abort(c: Any) -> None:
    """End the running shadow: the mirror off (one reload), then the shadow slot stopped."""
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        if not shadow.running(conn):
            raise DeployError(f"Nothing to abort. {shadow.NO_SHADOW}")
        answer = shadow.end(conn, by=_by(), reason="aborted")
    say(
        f"Shadow of {answer['model']} ended: mirror off, slot shadow stopped "
        f"(revision {answer['revision']})"
    )


deploy = Collection(
    "deploy",
    blue_green,
    rollback,
    status,
    history,
    tunnel,
    stop,
    shadow_,
    shadow_report,
    promote,
    abort,
)
