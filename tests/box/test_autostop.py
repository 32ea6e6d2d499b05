"""The idle auto-stop on a real local box: the real `fab` CLI, the timer, the probes, the power-off.

Stand-ins, because training and serving are other features: a training job is a
transient `systemd-run --unit mlops-train-test sleep 300` (a deploy transition the same,
as `mlops-deploy`), and the router is its access log, appended to by the test. The
probes look only at unit names and at the log's time, which is what those features make.

Each busy source is checked with the agent's `idle-check --dry-run --at <later>`: what
the timer's check would decide at that time, changing nothing. The check runs over SSH,
so that very connection always counts too; the tests assert on the source they add.
The power-off itself is the real timer with a one-minute window: a plain `ssh -N` tunnel
holds the box up past the window, and once it closes the box powers itself off.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from remote.agent.idle import commands as idle_cmds
from remote.box.autostop import check_args
from remote.contract import IDLE_DIR, IDLE_TIMER, KEEPALIVE_FILE, ROUTER_LOG
from remote.providers.base import State
from remote.providers.local.provider import LocalProvider
from remote.settings import BoxSettings
from remote.ssh import config_entry as ssh
from remote.system.agent import run_agent
from tests.box.harness.local_box import find_leftovers
from tests.box.harness.mlflow_box import MlflowBox

pytestmark = pytest.mark.box

WINDOW_S = 60
# A check runs on every minute: past the window and one more check, with a margin.
HOLD_S = WINDOW_S + 60 + 10
POWEROFF_TIMEOUT_S = 240
SETTING = f"{IDLE_DIR}/autostop.json"


@pytest.fixture(scope="module")
def box(local_settings: BoxSettings, local_box: LocalProvider) -> Iterator[MlflowBox]:
    box = MlflowBox(local_settings, local_box, "", None)
    box.start()
    try:
        yield box
    finally:
        # The box is the session's: leave it running, with the auto-stop off.
        box.start()
        off = box.fab("box.autostop", "--off")
        box.conn.close()
        assert off.returncode == 0, off.stderr


@pytest.fixture
def five_minutes(box: MlflowBox) -> MlflowBox:
    """The box with a five-minute auto-stop: longer than any test here, so the real timer
    never stops it under one; the dry runs ask about later times."""
    fab_ok(box, "box.autostop", "--idle-minutes", "5")
    return box


def fab_ok(box: MlflowBox, *args: str) -> str:
    result = box.fab(*args)
    assert result.returncode == 0, f"fab {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


def dry_check(box: MlflowBox, after: timedelta = timedelta(0)) -> dict[str, Any]:
    """What the timer's check would decide `after` from now (it changes nothing)."""
    at = (datetime.now(UTC) + after).isoformat()
    return run_agent(box.conn, idle_cmds.CHECK, *check_args(), "--dry-run", "--at", at)


def snapshot(box: MlflowBox) -> str:
    """The auto-stop's state on the box: its files and the timer's."""
    return box.sh(
        f"sudo cat {SETTING} 2>&1; systemctl is-enabled {IDLE_TIMER} 2>&1; "
        f"systemctl is-active {IDLE_TIMER} 2>&1; true"
    )


def openssh(box: MlflowBox, *args: str) -> list[str]:
    """The real OpenSSH client, through the generated entry only."""
    entry = ["-F", str(ssh.config_path(box.settings)), "-o", "BatchMode=yes"]
    return ["ssh", *entry, *args, box.settings.name]


@pytest.mark.parametrize(
    "args",
    [
        ["--idle-minutes", "0"],
        ["--idle-minutes=-5"],
        ["--idle-minutes", "1.5"],
        ["--idle-minutes", "soon"],
        [],
        ["--off", "--idle-minutes", "5"],
    ],
    ids=["zero", "negative", "fraction", "word", "nothing", "both"],
)
def test_bad_input_is_one_line_and_changes_nothing(box: MlflowBox, args: list[str]) -> None:
    before = snapshot(box)
    result = box.fab("box.autostop", *args)
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "--idle-minutes" in result.stderr
    assert snapshot(box) == before


def test_set_installs_the_timer_and_a_second_run_changes_nothing(box: MlflowBox) -> None:
    first = fab_ok(box, "box.autostop", "--idle-minutes", "7")
    assert "after 7 idle minutes (requests to the router count as use)\nChanged: " in first
    assert "the idle clock restarts now" in first
    again = fab_ok(box, "box.autostop", "--idle-minutes", "7")
    assert "\nNothing changed\n" in again
    assert box.sh(f"systemctl is-enabled {IDLE_TIMER}; systemctl is-active {IDLE_TIMER}").split(
    ) == ["enabled", "active"]  # fmt: skip
    status = fab_ok(box, "box.status")
    assert "auto-stop: after 7 idle minutes (requests to the router count as use)" in status
    assert re.search(r"^idle: +\S", status, re.M), status


