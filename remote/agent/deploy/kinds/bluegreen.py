"""The steps of a blue-green deploy and of a rollback, run in the unit mlops-deploy.

Blue-green: start the model in the idle slot, wait for /ping and a warm-up prediction of
its own input example (any 4xx or 5xx refuses it before it gets traffic), switch 100% in
one reload, check through the router that it answers, bake while watching its error
rate, and roll back to the old slot (still warm) if the bake fails. The old slot stays
warm for the termination wait, then a timer on the box stops it.

Rollback: back to the previous model; one reload while its slot is still warm, else
start it again and check it like a new one before it gets any traffic.

State change and router reload go together (`switch`): the state is written only once
nginx runs the new config, so the state file always says what the router does.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ...system import layout, systemd
from ...system.failure import AgentFailure
from .. import gates, slots, state
from ..alias import move_alias
from ..settings import BlueGreen, Rollback
from ..transition import apply_router, cancel_retire, log, retire_later

VERIFY_TIMEOUT_S = 10.0
BAKE_REPORT_EVERY_S = 5.0
Assignment = dict[str, Any]


def switch(live: Assignment | None, previous: Assignment | None) -> float:
    """Route all traffic to `live` (None: to nothing) in one reload, record it, and check
    through the router that it answers; the seconds that took."""
    if live:  # first, so that a reboot right after the switch starts it again
        slots.enable(live["slot"])
    started = time.monotonic()
    with state.changing() as current:
        current["live"], current["previous"] = live, previous
        current["candidate"] = None
        apply_router(current)  # raises before the state is written if nginx refuses
    if live:
        verify(live["slot"])
    seconds = time.monotonic() - started
    for slot in layout.LIVE_SLOTS:
        if not live or slot != live["slot"]:
            slots.enable(slot, on=False)
    return seconds


def verify(slot: str) -> None:
    """Wait until a request through the router is answered by `slot`."""
    router = f"http://127.0.0.1:{layout.ROUTER_PORT}"
    deadline = time.monotonic() + VERIFY_TIMEOUT_S
    while time.monotonic() < deadline:
        status, headers, _ = slots.request(slot, "/ping", timeout_s=2, base=router)
        if status == 200 and headers.get("X-Model-Slot") == slot:
            return
        time.sleep(0.02)
    raise AgentFailure(
        "verify", f"The router did not answer from {slot} within {VERIFY_TIMEOUT_S:.0f}s."
    )


def start_checked(revision: int, slot: str, model: dict[str, Any]) -> None:
    """Give the idle `slot` the model, start it, wait for /ping and warm it up; a failure
    stops the slot again (it never had traffic) and raises AgentFailure."""
    label = state.model_label(model)
    if not os.path.isfile(f"{model['env']}/bin/python"):
        raise AgentFailure("env", f"The environment of {label} is gone from {model['env']}.")
    cancel_retire(slot)
    slots.stop(slot)
    slots.assign(slot, model, systemd.AGENT_PATH)
    with state.changing() as current:
        current.setdefault("slots", {})[slot] = {
            "model": model,
            "assigned": revision,
            "retire_at": None,
            "retire_revision": None,
        }
    log(revision, f"Starting {label} in slot {slot} (127.0.0.1:{layout.SLOT_PORTS[slot]})")
    try:
        slots.start(slot)
        seconds = slots.wait_ping(slot)
        log(revision, f"Slot {slot} answers /ping after {seconds:.1f}s")
        log(revision, f"Warm-up: {slots.warm_up(slot, model, revision)}")
    except AgentFailure:
        slots.stop(slot)
        raise


def bake(revision: int, slot: str, seconds: float, max_rate: float, offset: int) -> str | None:
    """Watch `slot` for `seconds`: None if it held, else why it failed."""
    window = gates.Window(slot, offset)
    end = time.monotonic() + seconds
    report = time.monotonic() + BAKE_REPORT_EVERY_S
    while time.monotonic() < end:
        time.sleep(min(0.5, max(0.0, end - time.monotonic())))
        if not slots.active(slot):
            return f"slot {slot} stopped during the bake: {slots.journal(slot)}"
        gates.read_new(window)
        if window.errors and window.error_rate > max_rate:
            return f"{window.describe()} during the bake, above {max_rate:.1%}"
        if time.monotonic() >= report:
            left = max(0.0, end - time.monotonic())
            log(revision, f"Baking {slot}: {window.describe()}, {left:.0f}s left")
            report += BAKE_REPORT_EVERY_S
    log(revision, f"Bake passed: {window.describe()} in {seconds:.0f}s")
    return None


def blue_green(
    revision: int, transition: dict[str, Any], current: dict[str, Any]
) -> tuple[str, str]:
    settings = BlueGreen.of(transition["settings"])
    model = transition["model"]
    old, old_previous = current.get("live"), current.get("previous")
    slot = "green" if old and old["slot"] == "blue" else "blue"
    label = state.model_label(model)
    log(revision, f"Blue-green to {label}: slot {slot}", slot=slot, **{"from": old})
    try:
        start_checked(revision, slot, model)
    except AgentFailure as refused:
        return "refused", refused.sentence
    offset = gates.log_offset()
    try:
        seconds = switch({"slot": slot, "model": model}, old)
    except AgentFailure as failed:
        switch(old, old_previous)
        drop(slot)
        return "failed", failed.sentence
    log(
        revision,
        f"Switched 100% to {slot} ({label}) in {seconds * 1000:.0f} ms",
        switch_ms=round(seconds * 1000, 1),
    )
    verdict = None
    if not old:  # a bake could only roll back to nothing served at all
        log(revision, "Nothing was live before: no bake, as there is nothing to roll back to")
    else:
        verdict = bake(revision, slot, settings.bake, settings.max_error_rate, offset)
    if verdict and old:
        log(revision, f"Bake failed ({verdict}): rolling back")
        switch(old, old_previous)
        drop(slot)
        log(revision, f"Rolled back: back to {old['slot']} ({state.model_label(old['model'])})")
        return "rolled back", verdict
    log(revision, sentence(move_alias(model)))
    if old:
        warm_until(revision, old["slot"], settings.termination_wait)
    return "live", ""


def drop(slot: str) -> None:
    """Stop a slot that has no traffic, and keep it from starting at boot."""
    slots.stop(slot)
    slots.enable(slot, on=False)


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def warm_until(revision: int, slot: str, seconds: float) -> None:
    """Keep the slot that lost its traffic warm for `seconds` (a timer stops it)."""
    until = retire_later(slot, revision, seconds)
    with state.changing() as current:
        held = current.setdefault("slots", {}).setdefault(slot, {})
        held.update(retire_at=until, retire_revision=revision if until else None)
    log(revision, f"Slot {slot} stays warm until {until}" if until else f"Stopped slot {slot}")


def rollback(revision: int, transition: dict[str, Any], current: dict[str, Any]) -> tuple[str, str]:
    settings = Rollback.of(transition["settings"])
    target, live = current.get("previous"), current.get("live")
    if not target:
        return "refused", "nothing to roll back to"
    slot, model = target["slot"], target["model"]
    label = state.model_label(model)
    log(revision, f"Rollback to {label} in slot {slot}", slot=slot, model=model, **{"from": live})
    held = current.get("slots", {}).get(slot, {})
    if slots.active(slot) and (held.get("model") or {}).get("dir") == model["dir"]:
        cancel_retire(slot)
        log(revision, f"Slot {slot} is still warm: switching back in one reload")
    else:
        log(revision, f"Slot {slot} was stopped: starting {label} again before any traffic")
        try:
            start_checked(revision, slot, model)
        except AgentFailure as refused:
            return "failed", refused.sentence
    try:
        seconds = switch(target, live)
    except AgentFailure as failed:
        switch(live, target)
        return "failed", failed.sentence
    log(
        revision,
        f"Switched 100% to {slot} ({label}) in {seconds * 1000:.0f} ms",
        switch_ms=round(seconds * 1000, 1),
    )
    log(revision, sentence(move_alias(model)))
    if live and live["slot"] != slot:
        warm_until(revision, live["slot"], settings.termination_wait)
    return "live", f"rolled back from {state.model_label((live or {}).get('model'))}"
