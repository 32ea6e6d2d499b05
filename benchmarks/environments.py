"""README's main job on a new local box, phase by phase, and pip against uv on the same box.

Part 1, the main job: on a throw-away local box (the Debian image from the debootstrap
cache, built first if missing), the real `fab` CLI runs README's main job one task at a
time and each is timed: box.create, box.start, box.bootstrap, mlflow.install (the
server's env), train.run (the first training env, then the job), deploy.blue-green (the
first model env, then the rollout); then the monitor's env, and `train.run` of the
unchanged project again (it must install nothing: uv's runs on the box are counted).

Part 2, side by side on that box, for each lock in locks/box/: a fresh venv filled
  pip   as before locks: `pip download` into a warm wheelhouse, `pip install --no-index`
  uv    `uv pip sync --require-hashes` with the box's shared, warm cache
and the ratio. Both caches are warm (part 1 filled uv's; a first pip pass fills pip's
wheelhouse, untimed), so the figures compare installing, not the network.

--fresh-cache gives the box a package cache of its own (the Debian image still cached):
part 1 then shows a first-ever run on this machine.

Run as root:  .venv/bin/python benchmarks/environments.py [--fresh-cache]
It destroys its box at the end. It prints figures and asserts nothing.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import FAB, REPO_ROOT, arguments, figure

from remote import locks
from remote.monitor.env import ensure_monitor_env
from remote.providers.local.provider import LocalProvider
from remote.settings import load_settings
from remote.ssh import keys
from remote.ssh.connection import connect
from remote.system.venv import LOCKS_DIR, UV, UV_CACHE

UV_RUNS = "sudo -n journalctl -q --no-pager -o cat _COMM=sudo | grep -c '/bin/uv ' || true"


def fab(env: dict[str, str], *args: str) -> tuple[float, str]:
    began = time.perf_counter()
    done = subprocess.run(
        [*FAB, *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    took = time.perf_counter() - began
    if done.returncode != 0:
        sys.exit(f"fab {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return took, done.stdout


# README's main job, one task at a time (its arguments exactly).
TRAIN = ["train.run", "--project", "examples/taxi"]
MODEL = "taxi-duration"


def main_job(env: dict[str, str]) -> None:
    phases = [
        ("box.create", ["box.create"]),
        ("box.start", ["box.start"]),
        ("box.bootstrap", ["box.bootstrap"]),
        ("mlflow.install (server env)", ["mlflow.install"]),
        (
            "train.run (first training env + job)",
            [*TRAIN, "--register-as", MODEL],
        ),
        (
            "deploy.blue-green (first model env + rollout)",
            ["deploy.blue-green", "--model", f"models:/{MODEL}@challenger"],
        ),
        ("deploy.status", ["deploy.status"]),
    ]
    total = 0.0
    for label, args in phases:
        took, _ = fab(env, *args)
        total += took
        figure(f"  {label}", f"{took:7.1f}s")
    figure("  the main job, in all", f"{total:7.1f}s")


def side_by_side(conn: object, name: str) -> None:
    lock = locks.box_lock(name)
    run = conn.run  # type: ignore[attr-defined]
    pinned = f"{LOCKS_DIR}/bench-{lock.key}.txt"
    wheels = "/var/cache/mlops-box/bench-wheels"
    work = f"/var/tmp/bench-{secrets.token_hex(3)}"  # not /tmp: a tmpfs on the box
    run(f"sudo -n install -d -m 755 {LOCKS_DIR} {wheels} {work}", hide=True)
    conn.put(io.BytesIO(lock.text.encode()), f"{work}.txt")  # type: ignore[attr-defined]
    run(f"sudo -n mv {work}.txt {pinned}", hide=True)
    pip = "--disable-pip-version-check -q --require-hashes --no-deps"

    def pip_fill(venv: str) -> str:
        return (
            f"python3 -m venv {venv} && {venv}/bin/pip download {pip} -d {wheels} -r {pinned} "
            f"&& {venv}/bin/pip install {pip} --no-index --find-links {wheels} -r {pinned}"
        )

    uv_env = f"UV_CACHE_DIR={UV_CACHE} UV_SYSTEM_CERTS=1 UV_PYTHON_DOWNLOADS=never"
    uv_fill = (
        f"{uv_env} {UV} venv -q --relocatable --python /usr/bin/python3 {{venv}} && "
        f"{uv_env} {UV} pip sync -q --require-hashes --python {{venv}}/bin/python {pinned}"
    )
    run(f"sudo -n sh -c '{pip_fill(work + '/warm-pip')}'", hide=True)  # fills the wheelhouse
    figures = {}
    for way, script in (
        ("pip", pip_fill(f"{work}/pip")),
        ("uv", uv_fill.format(venv=f"{work}/uv")),
    ):
        began = time.perf_counter()
        run(f"sudo -n sh -c '{script}'", hide=True)
        figures[way] = time.perf_counter() - began
    run(f"sudo -n rm -rf {work} {pinned}", hide=True)
    print(
        f"  {name:<14} {len(lock.pins()):3d} packages: pip {figures['pip']:6.1f}s, "
        f"uv {figures['uv']:5.1f}s, pip/uv {figures['pip'] / figures['uv']:5.1f}x",
        flush=True,
    )


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--fresh-cache", action="store_true")
    parser.add_argument("--subnet", default="10.216.0.0/16")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlops-box-envs-") as tmp:
        name = f"mlbench-{secrets.token_hex(3)}"
        local: dict[str, str] = {"root": f"{tmp}/boxes", "subnet": args.subnet}
        if args.fresh_cache:
            shared = load_settings({"provider": "local"}, project_dir=REPO_ROOT).local.cache
            cache = Path(tmp, "cache")
            cache.mkdir()
            for entry in shared.iterdir():  # the Debian image(s), not the packages
                if entry.name not in ("packages", "pip"):
                    os.symlink(entry, cache / entry.name)
            local["cache"] = str(cache)
        box = {
            "provider": "local",
            "name": name,
            "key": f"{tmp}/key",
            "ssh_dir": f"{tmp}/ssh",
            "local": local,
        }
        settings = load_settings(box, project_dir=REPO_ROOT)
        keys.keygen(settings)
        env = {
            **os.environ,
            "FABRIC_BOX_PROVIDER": "local",
            "FABRIC_BOX_NAME": name,
            "FABRIC_BOX_KEY": box["key"],
            "FABRIC_BOX_SSH_DIR": box["ssh_dir"],
            "FABRIC_BOX_LOCAL_ROOT": local["root"],
            "FABRIC_BOX_LOCAL_SUBNET": args.subnet,
            **({"FABRIC_BOX_LOCAL_CACHE": local["cache"]} if "cache" in local else {}),
        }
        provider = LocalProvider(settings)
        try:
            cache_kind = "a fresh" if args.fresh_cache else "the host's"
            print(f"Part 1: README's main job, phase by phase ({cache_kind} package cache)")
            main_job(env)
            address = provider.state().address
            with connect(settings, address) as conn:
                began = time.perf_counter()
                ensure_monitor_env(conn, lambda _: None)
                print(f"  {'monitor env':<48} {time.perf_counter() - began:7.1f}s")
                before = int(conn.run(UV_RUNS, hide=True).stdout.strip() or 0)
                took, _ = fab(env, *TRAIN)
                after = int(conn.run(UV_RUNS, hide=True).stdout.strip() or 0)
                print(
                    f"  {'train.run again, unchanged project':<48} {took:7.1f}s "
                    f"({after - before} uv runs on the box)"
                )
                print("Part 2: a fresh env from each box lock, caches warm")
                for lock_name in (locks.BASE, locks.MLFLOW_SERVER, locks.MONITOR):
                    side_by_side(conn, lock_name)
        finally:
            provider.destroy()
            shutil.rmtree(Path(tmp, "cache"), ignore_errors=True)


if __name__ == "__main__":
    main()
