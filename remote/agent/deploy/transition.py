"""A deploy's life on the box: begin, launch as a systemd unit, log its steps, end.

A deploy is one transition, recorded in the state file from the moment it begins:
  preparing  the controller fetches the model and builds its environment; the transition
             stays alive as long as the controller's SSH session does (its lease);
  launched / running  the steps run in the unit mlops-deploy-<revision>, which holds a
             lock for its whole life, so a dropped SSH connection changes nothing;
and ends in history with an outcome: live, rolled back, refused, failed or interrupted.
Only one transition exists at a time: a second is refused naming the first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..system import layout, nginx, systemd
from ..system.failure import AgentFailure
from . import commands, router, slots, state
from .kinds import KINDS
from .settings import KIND_LAUNCH


def begin(kind: str, model_uri: str, holder_pid: int, by: str) -> dict[str, Any]:
    """Record a new transition (phase preparing), or refuse if one runs."""
    holder = state.holder_of(holder_pid)
    if holder is None:
        raise AgentFailure("holder", f"No process {holder_pid} on the box to hold the deploy.")
    with state.changing() as current:
        state.refuse_if_busy(current)
        # Every refusal before `reconcile`, which may reload nginx and start or stop slots:
        # a refused deploy changes nothing on the box. (Reconciling changes no live,
        # previous or mirror, which the refusals read.)
        if kind == "rollback" and not current.get("previous"):
            raise AgentFailure(
                "nothing-to-roll-back", "Nothing to roll back to: no earlier model was live."
            )
        if kind == "canary" and current.get("mirror"):
            raise AgentFailure(
                state.KIND_BUSY,
                f"A shadow of {state.model_label(current['mirror']['model'])} runs: end it "
                "with `fab deploy.abort` (or `fab deploy.promote`) before a canary.",
            )
        if kind == "canary" and not current.get("live"):
            raise AgentFailure(
                "nothing-live",
                "Nothing is live to compare a canary with: deploy a first model with "
                "`fab deploy.blue-green --model URI`.",
            )
        reconcile(current)
        revision = int(current.get("revision", 0)) + 1
        current["revision"] = revision
        current["transition"] = {
            "revision": revision,
            "kind": kind,
            "model_uri": model_uri or ((current["previous"] or {}).get("model") or {}).get("uri"),
            "phase": "preparing",
            "holder": holder,
            "by": by,
            "started": state.now(),
            "step": "preparing",
            "log": [],
        }
    return {"revision": revision}


def _ours(current: dict[str, Any], revision: int) -> dict[str, Any]:
    transition = current.get("transition")
    if not transition or transition.get("revision") != revision:
        raise AgentFailure(
            "lost", f"Revision {revision} is no longer the running deploy: see `fab deploy.status`."
        )
    return dict(transition)


def record_model(revision: int, model: dict[str, Any]) -> None:
    """The fetched model, kept in the preparing transition (the fetch step calls this)."""
    with state.changing() as current:
        transition = _ours(current, revision)
        transition["model"] = {k: v for k, v in model.items() if k != "requirements"}
        transition["model_uri"] = model["uri"]
        current["transition"] = transition


def abandon(revision: int, reason: str) -> dict[str, Any]:
    """End a transition that never started its steps (the fetch or the env build failed)."""
    with state.changing() as current:
        transition = current.get("transition")
        if transition and transition.get("revision") == revision:
            state.close_transition(current, "refused", reason)
    return {}


def launch(revision: int, options: Mapping[str, Any]) -> dict[str, Any]:
    """Start the transition's steps as the unit mlops-deploy-<revision>; returns at once.
    `options` are deploy-launch's: the transition's kind takes its settings from them."""
    with state.changing() as current:
        transition = _ours(current, revision)
        kind = KINDS[transition["kind"]]
        settings = kind.settings.of(options).stored()
        model = transition.get("model")
        if kind.new_model:
            if not model or not os.path.isfile(f"{settings['env']}/bin/python"):
                raise AgentFailure(KIND_LAUNCH, f"No environment at {settings['env']}.")
            model["env"] = settings["env"]
        # One unit name per revision: systemd may keep the last one loaded for a while
        # after it ended (in a container it can fail to remove its control group), and
        # systemd-run refuses a name that is still loaded.
        unit = f"{layout.TRANSITION_UNIT}-{revision}"
        transition.update(phase="launched", settings=settings, model=model, holder=None, unit=unit)
        current["transition"] = transition
        started = systemd.run_agent_unit(
            unit,
            commands.RUN,
            str(revision),
            properties=[f"EnvironmentFile=-{layout.MLFLOW_ENV_FILE}"],
        )
        if started.returncode != 0:
            state.close_transition(current, "failed", f"could not start: {started.stderr.strip()}")
            raise AgentFailure(KIND_LAUNCH, f"Could not start the deploy unit: {started.stderr}")
    return {"unit": f"{unit}.service"}


def log(revision: int, line: str, **changes: Any) -> None:
    """A progress line: into the transition's log (the controller follows it) and stdout."""
    print(line, flush=True)
    with state.changing() as current:
        transition = current.get("transition")
        if transition and transition.get("revision") == revision:
            transition["log"] = [*transition.get("log", []), line][-200:]
            transition["step"] = line
            transition.update(changes)


