"""What serves where, what runs now, what happened: read from the box, shown as text.

`follow` prints a transition's progress lines as the box records them in the deploy state
(it reads the state file, which any user may read, about twice a second) and returns its
history entry once it ended; `show` (all of `deploy.status`) uses it to reattach. The
describe_* functions are pure.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable
from typing import Any

from paramiko.ssh_exception import SSHException

from remote import contract
from remote.agent.deploy import commands as deploy_cmds
from remote.errors import DeployError, WaitTimeout
from remote.system.agent import run_agent
from remote.system.run import Connection, check

POLL_S = 0.5
# A transition's own waits are bounded (start, warm-up, bake, verify); this is their sum
# with room to spare, on top of its bake.
FOLLOW_MARGIN_S = 900.0


def read_state(conn: Connection) -> dict[str, Any] | None:
    """The deploy state file, or None before the first deploy."""
    found = check(conn, f"cat {contract.DEPLOY_STATE_FILE}")
    if not found.ok:
        return None
    try:
        state = json.loads(found.stdout)
    except ValueError:
        raise DeployError(f"{contract.DEPLOY_STATE_FILE} on the box is not JSON.") from None
    return state if isinstance(state, dict) else None


def read_status(conn: Connection) -> dict[str, Any]:
    """The state and what systemd and nginx say, from the agent."""
    return run_agent(conn, deploy_cmds.STATUS, error=DeployError)


def show(
    conn: Connection,
    name: str,
    *,
    watch: bool = False,
    say: Callable[[str], None] = print,
) -> str:
    """What serves where on box `name`; with `watch`, follow a running deploy first (its
    progress through `say`) until it ends."""
    answer = read_status(conn)
    transition = answer["state"].get("transition")
    if watch and transition and transition.get("phase") == "preparing":
        say(
            f"Revision {transition['revision']} is being prepared by {transition['by']} "
            "(the model fetched, its environment built); it switches on the box after."
        )
    elif watch and transition and answer.get("transition_alive"):
        say(f"Following revision {transition['revision']} ({transition['kind']})")
        entry = follow(conn, int(transition["revision"]), say=say)
        say(outcome_sentence(entry))
        answer = read_status(conn)
    return describe_status(answer, name, datetime.datetime.now(datetime.UTC))


def follow(
    conn: Connection,
    revision: int,
    *,
    say: Callable[[str], None],
    timeout_s: float | None = None,
    shown: int = 0,
) -> dict[str, Any]:
    """Print the transition's progress lines (after the first `shown`) until it ends;
    return its history entry.

    Losing the connection, or Ctrl-C, stops only the following: the box goes on.
    """
    again = f"Revision {revision} goes on on the box: follow it with `fab deploy.status --watch`."
    try:
        return _follow(conn, revision, say, timeout_s, shown)
    except KeyboardInterrupt:
        raise DeployError(f"Stopped following. {again}") from None
    except (OSError, EOFError, SSHException) as exc:
        raise DeployError(f"Lost the connection to the box ({exc}). {again}") from None


def _follow(
    conn: Connection,
    revision: int,
    say: Callable[[str], None],
    timeout_s: float | None,
    shown: int,
) -> dict[str, Any]:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        state = read_state(conn) or {}
        transition = state.get("transition") or {}
        if transition.get("revision") == revision:
            lines = transition.get("log", [])
            for line in lines[shown:]:
                say(f"  {line}")
            shown = max(shown, len(lines))
            if deadline is None and transition.get("settings"):
                deadline = time.monotonic() + longest_s(transition["settings"]) + FOLLOW_MARGIN_S
        else:
            entry = _entry(state, revision)
            if entry is None:
                raise DeployError(f"Revision {revision} is neither running nor in the history.")
            for line in entry.get("log", [])[shown:]:
                say(f"  {line}")
            return entry
        if deadline is not None and time.monotonic() > deadline:
            raise WaitTimeout(
                f"Revision {revision} is still running on the box after the time it should "
                "take: follow it with `fab deploy.status --watch`, or read `journalctl -u "
                f"mlops-deploy-{revision}` on the box."
            )
        time.sleep(POLL_S)


def longest_s(settings: dict[str, Any]) -> float:
    """How long a transition's steps may take: its bake, or a canary's --max-duration."""
    return max(float(settings.get("bake", 0)), float(settings.get("max_duration", 0)))


def _entry(state: dict[str, Any], revision: int) -> dict[str, Any] | None:
    for entry in reversed(state.get("history", [])):
        if entry.get("revision") == revision:
            return dict(entry)
    return None


def label(model: dict[str, Any] | None) -> str:
    return f"{model['name']}/{model['version']}" if model else "-"


def outcome_sentence(entry: dict[str, Any]) -> str:
    """One line for how a transition ended."""
    what = f"Revision {entry.get('revision')} ({entry.get('kind')} of {entry.get('model_uri')})"
    reason = f": {entry['reason']}" if entry.get("reason") else ""
    outcome = entry.get("outcome")
    if outcome == "live":
        return f"{what} is live in slot {entry.get('slot')}{reason}."
    if outcome == "refused":
        return f"{what} was refused and never got traffic{reason}."
    if entry.get("kind") == "shadow-end":
        return (
            f"Revision {entry.get('revision')}: the shadow of {entry.get('model_uri')} ended"
            f"{reason}; the mirror is off and slot {entry.get('slot')} stopped."
        )
    if outcome == "shadowing":
        return f"{what} gets copies of the live traffic in slot {entry.get('slot')}{reason}."
    if outcome == "rolled back":
        return f"{what} was rolled back{reason}."
    if outcome == "aborted":
        return f"{what} was aborted{reason}: the live model answers every request."
    return f"{what} ended {outcome}{reason}."


def _left(moment: str | None, now: datetime.datetime) -> str:
    if not moment:
        return ""
    seconds = (datetime.datetime.fromisoformat(moment) - now).total_seconds()
    return f", stopped in {max(0, seconds):.0f}s by a timer" if seconds > 0 else ""


def describe_status(answer: dict[str, Any], name: str, now: datetime.datetime) -> str:
    """`fab deploy.status` as text, from the agent's deploy-status answer."""
    state = answer["state"]
    live, previous = state.get("live"), state.get("previous")
    router = (
        f"nginx {answer['nginx']} on 127.0.0.1:{contract.ROUTER_PORT}"
        if answer.get("router_configured")
        else f"not configured (nginx {answer['nginx']})"
    )
    lines = [f"Serving on {name}: router {router}, revision {state.get('revision', 0)}"]
    if live:
        lines.append(
            f"  live      {live['slot']:<6} {label(live['model'])}  ({live['model'].get('uri')})"
        )
    else:
        lines.append("  live      nothing: deploy with `fab deploy.blue-green --model URI`")
    if previous:
        lines.append(f"  previous  {previous['slot']:<6} {label(previous['model'])}  (rollback)")
    candidate = state.get("candidate")
    if candidate:
        lines.append(
            f"  candidate {candidate['slot']:<6} {label(candidate['model'])}  "
            f"({candidate['weight']}% of the requests)"
        )
    mirror = state.get("mirror")
    if mirror:
        until = f" until {mirror['until']}" if mirror.get("until") else ""
        lines.append(
            f"  shadow    {mirror['slot']:<6} {label(mirror['model'])}  ({mirror['sample']:g}% "
            f"of the traffic copied since {mirror.get('started')}{until})"
        )
    lines.append("  slots")
    for slot, unit in answer["slots"].items():
        held = state.get("slots", {}).get(slot, {})
        boot = "starts at boot" if unit["enabled"] else "not at boot"
        lines.append(
            f"    {slot:<7} 127.0.0.1:{unit['port']}  {unit['active']:<9} "
            f"{label(held.get('model')):<24} {boot}{_left(held.get('retire_at'), now)}"
        )
    transition = state.get("transition")
    if transition:
        alive = "running" if answer.get("transition_alive") else "no longer running"
        lines.append(
            f"  now       revision {transition.get('revision')} {transition.get('kind')} of "
            f"{transition.get('model_uri')}, {alive}: {transition.get('step')}"
        )
        if transition.get("canary"):
            lines.append(f"  canary    {describe_canary(transition['canary'], now)}")
    last = state.get("last")
    if last:
        lines.append(f"  last      {outcome_sentence(last)} ({last.get('finished')})")
    return "\n".join(lines)


