"""The idle auto-stop's decision at its edges (remote/agent/idle/decide.py): the window's
boundary, what a decision and its clock hold exactly, the wall clock's step, the log
line, `fab box.status`'s view, the minutes in words, and which stored JSON is refused.
Pure functions, no box, no mocks; one test sets the time zone to check times stay UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from remote.agent.idle import decide as idle
from remote.agent.idle.decide import Activity, AutoStop, Clock, Decision, Probes, Setting, decide
from remote.agent.system.failure import AgentFailure

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
BOOT = "boot-1"
QUIET = (Activity(idle.SSH, "0 SSH connections"), Activity(idle.UNITS, "no units running"))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def setting(minutes: int = 30, *, enabled: bool = True) -> Setting:
    return Setting(enabled, minutes if enabled else 0, False, T0)


def probes(*activities: Activity, uptime: float | None = None) -> Probes:
    return Probes(BOOT, T0, activities or QUIET, uptime)


def test_off_decides_nothing_at_all() -> None:
    before = Clock(BOOT, None, T0)
    decision = decide(at(600), setting(enabled=False), before, probes())
    assert decision == Decision(False, before, timedelta(0), ())


def test_a_busy_check_decides_exactly_not_to_stop_and_records_the_check() -> None:
    session = Activity(idle.SSH, "1 SSH connection", busy=True)
    decision = decide(at(600), setting(1), Clock(BOOT, None, T0), probes(session, uptime=5.0))
    checked = Clock(BOOT, None, None, at(600), ("1 SSH connection",), 5.0)
    assert decision == Decision(False, checked, timedelta(0), ("1 SSH connection",))


def test_a_quiet_check_keeps_what_was_recent_beside_the_clock() -> None:
    request = Activity(idle.ROUTER, "requests to the router", last=at(9.5))
    decision = decide(at(10), setting(30), Clock(BOOT, None, T0), probes(request, uptime=7.0))
    recent = ("requests to the router (30s ago)",)
    checked = Clock(BOOT, None, at(9.5), at(10), recent, 7.0)
    assert decision == Decision(False, checked, timedelta(seconds=30), recent)


@pytest.mark.parametrize(
    ("last", "busy", "stop"),
    [
        (at(100), ("requests to the router (0s ago)",), False),  # right now is "ago"
        (at(99.5), ("requests to the router (30s ago)",), False),
        (at(99), (), True),  # exactly the window ago: no longer recent, and idle enough
    ],
    ids=["now", "within", "exactly-the-window"],
)
def test_an_activity_is_recent_only_within_the_window(
    last: datetime, busy: tuple[str, ...], stop: bool
) -> None:
    request = Activity(idle.ROUTER, "requests to the router", last=last)
    decision = decide(at(100), setting(1), Clock(BOOT, None, T0), probes(request))
    assert (decision.busy, decision.stop) == (busy, stop)


def test_a_step_of_the_wall_clock_moves_the_idle_clock_and_the_last_check_by_it() -> None:
    before = Clock(BOOT, None, at(5), at(10), (), 1000.0)
    # 60 monotonic seconds later the wall clock says two hours and a minute later
    moved = idle.stepped(before, at(131), 1060.0)
    assert moved == Clock(BOOT, None, at(125), at(130), (), 1000.0)


def test_a_step_after_a_busy_check_leaves_the_clock_cleared() -> None:
    before = Clock(BOOT, None, None, at(10), ("1 SSH connection",), 1000.0)
    assert idle.stepped(before, at(131), 1060.0).idle_since is None
    after = decide(at(131), setting(30), before, probes(uptime=1060.0))
    assert after.clock.idle_since == at(131) and not after.stop


@pytest.mark.parametrize(
    ("last_check", "last_uptime", "uptime"),
    [(at(10), None, 1060.0), (None, 1000.0, 1060.0), (at(10), 1000.0, None)],
    ids=["no-stored-uptime", "no-last-check", "no-uptime-now"],
)
def test_without_both_clocks_at_both_checks_no_step_is_seen(
    last_check: datetime | None, last_uptime: float | None, uptime: float | None
) -> None:
    before = Clock(BOOT, None, at(5), last_check, (), last_uptime)
    assert idle.stepped(before, at(131), uptime) == before


@pytest.mark.parametrize(
    ("stop", "idle_for", "busy", "dry_run", "line"),
    [
        (True, 30, (), False, "idle 30m of 30m: powering the box off"),
        (True, 30, (), True, "idle 30m of 30m: would power the box off"),
        (False, 5, (), False, "idle 5m of 30m"),
        (False, 0, ("a", "b"), False, "idle 0s of 30m; busy: a; b"),
    ],
    ids=["stop", "dry-run", "idle", "busy"],
)
def test_the_log_line_says_how_idle_and_what_keeps_the_box_up(
    stop: bool, idle_for: int, busy: tuple[str, ...], dry_run: bool, line: str
) -> None:
    decision = Decision(stop, Clock(BOOT, None, None), timedelta(minutes=idle_for), busy)
    assert decision.log_line(setting(30), dry_run=dry_run) == line
    assert decision.log_line(setting(enabled=False), dry_run=dry_run) == "auto-stop is off"


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (-5, "0s"),
        (0, "0s"),
        (45, "45s"),
        (60, "1m"),
        (90, "1m30s"),
        (9 * 60 + 59, "9m59s"),
        (10 * 60 + 30, "10m"),
        (12 * 60, "12m"),
    ],
)
def test_minutes_in_words_show_seconds_only_under_ten_minutes(seconds: int, words: str) -> None:
    assert idle.minutes(timedelta(seconds=seconds)) == words


def test_times_are_stamped_in_utc_whatever_the_local_time_zone(tokyo: None) -> None:
    assert idle.stamp(T0) == "2025-06-01T12:00:00+00:00"


def test_a_new_setting_with_none_before_starts_a_clock_without_a_previous_boot() -> None:
    new = setting(5)
    assert idle.changed_setting(at(9), None, new, BOOT) == (new, Clock(BOOT, None, at(9)))


RECORD = AutoStop(at(30), "boot-0", 30, timedelta(minutes=30, seconds=5))
RECORD_JSON = {
    "at": "2025-06-01T12:30:00+00:00",
    "boot_id": "boot-0",
    "idle_minutes": 30,
    "idle_for_s": 1805,
}


def test_the_status_before_any_setting_shows_it_off_and_the_last_auto_stop() -> None:
    view = idle.status_view(at(60), None, RECORD, BOOT, booted_at=at(40))
    assert view == {
        "now": "2025-06-01T13:00:00+00:00",
        "booted_at": "2025-06-01T12:40:00+00:00",
        "enabled": False,
        "last_stop": "other",
        "last_autostop": RECORD_JSON,
    }


def test_the_status_shows_the_clock_of_this_boot_and_what_the_last_stop_was() -> None:
    stored = (setting(30), Clock(BOOT, "boot-0", at(50), at(55), ("x",), 9.0))
    view = idle.status_view(at(60), stored, RECORD, BOOT, booted_at=at(40))
    assert view == {
        "now": "2025-06-01T13:00:00+00:00",
        "booted_at": "2025-06-01T12:40:00+00:00",
        "enabled": True,
        "idle_minutes": 30,
        "ignore_serving": False,
        "changed_at": "2025-06-01T12:00:00+00:00",
        "last_stop": "auto",
        "last_autostop": RECORD_JSON,
        "idle_since": "2025-06-01T12:50:00+00:00",
        "last_check": "2025-06-01T12:55:00+00:00",
        "last_busy": ["x"],
    }


def test_the_status_while_the_auto_stop_is_under_way_says_now() -> None:
    stored = (setting(30), Clock("boot-0", None, None, at(55), ("x",)))
    view = idle.status_view(at(60), stored, RECORD, "boot-0", booted_at=at(0))
    assert view["last_stop"] == "now"
    assert (view["idle_since"], view["last_check"]) == (None, "2025-06-01T12:55:00+00:00")


def test_the_auto_stop_record_round_trips_and_an_unreadable_one_is_none() -> None:
    assert idle.autostop_to_json(RECORD) == RECORD_JSON
    assert idle.autostop_from_json(RECORD_JSON) == RECORD
    for key, bad in (("at", "2025-06-01T12:30:00"), ("idle_minutes", -1), ("idle_for_s", "5")):
        assert idle.autostop_from_json({**RECORD_JSON, key: bad}) is None
    assert idle.autostop_from_json({"at": RECORD_JSON["at"]}) is None


def test_a_clock_with_nothing_set_round_trips() -> None:
    stored = (setting(1), Clock(BOOT, None, None))
    assert idle.to_json(*stored)["clock"]["idle_since"] is None
    assert idle.from_json(idle.to_json(*stored), "f") == stored


@pytest.mark.parametrize(("minutes", "enabled"), [(1, True), (0, False)], ids=["one-minute", "off"])
def test_the_smallest_settings_are_accepted(minutes: int, enabled: bool) -> None:
    stored = (Setting(enabled, minutes, False, T0), Clock(BOOT, None, T0))
    assert idle.from_json(idle.to_json(*stored), "f") == stored


@pytest.mark.parametrize("uptime", [0, 0.5, 812])
def test_any_monotonic_time_from_zero_up_is_accepted(uptime: float) -> None:
    stored = (setting(1), Clock(BOOT, None, T0, T0, (), float(uptime)))
    data = idle.to_json(*stored)
    data["clock"]["last_check_uptime"] = uptime
    assert idle.from_json(data, "f") == stored


def damaged(part: str, key: str, value: Any) -> dict[str, Any]:
    data = idle.to_json(setting(7), Clock(BOOT, None, T0, T0, (), 1.0))
    data[part][key] = value
    return data


@pytest.mark.parametrize(
    ("part", "key", "value", "why"),
    [
        ("clock", "last_check_uptime", -0.5, "last_check_uptime -0.5 is not seconds"),
        ("clock", "idle_since", "2025-06-01T12:00:00", "has no time zone"),
        ("setting", "enabled", "yes", "'yes' is not true or false"),
        ("setting", "idle_minutes", -1, "-1 is not a count"),
        ("setting", "idle_minutes", True, "True is not a count"),
        ("setting", "idle_minutes", 1.5, "1.5 is not a count"),
        ("setting", "idle_minutes", "7", "'7' is not a count"),
    ],
)
def test_a_damaged_file_is_refused_with_what_is_wrong_in_it(
    part: str, key: str, value: Any, why: str
) -> None:
    with pytest.raises(AgentFailure, match="f is damaged") as refused:
        idle.from_json(damaged(part, key, value), "f")
    assert refused.value.kind == idle.KIND_SETTING
    assert why in refused.value.sentence


def test_an_enabled_setting_of_zero_minutes_is_refused_as_a_setting_failure() -> None:
    with pytest.raises(AgentFailure, match="f has idle_minutes 0") as refused:
        idle.from_json(damaged("setting", "idle_minutes", 0), "f")
    assert refused.value.kind == idle.KIND_SETTING
