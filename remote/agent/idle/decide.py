"""The idle auto-stop's decision, as pure functions over plain records.

Every minute mlops-idle.timer runs `idle-check`, which reads the setting and the idle
clock, asks the probes (probes.py) what is going on, and calls `decide`. The idle
clock (`Clock.idle_since`) restarts:
  - when the setting changes: `idle-set` starts it at that moment;
  - at boot: a boot id other than the clock's is a new boot, and the clock starts then;
  - whenever the box is in use: a check that finds an SSH connection, a running unit or
    a failed probe clears it, and the first check that then finds nothing starts it at
    that check (the activity ended somewhere in the minute before, and the box must not
    stop earlier than N minutes after it). Activities with a time of their own (the
    router's last request, the keep-alive file) move it to that time.
The box powers off once the clock has run for the setting's idle minutes: never sooner
than that after the last activity, at most one check interval later. Idle time is
elapsed time: each check keeps the monotonic time (CLOCK_BOOTTIME) beside the wall
clock's, and a step of the wall clock between two checks (NTP setting it right after a
boot, a hand-set date) moves the idle clock by the same step, so it neither stops a busy
box nor keeps an idle one up.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..system.failure import AgentFailure

FORMAT = 1
KIND_SETTING = "setting"
# A gap between the wall clock's and the monotonic clock's elapsed times beyond this is
# a step of the wall clock, not drift.
CLOCK_STEP_S = 30.0

# The kinds of activity; --ignore-serving leaves ROUTER out.
SSH = "ssh"
UNITS = "units"
ROUTER = "router"
KEEPALIVE = "keepalive"

# What `last_stop` answers: the last stop was the auto-stop; it is under way right now;
# the box stopped some other way since the last auto-stop; no auto-stop was ever recorded.
LAST_STOP_AUTO = "auto"
LAST_STOP_NOW = "now"
LAST_STOP_OTHER = "other"
LAST_STOP_NONE = "none"


@dataclass(frozen=True)
class Setting:
    """What the user chose: `fab box.autostop --idle-minutes N [--ignore-serving]` or `--off`."""

    enabled: bool
    idle_minutes: int  # 0 when off
    ignore_serving: bool
    changed_at: datetime


@dataclass(frozen=True)
class Clock:
    """The idle clock, and the boots the agent has seen (for what the last stop was)."""

    boot_id: str  # the boot this clock belongs to
    previous_boot_id: str | None  # the boot before it
    idle_since: datetime | None  # None: the box was in use at the last check
    last_check: datetime | None = None
    last_busy: tuple[str, ...] = ()  # what kept the box up at the last check
    last_check_uptime: float | None = None  # CLOCK_BOOTTIME seconds at the last check


@dataclass(frozen=True)
class Activity:
    """What one probe found."""

    kind: str
    what: str  # for the log: "2 SSH connections", "mlops-train-1.service", ...
    busy: bool = False  # in use right now
    last: datetime | None = None  # when it last happened, for activities with a time
    failed: str = ""  # why the probe could not look: counted as busy


@dataclass(frozen=True)
class Probes:
    boot_id: str
    booted_at: datetime
    activities: tuple[Activity, ...]
    uptime: float | None = None  # CLOCK_BOOTTIME seconds now


@dataclass(frozen=True)
class Decision:
    stop: bool
    clock: Clock  # the clock to store
    idle_for: timedelta
    busy: tuple[str, ...]  # what keeps the box up, in words

    def log_line(self, setting: Setting, *, dry_run: bool = False) -> str:
        if not setting.enabled:
            return "auto-stop is off"
        idle = f"idle {minutes(self.idle_for)} of {setting.idle_minutes}m"
        if self.stop:
            return f"{idle}: {'would power' if dry_run else 'powering'} the box off"
        return f"{idle}; busy: {'; '.join(self.busy)}" if self.busy else idle


@dataclass(frozen=True)
class AutoStop:
    """The record an auto-stop leaves on the box's disk before it powers off."""

    at: datetime
    boot_id: str  # the boot it ended
    idle_minutes: int
    idle_for: timedelta


