"""A canary, run in the unit mlops-deploy: a share of the traffic, step by step, judged.

The candidate starts in the idle slot and is checked as for blue-green (/ping, its own
input example) before it gets any traffic. Then, for each step: one reload gives it the
step's weight (per request, from the request id), it bakes, and the gate judges it from
its own requests only (the router's log, by the slot they were routed to): error rate
(4xx and 5xx), p99 latency, how many. Too few requests is inconclusive: the bake goes
on until --max-duration, then the canary rolls back. A candidate that stops answering
(its unit stopped or restarted, /ping fails, the router could not reach it) fails at
once. After the last step (100%) it becomes live and `champion` moves to it.

Rolling back is always: 100% to the stable slot in one reload first, then stop the
candidate. The stable slot is never touched. If nginx refuses that reload (another site
broke its config, a port is taken), the candidate keeps its share and keeps running:
stopping it would fail every request the router still sends it. The loop retries for
ROLLBACK_RETRY_S, then the canary ends as failed, saying so, and a timer on the box
retries every TAKE_BACK_EVERY_S until nginx takes it (control.take_back).
`fab deploy.promote` and `fab deploy.abort` ask the running loop (a `request` in the
transition) and it acts at its next tick.
"""

from __future__ import annotations

import time
from typing import Any

from ...system import layout
from ...system.failure import AgentFailure
from .. import gates, slots, state
from ..alias import move_alias
from ..commands import TAKE_BACK
from ..settings import Canary
from ..transition import apply_router, log, timer
from .bluegreen import drop, sentence, start_checked, switch, warm_until

TICK_S = 0.5
REPORT_EVERY_S = 2.0
PING_EVERY_S = 1.0
PING_TIMEOUT_S = 2.0
PING_MISSES = 2  # in a row: one slow answer under load is not a dead slot
PROMOTE, ABORT = "promote", "abort"
ROLLBACK_RETRY_S = 20.0  # a refused reload that long is not a passing hiccup
ROLLBACK_RETRY_EVERY_S = 2.0
TAKE_BACK_EVERY_S = 30.0
KIND_ROLLBACK_REFUSED = "rollback-refused"
Assignment = dict[str, Any]


class Health:
    """Whether the candidate still answers: its unit, its restarts, its /ping."""

    def __init__(self, slot: str) -> None:
        self.slot = slot
        self.restarts = slots.restarts(slot)
        self.misses = 0
        self.next_ping = 0.0

    def problem(self) -> str | None:
        if not slots.active(self.slot):
            return f"slot {self.slot} stopped: {slots.journal(self.slot)}"
        if slots.restarts(self.slot) > self.restarts:
            return f"the model server in slot {self.slot} crashed and was restarted"
        if time.monotonic() >= self.next_ping:
            self.next_ping = time.monotonic() + PING_EVERY_S
            answered = slots.request(self.slot, "/ping", timeout_s=PING_TIMEOUT_S)[0] == 200
            self.misses = 0 if answered else self.misses + 1
            if self.misses >= PING_MISSES:
                return f"slot {self.slot} did not answer /ping {self.misses} times in a row"
        return None


def other_slot(slot: str) -> str:
    return "green" if slot == "blue" else "blue"


def canary(revision: int, transition: dict[str, Any], current: dict[str, Any]) -> tuple[str, str]:
    """The canary's steps; (outcome, reason) for the history."""
    settings = Canary.of(transition["settings"])
    model = transition["model"]
    stable = current.get("live")
    if not stable:
        return "refused", "nothing is live to compare a canary with"
    slot, label = other_slot(stable["slot"]), state.model_label(model)
    steps = list(settings.steps)
    gate = gates.Gate(
        settings.max_error_rate,
        settings.min_requests,
        settings.max_p99_ms,
    )
    log(
        revision,
        f"Canary of {label} in slot {slot} beside {stable['slot']} "
        f"({state.model_label(stable['model'])}): steps {', '.join(f'{s}%' for s in steps)}",
        slot=slot,
        steps=[],
        **{"from": stable},
    )
    if _request(revision) == ABORT:
        return "aborted", "aborted before it started"
    try:
        start_checked(revision, slot, model)
    except AgentFailure as refused:
        return "refused", refused.sentence
    max_duration = settings.max_duration
    deadline = time.monotonic() + max_duration
    deadline_at = state.later(max_duration)
    health = Health(slot)
    try:
        for index, weight in enumerate(steps, 1):
            with state.changing() as now:
                now["candidate"] = {"slot": slot, "model": model, "weight": weight}
                apply_router(now)  # the reload comes first; the state says it once it runs
            step = Step(revision, index, len(steps), weight, slot, deadline, deadline_at)
            verdict, reason = step.bake(gate, settings.bake, health)
            step.record(verdict, reason)
            if verdict == ABORT:
                back(revision, slot, reason)
                return "aborted", reason
            if verdict == PROMOTE:
                break
            if verdict != gates.PASS:
                back(revision, slot, reason)
                return "rolled back", f"step {index} at {weight}%: {reason}"
        switch({"slot": slot, "model": model}, stable)
    except RollbackRefused:
        raise
    except Exception:
        back(revision, slot, "an unforeseen failure")
        raise
    log(revision, f"{label} is live in slot {slot} (100%)")
    log(revision, sentence(move_alias(model)))
    warm_until(revision, stable["slot"], settings.termination_wait)
    return "live", ""


