"""`fab deploy.*`: models served on the box behind the nginx router: blue-green, canary,
shadow (and its report), promote and abort of what runs, rollback, and the TLS front
door that exposes them."""

from __future__ import annotations

import functools
import getpass
import socket
import webbrowser
from collections.abc import Callable
from typing import Any

from invoke import Collection

from remote import contract
from remote.deploy import apply, shadow
from remote.deploy import status as deploy_status
from remote.deploy.expose import expose as expose_front_door
from remote.deploy.plan import (
    DEFAULT_BAKE_S,
    DEFAULT_MAX_ERROR_RATE,
    DEFAULT_MIN_REQUESTS,
    DEFAULT_STEPS,
    DEFAULT_TERMINATION_WAIT_S,
    BlueGreenPlan,
    CanaryPlan,
    RollbackPlan,
    check_rate,
    check_seconds,
    parse_steps,
)
from remote.local_files import output_folder
from remote.ssh.connection import box_connection
from remote.tasks._common import box_of, hold_tunnel, say, task, user_errors


def _by() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def _deploy(c: Any, act: Callable[..., dict[str, Any]]) -> None:
    """Change what serves on the box with `act(conn, by=, say=)` (a deploy, a rollback,
    a shadow, a promote or abort of what runs); say how it ended."""
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        entry = act(conn, by=_by(), say=say)
    say(deploy_status.outcome_sentence(entry))


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
    _deploy(c, functools.partial(apply.blue_green, plan=plan))


@task(
    help={
        "model": "The model to roll out (a URI as for deploy.blue-green).",
        "steps": "The candidate's share at each step, in percent, growing to 100 "
        f"(default {','.join(map(str, DEFAULT_STEPS))}).",
        "bake": f"Seconds each step is watched before it is judged (default {DEFAULT_BAKE_S:.0f}).",
        "max_error_rate": "Share of the candidate's requests answered 4xx or 5xx that "
        f"fails a step (default {DEFAULT_MAX_ERROR_RATE}).",
        "max_p99_ms": "p99 latency of the candidate's requests that fails a step "
        "(default: not judged).",
        "min_requests": "Requests a step needs to be judged; fewer wait, up to --max-duration "
        f"(default {DEFAULT_MIN_REQUESTS}).",
        "max_duration": "Seconds the whole canary may take before it rolls back "
        "(default: three times the bakes).",
        "termination_wait": "Seconds the old slot stays warm once the candidate is live "
        f"(default {DEFAULT_TERMINATION_WAIT_S:.0f}).",
    },
)
@user_errors
def canary(
    c: Any,
    model: str = "",
    steps: str = ",".join(map(str, DEFAULT_STEPS)),
    bake: float = DEFAULT_BAKE_S,
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE,
    max_p99_ms: float = 0.0,
    min_requests: int = DEFAULT_MIN_REQUESTS,
    max_duration: float = 0.0,
    termination_wait: float = DEFAULT_TERMINATION_WAIT_S,
) -> None:
    """Roll a model out step by step beside the live one, judged at each step; rolls back."""
    plan = CanaryPlan(
        model,
        parse_steps(steps),
        bake,
        max_error_rate,
        max_p99_ms,
        min_requests,
        max_duration,
        termination_wait,
    )
    _deploy(c, functools.partial(apply.canary, plan=plan))


@task(
    help={
        "bake": "After a shadow: seconds the blue-green deploy of its model is watched "
        f"(default {DEFAULT_BAKE_S:.0f})."
    }
)
@user_errors
def promote(c: Any, bake: str = str(DEFAULT_BAKE_S)) -> None:
    """Make what runs live now: a canary's candidate (all the traffic), or a shadow's
    model (a blue-green deploy, then the shadow ends)."""
    bake_s = check_seconds("bake", bake)
    _deploy(c, functools.partial(apply.promote, bake_s=bake_s))


@task
@user_errors
def abort(c: Any) -> None:
    """End what runs: a canary (all traffic back to the live slot, then the candidate
    stops) or a shadow (the mirror off, then the shadow slot stops)."""
    _deploy(c, apply.abort)


@task(help={"termination_wait": "Seconds the rolled-back slot stays warm (default 600)."})
@user_errors
def rollback(c: Any, termination_wait: float = DEFAULT_TERMINATION_WAIT_S) -> None:
    """Go back to the previous model (one reload while its slot is still warm)."""
    _deploy(c, functools.partial(apply.rollback, plan=RollbackPlan(termination_wait)))


@task(help={"watch": "Follow a running deploy until it ends (reattaches after a drop)."})
@user_errors
def status(c: Any, watch: bool = False) -> None:
    """Show what serves where: the router, the live and previous model, each slot."""
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        say(deploy_status.show(conn, settings.name, watch=watch, say=say))


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
    help={
        "cidr": "The network allowed in, e.g. 203.0.113.7/32 (on AWS the security group "
        "must admit it too: httpsAllowedCidrs).",
        "off": "Close the front door: nothing listens on the box's public addresses again.",
    }
)
@user_errors
def expose(c: Any, cidr: str = "", off: bool = False) -> None:
    """Serve the models and MLflow on 443 with TLS and a bearer token, to CIDR only."""
    settings, provider = box_of(c)
    for line in expose_front_door(settings, provider, cidr=cidr, off=off, say=say):
        say(line)


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
    _deploy(c, functools.partial(shadow.start, plan=shadow.plan(model, sample, duration)))
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
    checked = check_rate("tolerance", tolerance)
    folder = output_folder(out)
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        made = shadow.report(conn, folder, checked, say=say)
    say(made.describe())
    if open_:
        webbrowser.open(made.html.as_uri())


deploy = Collection(
    "deploy",
    blue_green,
    canary,
    shadow_,
    promote,
    abort,
    shadow_report,
    rollback,
    status,
    history,
    tunnel,
    stop,
    expose,
)
