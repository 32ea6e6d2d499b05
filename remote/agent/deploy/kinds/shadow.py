"""Shadow mode: a model in the shadow slot gets a copy of a sample of the live traffic.

The shadow's steps run in the unit mlops-deploy-<revision> like any transition's
(kinds.KINDS): start the model in the shadow slot, /ping and its warm-up example
as any slot (a model that fails them never gets a copy of anything), then turn the
router's mirror on in one reload and check through the router that a copy reaches the
shadow. The live slot keeps answering every request; the shadow's answers only go to its
prediction log. With a duration, a timer on the box ends it (`shadow-end`);
`deploy.abort` ends it too (control.abort): the mirror off first (a reload), then the
slot stopped, so no copy is ever sent to a slot that is stopping.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ...system import layout
from ...system.failure import AgentFailure
from .. import commands, slots, state
from ..settings import Shadow
from ..transition import apply_router, cancel_timers, log, timer
from .bluegreen import drop, start_checked

KIND_NO_SHADOW = "no-shadow"
KIND_MIRROR = "mirror"
MIRROR_CHECK_TIMEOUT_S = 15.0


def steps(revision: int, transition: dict[str, Any], current: dict[str, Any]) -> tuple[str, str]:
    """The shadow transition: (outcome, reason); outcome "shadowing" once copies flow."""
    settings = Shadow.of(transition["settings"])
    model = transition["model"]
    live, slot = current.get("live"), layout.SHADOW_SLOT
    if not live:
        return "refused", "nothing is live to copy traffic from: deploy a model first"
    if current.get("mirror"):
        return "refused", "a shadow already runs: end it with `fab deploy.abort` first"
    sample, duration = settings.sample, settings.duration
    label = state.model_label(model)
    log(
        revision,
        f"Shadow of {label} in slot {slot}: {sample:g}% of the live traffic of "
        f"{live['slot']} ({state.model_label(live['model'])})",
        slot=slot,
        **{"from": live},
    )
    try:
        start_checked(revision, slot, model)
    except AgentFailure as refused:
        return "refused", refused.sentence
    try:
        mirror = {
            "slot": slot,
            "model": model,
            "sample": sample,
            "revision": revision,
            "started": state.now(),
            "until": state.later(duration) if duration else None,
        }
        with state.changing() as now:
            now["mirror"] = mirror
            apply_router(now)  # raises before the state is written if nginx refuses
        log(revision, f"Mirror on: {sample:g}% of requests copied to {slot}")
        log(revision, f"A copy reached the shadow: {check_mirror(revision)}")
        if duration:
            unit = layout.SHADOW_END_UNIT.format(revision=revision)
            ending = ("--by", "the shadow's timer", "--reason", "its --duration was over")
            if not timer(unit, duration, commands.SHADOW_END, str(revision), *ending):
                raise AgentFailure(KIND_MIRROR, "The timer that ends the shadow was not made.")
            log(revision, f"A timer on the box ends the shadow at {mirror['until']}")
    except Exception as exc:
        _mirror_off(revision)
        drop(slot)
        if isinstance(exc, AgentFailure):
            return "failed", exc.sentence
        raise
    return "shadowing", ""


def check_mirror(revision: int) -> str:
    """Send requests through the router that are always copied (X-Shadow: always) until
    the relay's log says the shadow slot answered one. Sent again and again: right after a
    reload, an old nginx worker (without the mirror) may still take a new connection."""
    request_id = f"{slots.WARMUP_ID}-{revision}-mirror"
    deadline = time.monotonic() + MIRROR_CHECK_TIMEOUT_S
    while time.monotonic() < deadline:
        status, _, _ = slots.request(
            "",
            "/ping",
            headers={"X-Shadow": "always", "X-Request-ID": request_id},
            timeout_s=5,
            base=f"http://127.0.0.1:{layout.ROUTER_PORT}",
        )
        if status != 200:
            raise AgentFailure(KIND_MIRROR, f"The router answered {status or 'nothing'} to /ping.")
        time.sleep(0.3)
        answered = _relayed(request_id)
        if answered == "200":
            return f"{layout.SHADOW_SLOT} answered /ping through the mirror relay"
        if answered:
            raise AgentFailure(
                KIND_MIRROR, f"The shadow slot answered {answered} to the router's copy."
            )
    raise AgentFailure(
        KIND_MIRROR,
        f"No copy reached the shadow within {MIRROR_CHECK_TIMEOUT_S:.0f}s: see "
        f"{layout.MIRROR_LOG} and {layout.NGINX_ERROR_LOG} on the box.",
    )


def _relayed(request_id: str) -> str:
    try:
        with open(layout.MIRROR_LOG, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if request_id in line:
                    return str(json.loads(line).get("status", "?"))
    except (OSError, ValueError):
        pass
    return ""


def _mirror_off(revision: int | None = None) -> dict[str, Any] | None:
    """Turn the mirror off (when it is the shadow of `revision`, if given); what it was."""
    with state.changing() as current:
        mirror = current.get("mirror")
        if not mirror or (revision is not None and mirror.get("revision") != revision):
            return None
        current["mirror"] = None
        apply_router(current)
    return dict(mirror)


def end(by: str, reason: str, revision: int | None = None) -> dict[str, Any]:
    """End the running shadow: mirror off in one reload, then the slot stopped; its
    history entry. `revision` (the timer's, or a promote's): only that shadow, and no
    error if it is gone (its timer may have ended it a moment before)."""
    with state.changing() as current:
        transition = current.get("transition") or {}
        if transition.get("kind") == "shadow" and state.transition_alive(transition):
            raise AgentFailure(
                state.KIND_BUSY,
                f"Refused: {state.describe_transition(transition)} is still starting the "
                "shadow: run this again once `fab deploy.status --watch` says it ended.",
            )
    mirror = _mirror_off(revision)
    if mirror is None:
        if revision is not None:
            return {"message": f"the shadow of revision {revision} had ended already"}
        raise AgentFailure(KIND_NO_SHADOW, "No shadow is running: see `fab deploy.status`.")
    cancel_timers(layout.SHADOW_END_UNIT.format(revision=mirror["revision"]), service=False)
    drop(mirror["slot"])
    with state.changing() as current:
        entry = state.record_change(
            current,
            "shadow-end",
            mirror["model"],
            mirror["slot"],
            by,
            "ended",
            reason,
            line=f"Mirror of {mirror.get('sample')}% off, slot {mirror['slot']} stopped",
            started=mirror.get("started"),
            **{"from": current.get("live")},
        )
    return entry


def window(current: dict[str, Any]) -> dict[str, Any]:
    """The shadow a report is about: the running one, else the last that ended."""
    mirror = current.get("mirror")
    if mirror:
        return {
            "model": mirror["model"],
            "started": mirror["started"],
            "ended": None,
            "sample": mirror["sample"],
            "live": current.get("live"),
        }
    for entry in reversed(current.get("history", [])):
        if entry.get("kind") == "shadow-end":
            return {
                "model": entry["model"],
                "started": entry["started"],
                "ended": entry["finished"],
                "sample": None,
                "live": entry.get("from"),
            }
    raise AgentFailure(
        KIND_NO_SHADOW,
        "No shadow has run on this box: start one with `fab deploy.shadow --model URI`.",
    )