def apply_router(current: dict[str, Any]) -> bool:
    """Render the router from `current` and load it (nginx -t, reload, confirm)."""
    return bool(nginx.apply_site(layout.ROUTER_SITE, router.render(current)))


def reconcile(current: dict[str, Any]) -> None:
    """Make the box match the state after an interrupted transition: the router's config,
    the live slot running and enabled at boot, and no canary candidate left with a share
    of the traffic (only a running canary gives one): 100% back on the live slot in one
    reload, then the candidate stops."""
    live = current.get("live")
    if live:
        slots.enable(live["slot"])
        if not slots.active(live["slot"]):
            slots.start(live["slot"])
    candidate = current.get("candidate")
    current["candidate"] = None
    if live or os.path.exists(nginx.site_path(layout.ROUTER_SITE)):
        apply_router(current)
    if candidate and (not live or candidate["slot"] != live["slot"]):
        slots.stop(candidate["slot"])
        slots.enable(candidate["slot"], on=False)


def retire_later(slot: str, revision: int, seconds: float) -> str | None:
    """Stop `slot` in `seconds` with a timer on the box; None when it was stopped now
    (asked for, or the timer could not be made: a warm slot is never left without one)."""
    cancel_retire(slot)
    unit = layout.RETIRE_UNIT.format(slot=slot, revision=revision)
    if seconds > 0 and timer(unit, seconds, commands.RETIRE, slot, str(revision)):
        return state.later(seconds)
    slots.stop(slot)
    slots.enable(slot, on=False)
    return None


def timer(unit: str, seconds: float, *command: str) -> bool:
    """Run the agent's `command` in `seconds`, from a transient timer on the box."""
    return systemd.run_agent_unit(unit, *command, after_s=seconds).returncode == 0


def cancel_timers(pattern: str, *, service: bool = True) -> None:
    """Stop the timers whose unit names match the glob `pattern` (and what they started,
    unless `service` is False: a timer's own service must not stop itself)."""
    units = [f"{pattern}.timer"] + ([f"{pattern}.service"] if service else [])
    systemd.systemctl("stop", *units)


def cancel_retire(slot: str) -> None:
    cancel_timers(layout.RETIRE_UNIT.format(slot=slot, revision="*"))


def retire(slot: str, revision: int) -> dict[str, Any]:
    """The timer's end: stop `slot` unless it serves again (it was given traffic since)."""
    with state.changing() as current:
        in_use = {a["slot"] for a in (current.get(k) for k in ("live", "candidate", "mirror")) if a}
        held = current.get("slots", {}).get(slot, {})
        if slot in in_use or held.get("retire_revision") != revision:
            return {"message": f"{slot} kept: it serves again"}
        slots.stop(slot)
        slots.enable(slot, on=False)
        held.update(retire_at=None, retire_revision=None)
    return {"message": f"stopped {slot}"}