def describe_canary(canary: dict[str, Any], now: datetime.datetime) -> str:
    """A running canary's step, weight, gate figures and time left, in one line."""
    figures = canary.get("figures", {})
    p99 = figures.get("p99_ms")
    latency = f", p99 {p99:.0f} ms" if p99 is not None else ""

    def left(moment: str | None) -> float:
        if not moment:
            return 0.0
        return max(0.0, (datetime.datetime.fromisoformat(moment) - now).total_seconds())

    return (
        f"step {canary.get('step')}/{canary.get('of')} at {canary.get('weight')}%: "
        f"{figures.get('requests', 0)} requests, {figures.get('errors', 0)} errors "
        f"({float(figures.get('error_rate', 0)):.1%}){latency}, "
        f"{left(canary.get('bake_ends')):.0f}s left of the bake, "
        f"{left(canary.get('deadline')):.0f}s to --max-duration"
    )


def describe_history(history: list[dict[str, Any]]) -> str:
    if not history:
        return "No deploys yet."
    lines = [f"{'rev':>4}  {'finished':<25} {'kind':<10} {'model':<28} {'slot':<6} outcome"]
    for entry in history:
        lines.append(
            f"{entry.get('revision', '?'):>4}  {entry.get('finished') or '-':<25} "
            f"{entry.get('kind') or '-':<10} {label(entry.get('model')):<28} "
            f"{entry.get('slot') or '-':<6} {entry.get('outcome')}"
            + (f": {entry['reason']}" if entry.get("reason") else "")
        )
        for step in entry.get("steps") or []:
            lines.append(
                f"{'':>6}step {step['step']} at {step['weight']}%: {step['verdict']} "
                f"({step['reason']})"
            )
    return "\n".join(lines)