def decide(now: datetime, setting: Setting, clock: Clock, probes: Probes) -> Decision:
    """Whether to power the box off now, and the clock to keep."""
    if not setting.enabled:
        return Decision(False, clock, timedelta(0), ())
    clock = stepped(at_boot(clock, probes.boot_id, probes.booted_at), now, probes.uptime)
    window = timedelta(minutes=setting.idle_minutes)
    counted = [a for a in probes.activities if not (setting.ignore_serving and a.kind == ROUTER)]
    looked = [a for a in counted if not a.failed]
    in_use = [f"{a.what}: probe failed ({a.failed}), counted as busy" for a in counted if a.failed]
    in_use += [a.what for a in looked if a.busy]
    timed = [(a, a.last) for a in looked if a.last is not None]
    # A time ahead (`touch -d '+3 hours'` on the keep-alive file) holds the clock until then.
    recent = [
        f"{a.what} (until {stamp(last)})" if last > now else f"{a.what} ({minutes(now - last)} ago)"
        for a, last in timed
        if now - last < window
    ]
    busy = (*in_use, *recent)
    if in_use:
        checked = _checked(clock, None, now, busy, probes.uptime)
        return Decision(False, checked, timedelta(0), busy)
    since = max([clock.idle_since or now, *(last for _, last in timed)])
    idle_for = max(now - since, timedelta(0))
    checked = _checked(clock, since, now, busy, probes.uptime)
    return Decision(idle_for >= window, checked, idle_for, busy)


def stepped(clock: Clock, now: datetime, uptime: float | None) -> Clock:
    """The clock with its times moved by the wall clock's step since the last check, if
    it stepped (see the module's docstring); as it is otherwise."""
    if clock.last_check is None or clock.last_check_uptime is None or uptime is None:
        return clock
    elapsed = timedelta(seconds=uptime - clock.last_check_uptime)
    step = (now - clock.last_check) - elapsed
    if abs(step.total_seconds()) <= CLOCK_STEP_S:
        return clock
    idle_since = clock.idle_since + step if clock.idle_since else None
    return dataclasses.replace(clock, idle_since=idle_since, last_check=clock.last_check + step)


def at_boot(clock: Clock, boot_id: str, booted_at: datetime) -> Clock:
    """The clock for this boot: as it is, or restarted at the boot if it is another's."""
    if clock.boot_id == boot_id:
        return clock
    return Clock(boot_id, clock.boot_id, booted_at)


def changed_setting(
    now: datetime, old: tuple[Setting, Clock] | None, new: Setting, boot_id: str
) -> tuple[Setting, Clock] | None:
    """The setting and clock to store for `new`; None when it is what `old` already says."""
    if old is not None:
        kept, clock = old
        same = (kept.enabled, kept.idle_minutes, kept.ignore_serving) == (
            new.enabled,
            new.idle_minutes,
            new.ignore_serving,
        )
        if same:
            return None
        previous = clock.previous_boot_id if clock.boot_id == boot_id else clock.boot_id
    else:
        previous = None
    return new, Clock(boot_id, previous, now)


def last_stop(record: AutoStop | None, clock: Clock | None, boot_id: str) -> str:
    """What the last stop of the box was, as far as the records on its disk tell."""
    if record is None:
        return LAST_STOP_NONE
    if record.boot_id == boot_id:
        return LAST_STOP_NOW
    # The boot before this one: the clock's own, until a check this boot moved it on.
    previous = None
    if clock is not None:
        previous = clock.previous_boot_id if clock.boot_id == boot_id else clock.boot_id
    return LAST_STOP_AUTO if record.boot_id == previous else LAST_STOP_OTHER


def status_view(
    now: datetime,
    stored: tuple[Setting, Clock] | None,
    record: AutoStop | None,
    boot_id: str,
    booted_at: datetime,
) -> dict[str, Any]:
    """What `fab box.status` shows: the setting, the idle clock now, the last stop."""
    view: dict[str, Any] = {
        "now": stamp(now),
        "booted_at": stamp(booted_at),
        "enabled": False,
        "last_stop": last_stop(record, stored[1] if stored else None, boot_id),
        "last_autostop": autostop_to_json(record) if record else None,
    }
    if stored is None:
        return view
    setting, clock = stored
    view.update(setting_to_json(setting))
    if setting.enabled:
        current = at_boot(clock, boot_id, booted_at)
        view["idle_since"] = stamp(current.idle_since) if current.idle_since else None
        view["last_check"] = stamp(current.last_check) if current.last_check else None
        view["last_busy"] = list(current.last_busy)
    return view


