"""The unit mlops-deploy-<revision>'s body (`deploy-run`): the recorded transition, run
with the steps of its kind (kinds.KINDS), and closed in history."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..system import files, gc, layout
from ..system.failure import AgentFailure
from . import state
from .kinds import KINDS, Kind
from .kinds.bluegreen import switch
from .kinds.canary import RollbackRefused
from .transition import log

# A kind of transition's steps: (revision, transition, state) -> (outcome, reason).
Steps = Callable[[int, dict[str, Any], dict[str, Any]], tuple[str, str]]


def steps_of(kind: Kind) -> Steps:
    module, _, function = kind.steps.partition(":")
    found: Steps = getattr(importlib.import_module(f"{__package__}.kinds.{module}"), function)
    return found


def run(revision: int) -> dict[str, Any]:
    """The transition unit's body: run the recorded transition with the steps of its kind
    (kinds.KINDS) and close it in history."""
    with files.flocked(layout.TRANSITION_LOCK, blocking=False) as mine:
        if not mine:
            raise AgentFailure(state.KIND_BUSY, "Another transition holds the lock.")
        current = state.load()
        transition = current.get("transition") or {}
        if transition.get("revision") != revision:
            raise AgentFailure("lost", f"Revision {revision} is not the recorded transition.")
        before = {"live": current.get("live"), "previous": current.get("previous")}
        unit = transition.get("unit") or layout.TRANSITION_UNIT
        log(revision, f"Running on the box as {unit}", phase="running")
        try:
            steps = steps_of(KINDS[transition["kind"]])
            outcome, reason = steps(revision, transition, current)
        except RollbackRefused as refused:  # the candidate keeps its share; a timer retries
            outcome, reason = "failed", refused.sentence
            log(revision, f"Failed: {reason}")
        except Exception as exc:  # anything unforeseen: back to the routing it started from
            outcome, reason = "failed", f"{type(exc).__name__}: {exc}"
            log(revision, f"Failed ({reason}): restoring the routing it started from")
            try:
                switch(before["live"], before["previous"])
            except Exception as again:
                reason += f"; restoring the routing failed too: {again}"
        with state.changing() as current:
            entry = state.close_transition(current, outcome, reason)
    print(f"Revision {revision}: {outcome}" + (f" ({reason})" if reason else ""), flush=True)
    gc.after(f"revision {revision}")
    return {"outcome": entry["outcome"], "reason": entry["reason"]}
