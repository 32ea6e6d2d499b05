"""`fab box.autostop` and the auto-stop lines of `fab box.status`: the controller's side.

The decision is taken on the box, every minute, by mlops-idle.timer running the agent's
`idle-check` (remote/agent/idle/), with no cloud credentials. Here: validate what the
user asks before touching anything, install the timer and its service, hand the setting
to the agent, and show what the agent reports. Every on-box name comes from
remote/contract.py and reaches the agent as arguments (the unit's ExecStart, run_agent's),
so the agent keeps no copy of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paramiko

from remote.agent.idle import commands as idle_cmds
from remote.box import disk
from remote.box.status import format_uptime
from remote.changes import Changed
from remote.contract import (
    DEPLOY_UNIT_PATTERN,
    DRIFT_SERVICE,
    IDLE_DIR,
    IDLE_SERVICE,
    IDLE_TIMER,
    SSH_PORT,
    TRAIN_UNIT_PATTERN,
)
from remote.errors import ConfigError, MlopsBoxError
from remote.providers.base import BoxState, State
from remote.settings import BoxSettings
from remote.ssh import known_hosts
from remote.ssh.connection import connect
from remote.system import systemd
from remote.system.agent import PACKAGE, SYSTEM_PYTHON, bundle, ensure_agent, run_agent
from remote.system.run import Connection
from remote.system.templates import render

MAX_IDLE_MINUTES = 7 * 24 * 60
CHECK_TIMEOUT_S = 120
FIRST_CHECK_AFTER_BOOT_S = 15
STATUS_CONNECT_TIMEOUT_S = 5
# What systemd takes in ExecStart= unquoted: no spaces, quotes, `%` or `$`.
_UNIT_WORD = re.compile(r"[A-Za-z0-9_./*@:=+-]+")


class AutostopError(MlopsBoxError):
    """The idle auto-stop could not be set, read or turned off on the box."""


@dataclass(frozen=True)
class AutostopRequest:
    idle_minutes: int | None  # None: off
    ignore_serving: bool = False

    def describe(self) -> str:
        if self.idle_minutes is None:
            return "off"
        serving = "do not count" if self.ignore_serving else "count as use"
        minutes = f"{self.idle_minutes} idle minute{_s(self.idle_minutes)}"
        return f"after {minutes} (requests to the router {serving})"


def parse_request(idle_minutes: str, off: bool, ignore_serving: bool) -> AutostopRequest:
    """What the user asked, validated before anything is touched; ConfigError if wrong."""
    given = idle_minutes.strip()
    if off and given:
        raise ConfigError("Give either --idle-minutes N or --off, not both.")
    if off:
        if ignore_serving:
            raise ConfigError("--ignore-serving goes with --idle-minutes N, not with --off.")
        return AutostopRequest(None)
    if not given:
        raise ConfigError(
            "Give --idle-minutes N (the box powers itself off after N idle minutes) or --off."
        )
    if not re.fullmatch(r"[0-9]+", given) or not 1 <= int(given) <= MAX_IDLE_MINUTES:
        raise ConfigError(
            f"--idle-minutes is {given!r}: give a whole number of minutes from 1 to "
            f"{MAX_IDLE_MINUTES} (a week), or --off."
        )
    return AutostopRequest(int(given), ignore_serving)


def check_args() -> list[str]:
    """The arguments of the agent's `idle-check`: which port and units count as busy.
    Where its files, the router's log and the keep-alive file are, the agent knows from
    its layout (remote/agent/system/layout.py)."""
    return [
        "--ssh-port",
        str(SSH_PORT),
        "--unit",
        TRAIN_UNIT_PATTERN,
        "--unit",
        DEPLOY_UNIT_PATTERN,
        "--unit",
        DRIFT_SERVICE,  # a scheduled drift check: powered off mid-run, it would log nothing
    ]


def render_units(agent_bundle: str) -> tuple[str, str]:
    """(the service, the timer) that run the check every minute."""
    words = [SYSTEM_PYTHON, "-m", PACKAGE, idle_cmds.CHECK, *check_args()]
    for word in [agent_bundle, *words]:
        if not _UNIT_WORD.fullmatch(word):
            raise ValueError(f"{word!r} cannot stand unquoted in a unit file")
    service = render(
        "mlops-idle.service.j2",
        timer=IDLE_TIMER,
        service=IDLE_SERVICE,
        state_dir=IDLE_DIR,
        agent_bundle=agent_bundle,
        exec_start=" ".join(words),
        timeout_s=CHECK_TIMEOUT_S,
    )
    timer = render(
        "mlops-idle.timer.j2", service=IDLE_SERVICE, first_check_s=FIRST_CHECK_AFTER_BOOT_S
    )
    return service, timer


def apply(conn: Connection, request: AutostopRequest) -> Changed:
    """Make the box's auto-stop what `request` says; return what changed."""
    if request.idle_minutes is None:
        return _turn_off(conn)
    changed = ensure_agent(conn)
    service, timer = render_units(bundle()[0])
    # The service first (only the timer starts it), so the timer never runs a stale one.
    changed.merge(
        systemd.ensure_unit(
            conn, IDLE_SERVICE, service, start=False, enable=False, error=AutostopError
        )
    )
    extra = ["--ignore-serving"] if request.ignore_serving else []
    answer = run_agent(
        conn,
        idle_cmds.SET,
        "--idle-minutes",
        str(request.idle_minutes),
        *extra,
        error=AutostopError,
    )
    if answer.get("changed"):
        changed.add("the setting (the idle clock restarts now)")
    changed.merge(systemd.ensure_unit(conn, IDLE_TIMER, timer, error=AutostopError))
    return changed