class RollbackRefused(AgentFailure):
    """nginx would not load the rollback's router config: the candidate keeps its share."""


def back(revision: int, slot: str, why: str) -> None:
    """All traffic to the stable slot in one reload, then stop the candidate. A refused
    reload is retried for ROLLBACK_RETRY_S; then RollbackRefused, with a timer armed."""
    deadline = time.monotonic() + ROLLBACK_RETRY_S
    while True:
        try:
            with state.changing() as current:
                weight = (current.get("candidate") or {}).get("weight")
                current["candidate"] = None
                apply_router(current)  # raises before the state is written if nginx refuses
            break
        except AgentFailure as refused:
            if time.monotonic() >= deadline:
                timer = arm_take_back(revision)
                raise RollbackRefused(
                    KIND_ROLLBACK_REFUSED,
                    f"rolling back ({why}) failed: nginx would not load the router without "
                    f"the candidate ({refused.sentence}); {slot} keeps its {weight}% and keeps "
                    f"running. Fix nginx: {timer or 'nothing'} retries every "
                    f"{TAKE_BACK_EVERY_S:.0f}s, or run `fab deploy.abort`.",
                ) from None
            log(
                revision,
                f"Rolling back ({why}): nginx refused the reload ({refused.sentence}); "
                f"{slot} keeps its {weight}% meanwhile, retrying",
            )
            time.sleep(ROLLBACK_RETRY_EVERY_S)
    drop(slot)
    log(revision, f"Rolled back ({why}): 100% on the stable slot, {slot} stopped")


def arm_take_back(revision: int) -> str | None:
    """A timer that retries the rollback of `revision`'s candidate (control.take_back);
    its unit name, or None when systemd would not make it."""
    unit = layout.TAKE_BACK_UNIT.format(revision=revision, attempt=time.time_ns())
    return unit if timer(unit, TAKE_BACK_EVERY_S, TAKE_BACK, str(revision)) else None


def _request(revision: int) -> str | None:
    """What `deploy.promote` or `deploy.abort` asked of this transition, if anything."""
    transition = state.load().get("transition") or {}
    if transition.get("revision") != revision:
        return None
    request = transition.get("request")
    return str(request) if request else None


class Step:
    """One step: its weight, its bake and its verdict, logged as it goes."""

    def __init__(
        self,
        revision: int,
        index: int,
        steps: int,
        weight: int,
        slot: str,
        deadline: float,
        deadline_at: str,
    ) -> None:
        self.revision, self.index, self.steps, self.weight = revision, index, steps, weight
        self.deadline, self.deadline_at = deadline, deadline_at
        self.window = gates.Window(slot, gates.log_offset())
        self.started = time.time()
        self.name = f"Step {index}/{steps} at {weight}%"

    def bake(self, gate: gates.Gate, seconds: float, health: Health) -> tuple[str, str]:
        """Watch the candidate for `seconds` (longer while too few requests came, up to the
        canary's deadline); the verdict and why."""
        end = time.monotonic() + seconds
        report = 0.0
        self._progress(gates.INCONCLUSIVE, end)
        while True:
            time.sleep(TICK_S)
            request = _request(self.revision)
            if request:
                return request, f"{request} asked by {self._asker()}"
            problem = health.problem()
            if problem:
                return gates.FAIL, problem
            gates.read_new(self.window)
            moment = time.monotonic()
            verdict, why = gates.judge(self.window, gate, final=moment >= end)
            if verdict == gates.FAIL or verdict == gates.PASS:
                return verdict, why
            if moment >= self.deadline:
                return gates.FAIL, f"--max-duration reached: {why}"
            if moment >= report:
                self._progress(verdict, end)
                report = moment + REPORT_EVERY_S

    def _asker(self) -> str:
        transition = state.load().get("transition") or {}
        return str(transition.get("request_by") or "someone")

    def _progress(self, verdict: str, end: float) -> None:
        moment = time.monotonic()
        bake_left = max(0.0, end - moment)
        left = f"{bake_left:.0f}s left of the bake" if bake_left else "waiting for requests"
        log(
            self.revision,
            f"{self.name}: {self.window.describe()}{self._p99()}, {left}, "
            f"{max(0.0, self.deadline - moment):.0f}s to --max-duration",
            canary={
                "step": self.index,
                "of": self.steps,
                "weight": self.weight,
                "verdict": verdict,
                "figures": self.window.figures(),
                "bake_ends": state.later(bake_left),
                "deadline": self.deadline_at,
            },
        )

    def _p99(self) -> str:
        p99 = self.window.p99_ms
        return "" if p99 is None else f", p99 {p99:.0f} ms"

    def record(self, verdict: str, reason: str) -> None:
        """The step's verdict and figures, into the transition (and so the history)."""
        entry = {
            "step": self.index,
            "weight": self.weight,
            "started": round(self.started, 3),
            "ended": round(time.time(), 3),
            "verdict": verdict,
            "reason": reason,
            **self.window.figures(),
        }
        with state.changing() as current:
            transition = current.get("transition")
            if transition and transition.get("revision") == self.revision:
                transition["steps"] = [*transition.get("steps", []), entry]
        log(self.revision, f"{self.name}: {verdict} ({reason})")
