"""The idle check's probes and commands, run on this machine as the box runs them.

Real sockets, real files, this machine's real `systemctl` (which fails here, PID 1 not
being systemd: exactly a probe that cannot look). The agent bundle runs from its zip in
a temporary directory; the check always runs with --dry-run, so it never powers off.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from remote.agent.idle import decide as idle
from remote.agent.idle import probes as idle_probes
from tests.remote.agent.runs import BundleRun, run_bundle


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server


def test_ssh_counts_the_established_connections_to_its_port(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    assert idle_probes.ssh_connections(port).busy is False
    with (
        socket.create_connection(("127.0.0.1", port)) as one,
        socket.create_connection(("127.0.0.1", port)) as two,
    ):
        accepted = [listener.accept()[0], listener.accept()[0]]
        found = idle_probes.ssh_connections(port)
        for sock in accepted:
            sock.close()
        del one, two
    # The client sides have other local ports: only the two accepted sockets count.
    assert (found.busy, found.what) == (True, "2 SSH connections")


def test_ssh_probe_that_cannot_read_the_tcp_table_fails(tmp_path: Path) -> None:
    found = idle_probes.ssh_connections(22, tables=(str(tmp_path / "absent"),))
    assert found.failed.startswith(f"cannot read {tmp_path / 'absent'}")


def test_units_probe_reads_the_busy_units_of_a_listing() -> None:
    listing = (
        "mlops-train-a.service loaded active running Training job a\n"
        "mlops-train-b.service loaded failed failed Training job b\n"
        "mlops-deploy.service loaded activating start Deploy\n"
        "mlops-train-c.service loaded inactive dead Training job c\n"
    )
    assert idle_probes.busy_units(listing) == [
        "mlops-train-a.service",
        "mlops-deploy.service (activating)",
    ]


@pytest.mark.skipif(shutil.which("systemctl") is None, reason="needs a systemctl binary")
def test_units_probe_fails_where_systemctl_cannot_answer() -> None:
    # PID 1 here is not systemd: the listing fails, and that must count as busy.
    if Path("/proc/1/comm").read_text().strip() == "systemd":
        pytest.skip("this machine runs systemd; the box tier covers the real listing")
    found = idle_probes.running_units(["mlops-train-*"])
    assert found.failed.startswith("systemctl list-units:")


def test_units_probe_fails_when_systemctl_is_missing(tmp_path: Path) -> None:
    found = idle_probes.running_units(["x-*"], systemctl=str(tmp_path / "systemctl"))
    assert found.failed and not found.busy


def test_touched_reads_the_time_and_an_unreadable_path_fails(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    assert idle_probes.touched(idle.ROUTER, "r", str(log)).last is None
    log.write_text("GET /\n")
    os.utime(log, (1_700_000_000, 1_700_000_000))
    found = idle_probes.touched(idle.ROUTER, "r", str(log))
    assert found.last == datetime.fromtimestamp(1_700_000_000, UTC)
    broken = idle_probes.touched(idle.ROUTER, "r", str(log / "under-a-file"))
    assert broken.failed.startswith("cannot stat")


def test_booted_at_is_this_machines_init_start_and_never_ahead() -> None:
    now = datetime.now(UTC)
    started = idle_probes.booted_at(now)
    assert started <= now
    init_age = float(Path("/proc/uptime").read_text().split()[0])  # at least init's age
    assert started >= now - timedelta(seconds=init_age + 5)


def _check(tmp_path: Path, *extra: str, units_listing: str | None = None) -> BundleRun:
    where = [
        "--dir", str(tmp_path / "idle"), "--ssh-port", "1",
        "--router-log", str(tmp_path / "router.log"),
        "--keepalive", str(tmp_path / "keepalive"),
    ]  # fmt: skip
    return run_bundle(tmp_path, "idle-check", *where, *extra, units_listing=units_listing)


def test_set_check_and_status_through_the_bundle(tmp_path: Path) -> None:
    code, off, _ = _check(tmp_path, "--dry-run")
    assert (code, off) == (0, {"ok": True, "enabled": False, "stop": False})

    setting = ["idle-set", "--dir", str(tmp_path / "idle"), "--idle-minutes", "5"]
    code, answer, _ = run_bundle(tmp_path, *setting)
    assert (code, answer["changed"], answer["idle_minutes"]) == (0, True, 5)
    code, again, _ = run_bundle(tmp_path, *setting)
    assert again["changed"] is False

    soon = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    later = (datetime.now(UTC) + timedelta(minutes=6)).isoformat()
    assert _check(tmp_path, "--dry-run", "--at", soon)[1]["stop"] is False
    code, answer, log = _check(tmp_path, "--dry-run", "--at", later)
    assert (code, answer["stop"], answer["busy"]) == (0, True, [])
    assert "dry run: idle" in log and "would power the box off" in log
    # `touch -d '+10 minutes'` on the keep-alive file: busy until then.
    ahead = (datetime.now(UTC) + timedelta(minutes=10)).timestamp()
    (tmp_path / "keepalive").touch()
    os.utime(tmp_path / "keepalive", (ahead, ahead))
    code, answer, _ = _check(tmp_path, "--dry-run", "--at", later)
    assert answer["stop"] is False
    assert "(until " in str(answer["busy"])

    code, status, _ = run_bundle(tmp_path, "idle-status", "--dir", str(tmp_path / "idle"))
    assert (status["enabled"], status["idle_minutes"], status["last_stop"]) == (True, 5, "none")
    assert status["last_check"] is None  # dry runs store nothing


def test_a_real_check_at_another_time_is_refused(tmp_path: Path) -> None:
    run_bundle(tmp_path, "idle-set", "--dir", str(tmp_path / "idle"), "--idle-minutes", "1")
    code, answer, _ = _check(tmp_path, "--at", "2099-01-01T00:00:00+00:00")
    assert (code, answer["ok"], answer["kind"]) == (1, False, "bad-value")


def test_a_damaged_setting_makes_the_check_fail_not_stop(tmp_path: Path) -> None:
    (tmp_path / "idle").mkdir()
    (tmp_path / "idle" / "autostop.json").write_text("{not json")
    code, answer, _ = _check(tmp_path, "--dry-run", "--at", "2099-01-01T00:00:00+00:00")
    assert (code, answer["kind"]) == (1, "setting")


def test_off_is_really_off_the_check_looks_at_nothing(tmp_path: Path) -> None:
    where = ["--dir", str(tmp_path / "idle")]
    run_bundle(tmp_path, "idle-set", *where, "--idle-minutes", "1")
    code, answer, _ = run_bundle(tmp_path, "idle-set", *where, "--off")
    assert (code, answer["changed"], answer["enabled"]) == (0, True, False)
    code, answer, log = _check(tmp_path, "--dry-run", "--at", "2099-01-01T00:00:00+00:00")
    # No probe ran: the answer has no activities, and the log says it is off.
    assert (code, answer) == (0, {"ok": True, "enabled": False, "stop": False})
    assert log.strip() == "idle-check: auto-stop is off"


def test_a_real_check_of_an_idle_box_asks_for_the_power_off_and_keeps_no_record_when_refused(
    tmp_path: Path, guarded_host: Path
) -> None:
    # The power-off is really asked for: conftest.py's host guard refuses it on this
    # machine and logs it. systemctl lists no busy unit, as on an idle box.
    idle = tmp_path / "idle"
    run_bundle(tmp_path, "idle-set", "--dir", str(idle), "--idle-minutes", "1")
    stored = json.loads((idle / "autostop.json").read_text())
    long_ago = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    stored["setting"]["changed_at"] = stored["clock"]["idle_since"] = long_ago
    (idle / "autostop.json").write_text(json.dumps(stored))

    code, answer, _ = _check(tmp_path, units_listing="")
    assert (code, answer["ok"], answer["kind"]) == (1, False, "poweroff"), answer
    assert "systemctl poweroff --no-block" in answer["error"]
    assert guarded_host.read_text().splitlines() == ["systemctl poweroff --no-block"]
    assert not (idle / "last-autostop.json").exists()  # the stop did not happen
