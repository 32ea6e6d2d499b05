"""Many `fab` runs at once on one ssh dir: real processes, and the files stay whole.

Each worker is one box (its own alias) sharing the ssh dir, as parallel `fab box.start`
runs for several boxes do. Every round it rewrites its entry, ensures the Include, and
forgets then pins its host key: known_hosts is read, changed and written back, so without
the lock one run's write drops what another had just added.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from remote.ssh import config_entry as ssh
from remote.ssh import known_hosts as host_keys
from tests.remote.factories import settings_in

WORKERS = 8
ROUNDS = 40
USER_CONFIG = b"# mine\nHost work\n    HostName 192.0.2.8\n"
JOIN_TIMEOUT_S = 120


def key_of(index: int) -> str:
    return f"AAAAC3NzaC1lZDI1NTE5AAAAworker{index}"


def worker(root: str, index: int, start: Any) -> None:
    settings = settings_in(Path(root), name=f"box-{index}")
    start.wait()
    for round_ in range(ROUNDS):
        ssh.write_entry(settings, f"198.51.100.{round_}")
        ssh.ensure_include(settings)
        host_keys.forget_host_key(settings)
        host_keys.pin_host_key(settings, "ssh-ed25519", key_of(index))


def test_concurrent_writers_leave_every_file_whole(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    settings.ssh_dir.mkdir(parents=True, mode=0o700)
    ssh.config_path(settings).write_bytes(USER_CONFIG)
    context = multiprocessing.get_context("fork")
    start = context.Barrier(WORKERS)
    processes = [
        context.Process(target=worker, args=(str(tmp_path), i, start)) for i in range(WORKERS)
    ]

    for process in processes:
        process.start()
    for process in processes:
        process.join(JOIN_TIMEOUT_S)

    assert [p.exitcode for p in processes] == [0] * WORKERS
    config = ssh.config_path(settings).read_bytes()
    assert config == ssh.include_line(settings).encode() + b"\n" + USER_CONFIG
    for i in range(WORKERS):
        entry = (ssh.entry_dir(settings) / f"box-{i}.conf").read_text()
        assert f"Host box-{i}\n    HostName 198.51.100.{ROUNDS - 1}\n" in entry
    known = ssh.known_hosts_path(settings).read_text().splitlines()
    assert sorted(known) == sorted(f"box-{i} ssh-ed25519 {key_of(i)}" for i in range(WORKERS))
