"""The idle auto-stop's decision (remote/agent/idle.py): pure functions, no box, no mocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from remote.agent.idle import decide as idle
from remote.agent.idle.decide import Activity, AutoStop, Clock, Probes, Setting, decide
from remote.agent.system.failure import AgentFailure

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
BOOT = "boot-1"


def setting(minutes: int = 30, *, enabled: bool = True, ignore_serving: bool = False) -> Setting:
    return Setting(enabled, minutes if enabled else 0, ignore_serving, T0)


def clock(idle_since: datetime | None = T0, boot_id: str = BOOT) -> Clock:
    return Clock(boot_id, None, idle_since)


def probes(*activities: Activity, boot_id: str = BOOT, booted_at: datetime = T0) -> Probes:
    quiet = (
        Activity(idle.SSH, "0 SSH connections"),
        Activity(idle.UNITS, "no units running"),
    )
    return Probes(boot_id, booted_at, activities or quiet)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_an_idle_box_stops_once_the_clock_reaches_the_idle_minutes() -> None:
    assert not decide(at(29.9), setting(30), clock(), probes()).stop
    decision = decide(at(30), setting(30), clock(), probes())
    assert decision.stop
    assert decision.idle_for == timedelta(minutes=30)
    assert decision.log_line(setting(30)) == "idle 30m of 30m: powering the box off"


def test_off_never_stops_and_keeps_the_clock_as_it_is() -> None:
    before = clock()
    decision = decide(at(60 * 24 * 365), setting(enabled=False), before, probes())
    assert not decision.stop
    assert decision.clock == before


@pytest.mark.parametrize(
    "activity",
    [
        Activity(idle.SSH, "1 SSH connection", busy=True),
        Activity(idle.UNITS, "mlops-train-x.service", busy=True),
    ],
    ids=["ssh", "unit"],
)
def test_something_in_use_keeps_the_box_up_and_clears_the_clock(activity: Activity) -> None:
    decision = decide(at(600), setting(1), clock(), probes(activity))
    assert not decision.stop
    assert decision.busy == (activity.what,)
    assert decision.clock.idle_since is None
    assert decision.clock.last_busy == (activity.what,)


def test_after_a_busy_check_the_clock_starts_at_the_first_quiet_check() -> None:
    # The SSH session ended somewhere between the two checks: the full window counts
    # from the check that first saw it gone, never from before it.
    busy = decide(at(10), setting(1), clock(), probes(Activity(idle.SSH, "1", busy=True)))
    quiet = decide(at(11), setting(1), busy.clock, probes())
    assert not quiet.stop
    assert quiet.clock.idle_since == at(11)
    assert decide(at(12), setting(1), quiet.clock, probes()).stop


def test_a_probe_that_fails_counts_as_busy_and_says_so() -> None:
    failed = Activity(idle.UNITS, "units mlops-train-*", failed="systemctl: no bus")
    decision = decide(at(600), setting(1), clock(), probes(failed))
    assert not decision.stop
    assert decision.busy == (
        "units mlops-train-*: probe failed (systemctl: no bus), counted as busy",
    )


def test_a_request_to_the_router_within_the_window_keeps_the_box_up() -> None:
    request = Activity(idle.ROUTER, "requests to the router", last=at(100))
    assert not decide(at(100.5), setting(1), clock(), probes(request)).stop
    decision = decide(at(100.5), setting(1), clock(), probes(request))
    assert decision.clock.idle_since == at(100)
    assert decision.busy == ("requests to the router (30s ago)",)
    assert decide(at(101), setting(1), clock(), probes(request)).stop


def test_ignore_serving_leaves_the_router_out() -> None:
    request = Activity(idle.ROUTER, "requests to the router", last=at(100))
    assert decide(at(100.5), setting(1, ignore_serving=True), clock(), probes(request)).stop


def test_a_router_probe_that_fails_is_left_out_too_with_ignore_serving() -> None:
    failed = Activity(idle.ROUTER, "requests to the router", failed="EACCES")
    assert not decide(at(5), setting(1), clock(), probes(failed)).stop
    assert decide(at(5), setting(1, ignore_serving=True), clock(), probes(failed)).stop


def test_a_keepalive_touched_ahead_keeps_the_box_up_until_then() -> None:
    until = Activity(idle.KEEPALIVE, "the keep-alive file", last=at(180))
    decision = decide(at(120), setting(1), clock(), probes(until))
    assert not decision.stop
    assert decision.busy == ("the keep-alive file (until 2025-06-01T15:00:00+00:00)",)
    assert not decide(at(180.5), setting(1), decision.clock, probes(until)).stop
    assert decide(at(181), setting(1), decision.clock, probes(until)).stop


def test_a_new_boot_restarts_the_clock_at_the_boot_and_remembers_the_old_boot() -> None:
    stale = Clock("boot-0", None, T0 - timedelta(days=3))
    decision = decide(at(0.5), setting(1), stale, probes(boot_id=BOOT, booted_at=T0))
    assert not decision.stop
    assert (decision.clock.boot_id, decision.clock.previous_boot_id) == (BOOT, "boot-0")
    assert decision.clock.idle_since == T0


def test_a_changed_setting_restarts_the_clock_and_an_unchanged_one_is_left_alone() -> None:
    old = (setting(30), Clock(BOOT, "boot-0", None, at(5), ("1 SSH connection",)))
    assert idle.changed_setting(at(9), old, setting(30), BOOT) is None
    new_setting, new_clock = idle.changed_setting(at(9), old, setting(5), BOOT) or old
    assert new_setting.idle_minutes == 5
    assert new_clock == Clock(BOOT, "boot-0", at(9))
    # Set during a later boot: the boot the old clock belonged to becomes the previous one.
    _, later = idle.changed_setting(at(9), old, setting(5), "boot-2") or old
    assert (later.boot_id, later.previous_boot_id) == ("boot-2", BOOT)


def test_the_last_stop_is_the_auto_stop_only_when_it_ended_the_boot_before_this_one() -> None:
    record = AutoStop(at(30), "boot-1", 30, timedelta(minutes=30))
    # Right after the start, before a check ran: the clock still belongs to boot-1.
    assert idle.last_stop(record, Clock("boot-1", None, None), "boot-2") == idle.LAST_STOP_AUTO
    # After a check this boot.
    assert idle.last_stop(record, Clock("boot-2", "boot-1", None), "boot-2") == "auto"
    # A boot came between (the box was started and stopped by hand since).
    assert idle.last_stop(record, Clock("boot-2", "boot-1", None), "boot-3") == "other"
    assert idle.last_stop(record, Clock("boot-1", None, None), "boot-1") == "now"
    assert idle.last_stop(None, Clock("boot-1", None, None), "boot-2") == "none"


def test_the_stored_json_round_trips_and_damage_is_refused() -> None:
    stored = (setting(7, ignore_serving=True), Clock(BOOT, "b0", at(1), at(2), ("x",), 812.5))
    assert idle.from_json(idle.to_json(*stored), "f") == stored
    older = idle.to_json(*stored)  # a file written before the monotonic time was kept
    del older["clock"]["last_check_uptime"]
    assert idle.from_json(older, "f")[1].last_check_uptime is None
    for bad in ("812", -1, True):
        damaged = idle.to_json(*stored)
        damaged["clock"]["last_check_uptime"] = bad
        with pytest.raises(AgentFailure, match="f is damaged"):
            idle.from_json(damaged, "f")
    damaged = idle.to_json(*stored)
    damaged["setting"]["idle_minutes"] = "7"
    with pytest.raises(AgentFailure, match="f is damaged"):
        idle.from_json(damaged, "f")
    zero = idle.to_json(*stored)
    zero["setting"]["idle_minutes"] = 0
    with pytest.raises(AgentFailure, match="idle_minutes 0"):
        idle.from_json(zero, "f")


def test_the_status_view_restarts_the_clock_at_a_boot_no_check_has_seen_yet() -> None:
    stored = (setting(30), Clock("boot-0", None, None, at(-5), ("1 SSH connection",)))
    view = idle.status_view(at(2), stored, None, BOOT, booted_at=at(1))
    assert view["idle_since"] == idle.stamp(at(1))
    assert view["last_check"] is None and view["last_busy"] == []
    assert view["last_stop"] == "none"


def test_everything_that_keeps_the_box_up_is_named_not_only_the_first() -> None:
    session = Activity(idle.SSH, "1 SSH connection", busy=True)
    request = Activity(idle.ROUTER, "requests to the router", last=at(99.5))
    decision = decide(at(100), setting(5), clock(), probes(session, request))
    assert decision.busy == ("1 SSH connection", "requests to the router (30s ago)")


def uptime_probes(uptime: float) -> Probes:
    return Probes(BOOT, T0, probes().activities, uptime)


def test_a_forward_step_of_the_wall_clock_is_not_idle_time() -> None:
    # Idle 5 of 30 minutes at the last check; then NTP sets the clock 2 hours ahead, and
    # a minute later (by the monotonic clock) the next check runs.
    first = decide(at(5), setting(30), clock(), uptime_probes(1000.0))
    assert not first.stop and first.clock.last_check_uptime == 1000.0
    after_step = at(5 + 120 + 1)
    second = decide(after_step, setting(30), first.clock, uptime_probes(1060.0))
    assert not second.stop
    assert second.idle_for == timedelta(minutes=6)
    # ...and 24 monotonic minutes later it is idle 30 minutes: it stops
    third = decide(
        after_step + timedelta(minutes=24), setting(30), second.clock, uptime_probes(2500.0)
    )
    assert third.stop and third.idle_for == timedelta(minutes=30)


def test_a_backward_step_does_not_keep_an_idle_box_up() -> None:
    first = decide(at(25), setting(30), clock(), uptime_probes(1000.0))
    # the clock goes back an hour; six monotonic minutes later the box has idled 31 minutes
    second = decide(at(25 - 60 + 6), setting(30), first.clock, uptime_probes(1360.0))
    assert second.stop and second.idle_for == timedelta(minutes=31)


def test_drift_of_the_wall_clock_within_the_tolerance_changes_nothing() -> None:
    first = decide(at(5), setting(30), clock(), uptime_probes(1000.0))
    second = decide(at(6), setting(30), first.clock, uptime_probes(1060.0 - idle.CLOCK_STEP_S))
    assert second.idle_for == timedelta(minutes=6)
