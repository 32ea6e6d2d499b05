"""Serving as a whole: what runs where (for `deploy.status`), and stopping all of it."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from . import nginx, paths, slots, state
from .transition import cancel_retire

STATUS_HISTORY = 20  # history entries the status answer carries (without their logs)


def _active(unit: str) -> str:
    return subprocess.run(
        ["systemctl", "is-active", unit], capture_output=True, text=True, check=False
    ).stdout.strip()


def _enabled(unit: str) -> bool:
    return (
        subprocess.run(
            ["systemctl", "is-enabled", "--quiet", unit], capture_output=True, check=False
        ).returncode
        == 0
    )


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
                "active": _active(slots.unit(slot)),
                "enabled": _enabled(slots.unit(slot)),
            }
            for slot, port in paths.SLOT_PORTS.items()
        },
        "nginx": _active("nginx.service"),
        "router_configured": os.path.exists(nginx.site_path(paths.ROUTER_SITE)),
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
        revision = int(current.get("revision", 0)) + 1
        current["revision"] = revision
        current["transition"] = {
            "revision": revision,
            "kind": "stop",
            "model_uri": (live or {}).get("model", {}).get("uri"),
            "model": (live or {}).get("model"),
            "slot": (live or {}).get("slot"),
            "by": by,
            "started": state.now(),
            "log": [],
        }
        nginx.apply_site(paths.ROUTER_SITE, None)
        for slot in paths.SLOT_PORTS:
            cancel_retire(slot)
            slots.stop(slot)
            slots.enable(slot, on=False)
        current["previous"] = live or current.get("previous")
        current.update(live=None, candidate=None, mirror=None)
        for held in current.get("slots", {}).values():
            held.update(retire_at=None, retire_revision=None)
        state.close_transition(current, "stopped", "")
    return {"revision": revision, "was": state.model_label((live or {}).get("model"))}