@pytest.mark.usefixtures("five_minutes")
def test_an_open_fabric_connection_counts_as_busy(box: MlflowBox) -> None:
    decision = dry_check(box, timedelta(hours=1))
    assert decision["stop"] is False
    assert any(re.fullmatch(r"\d+ SSH connections?", b) for b in decision["busy"])


def _ssh_count(decision: dict[str, Any]) -> int:
    (found,) = [a for a in decision["activities"] if "SSH connection" in a]
    return int(found.split()[0])


@pytest.mark.usefixtures("five_minutes")
def test_a_tunnel_without_a_shell_counts_as_busy(box: MlflowBox) -> None:
    before = _ssh_count(dry_check(box))
    tunnel = subprocess.Popen(openssh(box, "-N"), stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while _ssh_count(decision := dry_check(box, timedelta(hours=1))) == before:
            assert tunnel.poll() is None, "ssh -N exited"
            assert time.monotonic() < deadline, "the tunnel never showed up"
            time.sleep(1)
        assert _ssh_count(decision) == before + 1
        assert decision["stop"] is False
    finally:
        tunnel.terminate()
        tunnel.wait(timeout=30)


@pytest.mark.parametrize("unit", ["mlops-train-test", "mlops-deploy", "mlops-drift"])
@pytest.mark.usefixtures("five_minutes")
def test_a_running_job_or_deploy_unit_counts_as_busy(box: MlflowBox, unit: str) -> None:
    # Stands in for a training job (mlops-train-<id>), a deploy transition (mlops-deploy)
    # or a scheduled drift check (mlops-drift).
    box.sh(f"sudo systemd-run --unit {unit} sleep 300")
    try:
        assert f"{unit}.service" in dry_check(box, timedelta(hours=1))["busy"]
    finally:
        box.sh(f"sudo systemctl stop {unit}")
    assert f"{unit}.service" not in str(dry_check(box, timedelta(hours=1))["busy"])


@pytest.mark.usefixtures("five_minutes")
def test_requests_to_the_router_count_within_the_window_unless_ignored(
    box: MlflowBox,
) -> None:
    # The router's access log, appended to as nginx does for each request.
    box.sh(f"sudo mkdir -p {ROUTER_LOG.rsplit('/', 1)[0]}")
    append = f"echo 'GET /predict 200' | sudo tee -a {ROUTER_LOG} >/dev/null"
    try:
        for _ in range(3):  # a steady trickle
            box.sh(append)
            busy = dry_check(box, timedelta(minutes=4))["busy"]
            assert any(b.startswith("requests to the router (4m") for b in busy), busy
            time.sleep(2)
        assert not any("router" in b for b in dry_check(box, timedelta(minutes=6))["busy"])
        fab_ok(box, "box.autostop", "--idle-minutes", "5", "--ignore-serving")
        box.sh(append)
        assert not any("router" in b for b in dry_check(box)["busy"])
        assert "(requests to the router do not count)" in fab_ok(box, "box.status")
    finally:
        box.sh(f"sudo rm -f {ROUTER_LOG}")
        fab_ok(box, "box.autostop", "--idle-minutes", "5")


@pytest.mark.usefixtures("five_minutes")
def test_the_keepalive_file_counts_until_its_time(box: MlflowBox) -> None:
    box.sh(f"sudo touch -d '+1 hour' {KEEPALIVE_FILE}")
    try:
        busy = dry_check(box, timedelta(minutes=50))["busy"]
        assert any(b.startswith(f"the keep-alive file {KEEPALIVE_FILE} (until ") for b in busy)
    finally:
        box.sh(f"sudo rm -f {KEEPALIVE_FILE}")
    assert "keep-alive" not in str(dry_check(box, timedelta(minutes=50))["busy"])


@pytest.mark.usefixtures("five_minutes")
def test_a_probe_that_fails_counts_as_busy(box: MlflowBox) -> None:
    # A path under a regular file cannot be looked at (ENOTDIR): the check must not
    # take "cannot tell" for "idle".
    args = [*check_args(), "--router-log", "/etc/hostname/access.log"]
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    decision = run_agent(box.conn, idle_cmds.CHECK, *args, "--dry-run", "--at", at)
    assert decision["stop"] is False
    assert (
        "requests to the router: probe failed (cannot stat /etc/hostname/access.log: "
        "Not a directory), counted as busy"
    ) in decision["busy"]


def _wait_state(provider: LocalProvider, wanted: State, timeout_s: float) -> float:
    start = time.monotonic()
    while provider.state().state is not wanted:
        assert time.monotonic() - start < timeout_s, f"the box is not {wanted.value}"
        time.sleep(2)
    return time.monotonic() - start


def test_an_idle_box_powers_itself_off_and_says_so_after_the_next_start(
    box: MlflowBox,
) -> None:
    fab_ok(box, "box.autostop", "--idle-minutes", "1")
    set_at = time.monotonic()
    # Only a plain tunnel holds the box now: no shell, no Fabric connection.
    tunnel = subprocess.Popen(openssh(box, "-N"), stdin=subprocess.DEVNULL)
    try:
        box.conn.close()
        while time.monotonic() - set_at < HOLD_S:
            assert box.provider.state().state is State.RUNNING, "stopped under an SSH tunnel"
            assert tunnel.poll() is None, "ssh -N exited"
            time.sleep(5)
        # The timer's checks of this window saw the tunnel, and only it.
        journal = box.sh("sudo journalctl -u mlops-idle -o cat --since -3min | grep idle-check")
        assert "busy: 1 SSH connection" in journal, journal
    finally:
        box.conn.close()
        tunnel.terminate()
        tunnel.wait(timeout=30)
    released_at = time.monotonic()

    _wait_state(box.provider, State.STOPPED, POWEROFF_TIMEOUT_S)
    # Never sooner than the window after the last activity.
    assert time.monotonic() - released_at >= WINDOW_S
    assert find_leftovers(box.settings.name) == []

    started = datetime.now(UTC)
    fab_ok(box, "box.start")
    box.conn = None
    box.start()  # a Fabric connection held from here: the box stays up meanwhile
    status = fab_ok(box, "box.status")
    assert re.search(
        r"^last stop: auto-stop at \d{4}-\d\d-\d\d \d\d:\d\d UTC \(idle [12] min; limit 1 min\)$",
        status,
        re.M,
    ), status
    assert "auto-stop: after 1 idle minute (requests to the router count as use)" in status
    view = run_agent(box.conn, idle_cmds.STATUS, "--dir", IDLE_DIR)
    # The clock restarted at this boot.
    assert datetime.fromisoformat(view["booted_at"]) >= started - timedelta(seconds=5)
    since = view["idle_since"]
    assert since is None or datetime.fromisoformat(since) >= started - timedelta(seconds=5)
    fab_ok(box, "box.autostop", "--idle-minutes", "30")


def test_a_stop_and_start_keep_the_setting_and_restart_the_clock(box: MlflowBox) -> None:
    fab_ok(box, "box.autostop", "--idle-minutes", "30")
    box.conn.close()
    fab_ok(box, "box.stop")
    started = datetime.now(UTC)
    fab_ok(box, "box.start")
    box.conn = None
    box.start()
    status = fab_ok(box, "box.status")
    assert "auto-stop: after 30 idle minutes" in status
    assert re.search(r"^last stop: not an auto-stop \(`fab box.stop`", status, re.M), status
    view = run_agent(box.conn, idle_cmds.STATUS, "--dir", IDLE_DIR)
    since = view["idle_since"]
    assert since is None or datetime.fromisoformat(since) >= started - timedelta(seconds=5)


@pytest.mark.usefixtures("five_minutes")
def test_off_stays_off(box: MlflowBox) -> None:
    out = fab_ok(box, "box.autostop", "--off")
    assert ": off\nChanged: the setting (off), mlops-idle.timer stopped and disabled\n" in out
    assert fab_ok(box, "box.autostop", "--off").endswith(": off\nNothing changed\n")
    states = box.sh(f"systemctl is-enabled {IDLE_TIMER}; systemctl is-active {IDLE_TIMER}; true")
    assert states.split() == ["disabled", "inactive"]
    # Even a real check (not a dry run) looks at nothing and does nothing.
    assert run_agent(box.conn, idle_cmds.CHECK, *check_args()) == {
        "ok": True,
        "enabled": False,
        "stop": False,
    }
    box.sh("sudo systemctl start mlops-idle.service")
    assert box.provider.state().state is State.RUNNING
    assert "auto-stop: off" in fab_ok(box, "box.status")
