"""The deploy state file: what serves where, the transition running now, and the history.

Only the agent writes it, under one flock, by writing a temp file, fsyncing it and
renaming it over the old one, so a reader (the controller's `cat`, a crash, a reboot)
sees the whole old state or the whole new one. Its shape:

  revision     the last deploy revision handed out (every history entry has one)
  live         {"slot", "model"}: where the router sends traffic; null before a first deploy
  previous     {"slot", "model"}: what `rollback` goes back to
  candidate    {"slot", "model", "weight"}: a share of the traffic (canary); null here
  mirror       {"slot", "model", "sample"}: a copy of a sample of the traffic (shadow)
  slots        slot -> the model it was last given, its revision and when its timer stops it
  transition   the deploy running now: kind, model, phase, step, log lines; or null
  history      one entry per deploy, rollback or stop: revision, kind, model, slot,
               from, started, finished, outcome, reason, log; a canary's steps with
               each one's verdict and gate figures

A model is {"name", "version", "uri" (as the user gave it), "source" (as resolved),
"run_id", "dir" (its files on the box), "env" (its virtualenv), "example" (has one)}.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import os
from collections.abc import Iterator
from typing import Any

from ..system import layout, systemd
from ..system.failure import AgentFailure
from ..system.files import flocked, write_text

FORMAT = 1
HISTORY_KEEP = 200
LOG_KEEP = 60  # progress lines a history entry keeps

KIND_BUSY = "busy"
KIND_STATE = "state"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def later(seconds: float) -> str:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
    return moment.isoformat(timespec="seconds")


def empty() -> dict[str, Any]:
    return {
        "format": FORMAT,
        "revision": 0,
        "live": None,
        "previous": None,
        "candidate": None,
        "mirror": None,
        "slots": {},
        "transition": None,
        "history": [],
    }


def load(path: str = layout.DEPLOY_STATE_FILE) -> dict[str, Any]:
    """The state on disk, or an empty one before the first deploy."""
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except FileNotFoundError:
        return empty()
    except ValueError:
        raise AgentFailure(
            KIND_STATE, f"{path} is not JSON: restore it from its last good copy or remove it."
        ) from None
    return {**empty(), **state}


def write(state: dict[str, Any], path: str = layout.DEPLOY_STATE_FILE) -> None:
    """Write the whole state atomically (a reader sees the old or the new, never a part)."""
    write_text(path, json.dumps(state, indent=1, sort_keys=True) + "\n")


@contextlib.contextmanager
def changing(path: str = layout.DEPLOY_STATE_FILE) -> Iterator[dict[str, Any]]:
    """The state, under the lock; written back when the block changed it and did not raise."""
    lock = os.path.join(os.path.dirname(path), os.path.basename(layout.DEPLOY_STATE_LOCK))
    with flocked(lock):
        state = load(path)
        before = copy.deepcopy(state)
        yield state
        if state != before:
            write(state, path)


# -- the running transition, and whether it is still alive ------------------------------


def _start_ticks(pid: int) -> int | None:
    """A process's start time (clock ticks since boot): with its pid, names it uniquely."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19])  # field 22 of stat(5); 20 after the ")"-terminated name


def holder_of(pid: int) -> dict[str, int] | None:
    """The lease of a process (the controller's SSH session) while it prepares a deploy."""
    ticks = _start_ticks(pid)
    return None if ticks is None else {"pid": pid, "start": ticks}


def transition_alive(transition: dict[str, Any]) -> bool:
    """Whether the recorded transition still runs: the preparing controller's SSH session
    lives, or the transition unit runs (or holds its lock)."""
    if transition.get("phase") == "preparing":
        holder = transition.get("holder") or {}
        return _start_ticks(int(holder.get("pid", 0))) == holder.get("start")
    name = transition.get("unit") or layout.TRANSITION_UNIT
    unit = systemd.is_active(f"{name}.service")
    if unit in ("active", "activating", "deactivating"):
        return True
    with flocked(layout.TRANSITION_LOCK, blocking=False) as free:
        return not free


def describe_transition(transition: dict[str, Any]) -> str:
    """One phrase naming a transition, for the message that refuses a second one."""
    model = transition.get("model_uri", "?")
    step = transition.get("step") or transition.get("phase", "")
    return (
        f"a {transition.get('kind', 'deploy')} of {model} (revision {transition.get('revision')}, "
        f"started {transition.get('started', '?')} by {transition.get('by', '?')}; now: {step})"
    )


def refuse_if_busy(state: dict[str, Any]) -> None:
    """AgentFailure(busy) naming the transition that runs; a dead one is closed in history."""
    transition = state.get("transition")
    if not transition:
        return
    if transition_alive(transition):
        raise AgentFailure(
            KIND_BUSY,
            f"Refused: {describe_transition(transition)} is running on the box. Follow it "
            "with `fab deploy.status --watch` and run this again once it has ended.",
        )
    close_transition(
        state,
        "interrupted",
        "its process ended before it finished (the box restarted, or it was killed); "
        "the routing is the last one it recorded",
    )


# -- history -----------------------------------------------------------------------------


def close_transition(state: dict[str, Any], outcome: str, reason: str = "") -> dict[str, Any]:
    """End the running transition: its history entry gets the outcome; returns the entry."""
    transition = state.get("transition") or {}
    entry = {
        "revision": transition.get("revision"),
        "kind": transition.get("kind"),
        "model_uri": transition.get("model_uri"),
        "model": transition.get("model"),
        "slot": transition.get("slot"),
        "from": transition.get("from"),
        "by": transition.get("by"),
        "started": transition.get("started"),
        "finished": now(),
        "outcome": outcome,
        "reason": reason,
        "switch_ms": transition.get("switch_ms"),
        "steps": transition.get("steps"),
        "log": list(transition.get("log", []))[-LOG_KEEP:],
    }
    state["history"] = [*state.get("history", []), entry][-HISTORY_KEEP:]
    state["transition"] = None
    return entry


def record_change(
    state: dict[str, Any],
    kind: str,
    model: dict[str, Any] | None,
    slot: str | None,
    by: str,
    outcome: str,
    reason: str = "",
    *,
    line: str = "",
    started: str | None = None,
    **more: Any,
) -> dict[str, Any]:
    """A history entry, with a revision of its own, for a change made at once under the
    lock (a stop, a left candidate's abort, a shadow's end); the running transition, if
    any, stays as it was."""
    revision = int(state.get("revision", 0)) + 1
    state["revision"] = revision
    running = state.get("transition")
    state["transition"] = {
        "revision": revision,
        "kind": kind,
        "model_uri": (model or {}).get("uri"),
        "model": model,
        "slot": slot,
        "by": by,
        "started": started or now(),
        "log": [line] if line else [],
        **more,
    }
    entry = close_transition(state, outcome, reason)
    state["transition"] = running
    return entry


def model_label(model: dict[str, Any] | None) -> str:
    """`<name>/<version>`: what X-Model-Version carries."""
    return f"{model['name']}/{model['version']}" if model else "-"
