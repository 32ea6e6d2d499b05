"""`fab box.autostop` on the controller: validation, the units it renders, the status rows.

Pure: no box. The unit's ExecStart is parsed back with the agent's own argument parser,
so the names in remote/contract.py and what the agent expects cannot drift apart.
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from remote import contract
from remote.agent.cli import parser as _parser
from remote.box import autostop as idle
from remote.errors import ConfigError
from remote.providers.base import BoxState, State
from remote.system.systemd import UnitState
from tests.remote.factories import settings_in

NOW = datetime(2025, 6, 1, 12, 30, tzinfo=UTC)
TIMER_ON = UnitState("active", True, 0, "")
TIMER_OFF = UnitState("inactive", False, 0, "")


@pytest.mark.parametrize(
    ("minutes", "off", "ignore", "error"),
    [
        ("0", False, False, "--idle-minutes is '0': give a whole number of minutes from 1"),
        ("-5", False, False, "--idle-minutes is '-5'"),
        ("1.5", False, False, "--idle-minutes is '1.5'"),
        ("abc", False, False, "--idle-minutes is 'abc'"),
        ("10081", False, False, "from 1 to 10080 (a week)"),
        ("", False, False, "Give --idle-minutes N"),
        ("5", True, False, "not both"),
        ("", True, True, "--ignore-serving goes with --idle-minutes N"),
    ],
)
def test_bad_requests_are_refused_with_what_to_do(
    minutes: str, off: bool, ignore: bool, error: str
) -> None:
    with pytest.raises(ConfigError, match=error.replace("(", r"\(").replace(")", r"\)")):
        idle.parse_request(minutes, off, ignore)


def test_good_requests() -> None:
    assert idle.parse_request("30", False, True) == idle.AutostopRequest(30, True)
    assert idle.parse_request(" 1 ", False, False) == idle.AutostopRequest(1, False)
    assert idle.parse_request("", True, False) == idle.AutostopRequest(None)


def test_the_units_run_the_agents_check_with_the_contracts_names() -> None:
    service, timer = idle.render_units("/opt/mlops-box/agent/abc.zip")
    exec_start = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    words = shlex.split(exec_start.removeprefix("ExecStart="))
    assert words[:3] == ["/usr/bin/python3", "-m", "mlops_agent"]
    args = _parser().parse_args(words[3:])
    assert args.command == "idle-check"
    assert args.dir == contract.IDLE_DIR
    assert args.ssh_port == contract.SSH_PORT
    assert args.unit == [
        contract.TRAIN_UNIT_PATTERN,
        contract.DEPLOY_UNIT_PATTERN,
        contract.DRIFT_SERVICE,
    ]
    assert args.router_log == contract.ROUTER_LOG
    assert args.keepalive == contract.KEEPALIVE_FILE
    assert not args.dry_run and args.at is None
    assert "Environment=PYTHONPATH=/opt/mlops-box/agent/abc.zip\n" in service
    assert "Type=oneshot\n" in service and "[Install]" not in service
    assert f"Unit={contract.IDLE_SERVICE}\n" in timer
    assert "OnCalendar=*-*-* *:*:00\n" in timer and "WantedBy=timers.target" in timer


def test_a_word_systemd_would_read_otherwise_is_refused() -> None:
    with pytest.raises(ValueError, match="unquoted"):
        idle.render_units("/opt/agent dir/x.zip")


def view(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "now": NOW.isoformat(),
        "booted_at": (NOW - timedelta(hours=1)).isoformat(),
        "enabled": True,
        "idle_minutes": 30,
        "ignore_serving": False,
        "changed_at": (NOW - timedelta(hours=2)).isoformat(),
        "idle_since": (NOW - timedelta(minutes=4)).isoformat(),
        "last_check": (NOW - timedelta(seconds=20)).isoformat(),
        "last_busy": [],
        "last_stop": "none",
        "last_autostop": None,
    }
    return {**base, **fields}


def rows(**fields: object) -> dict[str, str]:
    return dict(idle.status_rows(view(**fields), TIMER_ON))


def test_status_rows_of_an_idle_box() -> None:
    shown = rows()
    assert shown["auto-stop"] == (
        "after 30 idle minutes (requests to the router count as use), checked on the box "
        "every minute"
    )
    assert shown["idle"] == "4m (since 2025-06-01 12:26 UTC; last check 2025-06-01 12:29 UTC)"
    assert shown["last stop"] == "no auto-stop recorded"


def test_status_rows_of_a_box_in_use() -> None:
    shown = rows(idle_since=None, last_busy=["1 SSH connection", "mlops-train-1.service"])
    assert shown["idle"] == (
        "0m: in use at the last check (2025-06-01 12:29 UTC): 1 SSH connection, "
        "mlops-train-1.service"
    )


def test_status_rows_of_a_box_kept_up_by_the_keepalive_file() -> None:
    ahead = (NOW + timedelta(hours=2)).isoformat()
    busy = "the keep-alive file /var/lib/mlops-box/keepalive (until 2025-06-01T14:30:00+00:00)"
    shown = rows(idle_since=ahead, last_busy=[busy])
    assert shown["idle"] == f"0m: kept up until 2025-06-01 14:30 UTC: {busy}"


def test_status_rows_after_an_auto_stop_and_after_another_stop() -> None:
    record = {"at": "2025-06-01T10:03:00+00:00", "idle_minutes": 30, "idle_for_s": 1830}
    assert rows(last_stop="auto", last_autostop=record)["last stop"] == (
        "auto-stop at 2025-06-01 10:03 UTC (idle 30 min; limit 30 min)"
    )
    assert rows(last_stop="other", last_autostop=record)["last stop"].startswith(
        "not an auto-stop (`fab box.stop`, or a shutdown on the box); the last auto-stop "
        "was at 2025-06-01 10:03 UTC"
    )


def test_status_rows_say_when_the_timer_does_not_run_or_the_setting_is_off() -> None:
    broken = dict(idle.status_rows(view(), TIMER_OFF))
    assert broken["auto-stop"].endswith(
        "but mlops-idle.timer is inactive and disabled: run `fab box.autostop` again"
    )
    off = dict(idle.status_rows(view(enabled=False), TIMER_OFF))
    assert off["auto-stop"] == "off (turn it on: `fab box.autostop --idle-minutes N`)"
    assert "idle" not in off


def test_a_box_that_is_not_running_says_what_it_cannot_know(tmp_path: Path) -> None:
    stopped = BoxState(State.STOPPED, "i-0123")
    (row,) = idle.box_rows(settings_in(tmp_path), stopped)
    assert row == (
        "auto-stop",
        "unknown while the box is stopped: the setting and the record of the last stop live "
        "on the box (`fab box.start`, then `fab box.status`)",
    )


def test_a_running_box_without_a_pinned_key_is_not_asked(tmp_path: Path) -> None:
    running = BoxState(State.RUNNING, "i-0123", "203.0.113.7")
    (row,) = idle.box_rows(settings_in(tmp_path), running)
    assert row == (
        "auto-stop",
        "unknown: no host key is pinned for mlops-test yet (`fab box.start` pins it)",
    )