def _checked(
    clock: Clock,
    idle_since: datetime | None,
    now: datetime,
    busy: tuple[str, ...],
    uptime: float | None,
) -> Clock:
    return dataclasses.replace(
        clock, idle_since=idle_since, last_check=now, last_busy=busy, last_check_uptime=uptime
    )


# -- the files' JSON -----------------------------------------------------------------


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def minutes(elapsed: timedelta) -> str:
    """`12m`, `1m30s`, `45s`: enough to read in a log line."""
    seconds = max(0, int(elapsed.total_seconds()))
    whole, rest = divmod(seconds, 60)
    if not whole:
        return f"{rest}s"
    return f"{whole}m{rest:02d}s" if rest and whole < 10 else f"{whole}m"


def setting_to_json(setting: Setting) -> dict[str, Any]:
    return {
        "enabled": setting.enabled,
        "idle_minutes": setting.idle_minutes,
        "ignore_serving": setting.ignore_serving,
        "changed_at": stamp(setting.changed_at),
    }


def to_json(setting: Setting, clock: Clock) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "setting": setting_to_json(setting),
        "clock": {
            "boot_id": clock.boot_id,
            "previous_boot_id": clock.previous_boot_id,
            "idle_since": stamp(clock.idle_since) if clock.idle_since else None,
            "last_check": stamp(clock.last_check) if clock.last_check else None,
            "last_busy": list(clock.last_busy),
            "last_check_uptime": clock.last_check_uptime,
        },
    }


def from_json(data: Any, where: str) -> tuple[Setting, Clock]:
    """The stored setting and clock; AgentFailure (so the check does nothing) if damaged."""
    try:
        s, c = data["setting"], data["clock"]
        setting = Setting(
            enabled=_boolean(s["enabled"]),
            idle_minutes=_count(s["idle_minutes"]),
            ignore_serving=_boolean(s["ignore_serving"]),
            changed_at=_moment(s["changed_at"]),
        )
        clock = Clock(
            boot_id=str(c["boot_id"]),
            previous_boot_id=None if c["previous_boot_id"] is None else str(c["previous_boot_id"]),
            idle_since=None if c["idle_since"] is None else _moment(c["idle_since"]),
            last_check=None if c["last_check"] is None else _moment(c["last_check"]),
            last_busy=tuple(str(b) for b in c["last_busy"]),
            last_check_uptime=_uptime(c.get("last_check_uptime")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise AgentFailure(
            KIND_SETTING,
            f"{where} is damaged ({exc!r}): run `fab box.autostop` again to rewrite it.",
        ) from None
    if setting.enabled and setting.idle_minutes < 1:
        raise AgentFailure(KIND_SETTING, f"{where} has idle_minutes {setting.idle_minutes}.")
    return setting, clock


def autostop_to_json(record: AutoStop) -> dict[str, Any]:
    return {
        "at": stamp(record.at),
        "boot_id": record.boot_id,
        "idle_minutes": record.idle_minutes,
        "idle_for_s": int(record.idle_for.total_seconds()),
    }


def autostop_from_json(data: Any) -> AutoStop | None:
    """The auto-stop record, or None where it is unreadable (status then says none)."""
    try:
        return AutoStop(
            at=_moment(data["at"]),
            boot_id=str(data["boot_id"]),
            idle_minutes=_count(data["idle_minutes"]),
            idle_for=timedelta(seconds=_count(data["idle_for_s"])),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _uptime(value: Any) -> float | None:
    """A stored monotonic time; None where absent (a file from before it was kept)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"last_check_uptime {value!r} is not seconds")
    return float(value)


def _moment(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    return moment


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{value!r} is not true or false")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not a count")
    return value