def _turn_off(conn: Connection) -> Changed:
    """The setting says off (a check that runs anyway does nothing), and the timer stops."""
    changed = Changed()
    answer = run_agent(conn, idle_cmds.SET, "--off", error=AutostopError)
    if answer.get("changed"):
        changed.add("the setting (off)")
    timer = systemd.state(conn, IDLE_TIMER)
    if timer.enabled or timer.active != "inactive":
        systemd.systemctl(conn, "disable --now", IDLE_TIMER, error=AutostopError)
        changed.add(f"{IDLE_TIMER} stopped and disabled")
    return changed


def read_status(conn: Connection) -> list[tuple[str, str]]:
    """The auto-stop rows of `fab box.status`, asked of the running box."""
    view = run_agent(conn, idle_cmds.STATUS, error=AutostopError)
    return status_rows(view, systemd.state(conn, IDLE_TIMER))


def box_rows(settings: BoxSettings, box: BoxState) -> list[tuple[str, str]]:
    """The rows read from the box over one connection (the auto-stop's, then its disk's)
    for any box: read from it when it runs, else what is not known."""
    if box.state is not State.RUNNING or box.address is None:
        return [
            (
                "auto-stop",
                f"unknown while the box is {box.state.value}: the setting and the record of "
                "the last stop live on the box (`fab box.start`, then `fab box.status`)",
            )
        ]
    if not known_hosts.pinned_keys(settings):
        return [("auto-stop", f"unknown: no host key is pinned for {settings.name} yet "
                              "(`fab box.start` pins it)")]  # fmt: skip
    try:
        with connect(
            settings,
            box.address,
            connect_timeout_s=STATUS_CONNECT_TIMEOUT_S,
        ) as conn:
            return read_status(conn) + disk.read_rows(conn)
    except (MlopsBoxError, OSError, EOFError, paramiko.SSHException) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return [("auto-stop", f"unknown: could not ask the box ({reason})")]


def status_rows(view: dict[str, Any], timer: systemd.UnitState) -> list[tuple[str, str]]:
    """Pure: the agent's `idle-status` answer and the timer's state, as status rows."""
    now = datetime.fromisoformat(view["now"])
    rows: list[tuple[str, str]] = []
    if not view.get("enabled"):
        text = "off (turn it on: `fab box.autostop --idle-minutes N`)"
        if timer.enabled or timer.running:
            text += f"; {IDLE_TIMER} still runs, and its checks do nothing"
        rows.append(("auto-stop", text))
    else:
        request = AutostopRequest(int(view["idle_minutes"]), bool(view["ignore_serving"]))
        text = f"{request.describe()}, checked on the box every minute"
        if not (timer.enabled and timer.running):
            text += (
                f"; but {IDLE_TIMER} is {timer.active}"
                f"{'' if timer.enabled else ' and disabled'}: run `fab box.autostop` again"
            )
        rows.append(("auto-stop", text))
        rows.append(("idle", _idle_text(view, now)))
    rows.append(("last stop", _last_stop_text(view)))
    return rows


def _idle_text(view: dict[str, Any], now: datetime) -> str:
    busy = ", ".join(view.get("last_busy") or [])
    last_check = _moment(view.get("last_check"))
    if view.get("idle_since") is None:
        checked = f" ({_clock(last_check)})" if last_check else ""
        return f"0m: in use at the last check{checked}: {busy}"
    since = datetime.fromisoformat(view["idle_since"])
    if since > now:  # the keep-alive file was touched for a time ahead
        return f"0m: kept up until {_clock(since)}: {busy}"
    text = f"{format_uptime(now - since)} (since {_clock(since)}"
    text += f"; last check {_clock(last_check)})" if last_check else "; no check yet)"
    return f"{text}; recent: {busy}" if busy else text


def _last_stop_text(view: dict[str, Any]) -> str:
    record = view.get("last_autostop") or {}
    kind = view.get("last_stop")
    if kind == "none" or not record:
        return "no auto-stop recorded"
    at = _clock(datetime.fromisoformat(record["at"]))
    idle = int(record["idle_for_s"]) // 60
    if kind == "auto":
        return f"auto-stop at {at} (idle {idle} min; limit {record['idle_minutes']} min)"
    if kind == "now":
        return f"auto-stop under way since {at} (idle {idle} min): the box is powering off"
    return (
        "not an auto-stop (`fab box.stop`, or a shutdown on the box); the last auto-stop "
        f"was at {at}"
    )


def _moment(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _clock(moment: datetime | None) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if moment else "-"


def _s(count: int) -> str:
    return "" if count == 1 else "s"
