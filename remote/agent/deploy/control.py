"""Serving as a whole: what runs where (for `deploy.status`), the transitions the unit
mlops-deploy runs (runner.py), promote and abort of what runs (a canary, else a shadow), and
stopping all of it."""

from __future__ import annotations

import os
from typing import Any

from ..system import layout, nginx, systemd
from ..system.failure import AgentFailure
from . import slots, state
from .kinds import canary, shadow
from .transition import cancel_retire, reconcile

STATUS_HISTORY = 20  # history entries the status answer carries (without their logs)


def status() -> dict[str, Any]:
    """The state, plus what systemd and nginx say now."""
    current = state.load()
    transition = current.get("transition")
    history = current.get("history", [])
    current["history"] = [
        {k: v for k, v in entry.items() if k != "log"} for entry in history[-STATUS_HISTORY:]
    ]
    current["last"] = history[-1] if history else None
    return {
        "state": current,
        "transition_alive": state.transition_alive(transition) if transition else False,
        "slots": {
            slot: {
                "port": port,
                "active": systemd.is_active(slots.unit(slot)),
                "enabled": systemd.is_enabled(slots.unit(slot)),
            }
            for slot, port in layout.SLOT_PORTS.items()
        },
        "nginx": systemd.is_active("nginx.service"),
        "router_configured": os.path.exists(nginx.site_path(layout.ROUTER_SITE)),
    }


def history() -> dict[str, Any]:
    return {"history": state.load().get("history", [])}


def stop(by: str) -> dict[str, Any]:
    """Stop serving: the router's site goes (nothing listens on its port), every slot
    stops and stays stopped at boot. The last live model becomes the one `rollback`
    brings back."""
    with state.changing() as current:
        state.refuse_if_busy(current)
        live = current.get("live")
        nginx.apply_site(layout.ROUTER_SITE, None)
        for slot in layout.SLOT_PORTS:
            cancel_retire(slot)
            slots.stop(slot)
            slots.enable(slot, on=False)
        current["previous"] = live or current.get("previous")
        current.update(live=None, candidate=None, mirror=None)
        for held in current.get("slots", {}).values():
            held.update(retire_at=None, retire_revision=None)
        model = (live or {}).get("model")
        entry = state.record_change(current, "stop", model, (live or {}).get("slot"), by, "stopped")
    return {"revision": entry["revision"], "was": state.model_label(model)}


def boot() -> dict[str, Any]:
    """At boot (mlops-serving-boot.service): nothing the box ran before the restart runs
    now, so serving is made to match. A transition is closed as interrupted; a canary's
    candidate loses its share (100% on the live slot in one reload, then it stops); a
    shadow ends, mirror off first (its --duration timer died with the box); a slot kept
    warm for a rollback stops (its retire timer died too); the live slot runs."""
    with state.changing() as current:
        state.refuse_if_busy(current)
        reconcile(current)
        mirror = current.get("mirror")
        in_use = {(current.get("live") or {}).get("slot"), (mirror or {}).get("slot")}
        for slot, held in current.get("slots", {}).items():
            if held.get("retire_at") and slot not in in_use:
                slots.stop(slot)
                slots.enable(slot, on=False)
                held.update(retire_at=None, retire_revision=None)
    if mirror:
        shadow.end("the box's start", "the box restarted", mirror["revision"])
    return {"live": state.model_label((current.get("live") or {}).get("model"))}


def _running(current: dict[str, Any], kind: str) -> dict[str, Any] | None:
    transition = current.get("transition")
    if transition and transition.get("kind") == kind and state.transition_alive(transition):
        return dict(transition)
    return None


def _ask(current: dict[str, Any], transition: dict[str, Any], what: str, by: str) -> dict[str, Any]:
    """Ask the running loop to promote or abort at its next tick; the controller follows."""
    transition.update(request=what, request_by=by)
    current["transition"] = transition
    return {"revision": transition["revision"], "shown": len(transition.get("log", []))}


def _refuse_other(current: dict[str, Any], what: str) -> None:
    transition = current.get("transition")
    if transition and state.transition_alive(transition):
        raise AgentFailure(
            state.KIND_BUSY,
            f"Refused: {state.describe_transition(transition)} is running on the box, and "
            f"only a canary or a shadow can be {what}d. Follow it with "
            "`fab deploy.status --watch`.",
        )


def promote(by: str) -> dict[str, Any]:
    """During a canary: 100% to the candidate, which becomes live. During a shadow: the
    shadow's model, for the controller to deploy blue-green (its model and environment
    are prepared over SSH like any deploy's); it ends the shadow once that is live."""
    with state.changing() as current:
        running = _running(current, "canary")
        if running:
            return _ask(current, running, canary.PROMOTE, by)
        _refuse_other(current, "promote")
        mirror = current.get("mirror")
    if mirror:
        return {"shadow": mirror}
    raise AgentFailure(
        "nothing-to-promote",
        "Nothing to promote: no canary or shadow runs on the box (`fab deploy.status`).",
    )


def abort(by: str) -> dict[str, Any]:
    """During a canary: 100% back to the stable slot in one reload, then the candidate
    stops. A candidate an interrupted canary left with a share is taken out here too.
    During a shadow: the mirror off in one reload, then the shadow slot stops."""
    with state.changing() as current:
        running = _running(current, "canary")
        if running:
            return _ask(current, running, canary.ABORT, by)
        _refuse_other(current, "abort")
        state.refuse_if_busy(current)  # closes a dead transition in the history
        candidate = current.get("candidate")
        shadowing = bool(current.get("mirror"))
        if candidate:
            return {"entry": _abort_candidate(current, candidate, by)}
    if shadowing:
        return {"entry": shadow.end(by, "aborted")}
    raise AgentFailure("nothing-to-abort", "Nothing to abort: no canary or shadow runs on the box.")


def take_back(revision: int) -> dict[str, Any]:
    """The timer's retry of a canary's rollback that nginx refused (kinds/canary.py,
    `back`): 100% to the live slot in one reload, then the candidate stops. Refused again,
    the next timer is armed. A deploy that runs meanwhile is left alone: it took the
    candidate out when it began, and any candidate now is its own."""
    with state.changing() as current:
        transition = current.get("transition")
        if transition and state.transition_alive(transition):
            return {"message": f"{state.describe_transition(transition)} runs: nothing to do"}
        state.refuse_if_busy(current)  # closes a dead transition in the history
        candidate = current.get("candidate")
        if not candidate:
            return {"message": "no candidate has a share any more"}
        try:
            entry = _abort_candidate(
                current, candidate, "the take-back timer", f"revision {revision}'s rollback"
            )
        except AgentFailure:
            canary.arm_take_back(revision)
            raise
    return {"entry": entry}


def _abort_candidate(
    current: dict[str, Any],
    candidate: dict[str, Any],
    by: str,
    what: str = "the candidate an interrupted canary left",
) -> Any:
    """A candidate no running canary watches: 100% to the live slot, then it stops."""
    reconcile(current)
    return state.record_change(
        current,
        "abort",
        candidate["model"],
        candidate["slot"],
        by,
        "aborted",
        what,
        line=f"100% to the live slot, then {candidate['slot']} stopped",
    )
