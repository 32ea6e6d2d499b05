"""The idle auto-stop's agent commands: `idle-set`, `idle-check` (the timer's), `idle-status`.

Its files, in the box's idle directory (system/layout.py's IDLE_DIR):
  autostop.json       the setting and the idle clock; written by idle-set and idle-check
  last-autostop.json  written just before an auto-stop powers the box off; it survives
                      the power-off, and `idle-status` reads it after the next start
  lock                idle-set and idle-check take turns on it
The check needs no cloud credentials: it powers the OS off, which stops an EC2
instance whose shutdown behaviour is "stop" (the Pulumi program sets it), and ends
the local box's systemd-nspawn.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..system import files
from ..system.failure import AgentFailure
from . import decide
from . import probes as idle_probes

SETTING_FILE = "autostop.json"
LAST_AUTOSTOP_FILE = "last-autostop.json"
LOCK_FILE = "lock"
# An orderly power-off, never `halt` (which would leave an EC2 instance running, billed).
POWEROFF = ("systemctl", "poweroff", "--no-block")
POWEROFF_TIMEOUT_S = 60
KIND_POWEROFF = "poweroff"
KIND_BAD_VALUE = "bad-value"


def load(directory: str) -> tuple[decide.Setting, decide.Clock] | None:
    path = os.path.join(directory, SETTING_FILE)
    try:
        data = files.read_json(path)
    except ValueError:
        raise AgentFailure(
            decide.KIND_SETTING, f"{path} is not JSON: run `fab box.autostop` again to rewrite it."
        ) from None
    return None if data is None else decide.from_json(data, path)


def set_autostop(
    directory: str, idle_minutes: int | None, ignore_serving: bool, now: datetime
) -> dict[str, Any]:
    """Store the setting (None: off) and restart the idle clock, unless it is unchanged."""
    if idle_minutes is not None and idle_minutes < 1:
        raise AgentFailure(KIND_BAD_VALUE, f"--idle-minutes is {idle_minutes}: give 1 or more.")
    new = decide.Setting(idle_minutes is not None, idle_minutes or 0, ignore_serving, now)
    with files.flocked(os.path.join(directory, LOCK_FILE)):
        stored = decide.changed_setting(now, load(directory), new, idle_probes.boot_id())
        if stored is not None:
            files.write_json(os.path.join(directory, SETTING_FILE), decide.to_json(*stored))
    return {"changed": stored is not None, **decide.setting_to_json(new)}


def check(
    directory: str,
    now: datetime,
    *,
    ssh_port: int,
    unit_patterns: Sequence[str],
    router_log: str,
    keepalive: str,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Look, decide, and power the box off when it has been idle long enough.

    Off (or never set): returns at once, looking at nothing. With `dry_run` it only
    answers what it would do at `now`, changing nothing.
    """
    with files.flocked(os.path.join(directory, LOCK_FILE)):
        stored = load(directory)
        if stored is None or not stored[0].enabled:
            _log("auto-stop is off")
            return {"enabled": False, "stop": False}
        setting, clock = stored
        probes = idle_probes.observe(
            now,
            ssh_port=ssh_port,
            unit_patterns=unit_patterns,
            router_log=router_log,
            keepalive=keepalive,
        )
        decision = decide.decide(now, setting, clock, probes)
        _log(("dry run: " if dry_run else "") + decision.log_line(setting, dry_run=dry_run))
        answer = {
            "enabled": True,
            "stop": decision.stop,
            "dry_run": dry_run,
            "idle_minutes": setting.idle_minutes,
            "idle_for_s": int(decision.idle_for.total_seconds()),
            "busy": list(decision.busy),
            "activities": [a.what for a in probes.activities],
        }
        if dry_run:
            return answer
        path = os.path.join(directory, SETTING_FILE)
        files.write_json(path, decide.to_json(setting, decision.clock))
        if decision.stop:
            record = decide.AutoStop(now, probes.boot_id, setting.idle_minutes, decision.idle_for)
            _power_off(directory, record)
    return answer


def status(directory: str, now: datetime) -> dict[str, Any]:
    """The setting, the idle clock as of now, and what the last stop was."""
    try:
        record = decide.autostop_from_json(
            files.read_json(os.path.join(directory, LAST_AUTOSTOP_FILE))
        )
    except ValueError:
        record = None
    return decide.status_view(
        now, load(directory), record, idle_probes.boot_id(), idle_probes.booted_at(now)
    )


def _power_off(directory: str, record: decide.AutoStop) -> None:
    """Record the auto-stop where it survives the power-off, then power off; if the
    power-off cannot even be asked for, take the record back and fail loudly."""
    path = os.path.join(directory, LAST_AUTOSTOP_FILE)
    try:
        previous = files.read_json(path)
    except ValueError:
        previous = None
    files.write_json(path, decide.autostop_to_json(record))
    try:
        done = subprocess.run(
            POWEROFF, capture_output=True, text=True, timeout=POWEROFF_TIMEOUT_S, check=False
        )
        error = "" if done.returncode == 0 else " ".join(done.stderr.split()) or "failed"
    except (OSError, subprocess.TimeoutExpired) as exc:
        error = str(exc)
    if not error:
        return
    if previous is None:
        os.unlink(path)
    else:
        files.write_json(path, previous)
    raise AgentFailure(KIND_POWEROFF, f"`{' '.join(POWEROFF)}` failed: {error}")


def _log(line: str) -> None:
    # The journal of mlops-idle.service keeps these: `journalctl -u mlops-idle`.
    print(f"idle-check: {line}", file=sys.stderr, flush=True)
