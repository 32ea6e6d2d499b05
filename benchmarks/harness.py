"""What every benchmark shares: the argparse preamble, the box `fab` acts on and a
connection to it, the real `fab` CLI, a steady load on the box, and the printing of figures.

Run a benchmark as a script, as root: `.venv/bin/python benchmarks/<name>.py --help`.
Benchmarks print figures and assert nothing. They use only public functions of `remote/`;
what they share with the box tests (the load client, the test models, MlflowBox) is in
tests/box/harness/.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fabric import Config

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # `tests.box.harness` and `tests.*` helpers

from remote.fabric_config import CONFIG_DEFAULTS  # noqa: E402
from remote.providers import get_provider  # noqa: E402
from remote.settings import BoxSettings, load_settings  # noqa: E402
from remote.ssh.connection import box_connection, connect  # noqa: E402
from tests.box.harness.serving_box import LOAD_SCRIPT, STATE_FILE, trips  # noqa: E402

# The real CLI, as a user runs it from this repository.
FAB = [str(Path(sys.executable).with_name("fab")), "-r", str(REPO_ROOT)]


def arguments(doc: str | None) -> argparse.ArgumentParser:
    """The parser of a benchmark, described by the first line of its docstring."""
    return argparse.ArgumentParser(description=(doc or "").splitlines()[0])


def figure(label: str, value: str, width: int = 48) -> None:
    """One figure on one line, the values of a benchmark's figures aligned."""
    print(f"{label + ':':<{width}} {value}", flush=True)


def box_settings() -> tuple[BoxSettings, str]:
    """The settings `fab` reads (fabric.yaml, then FABRIC_BOX_*) and the box's address."""
    config = Config(project_location=str(REPO_ROOT), overrides={})
    config.load_collection({"box": CONFIG_DEFAULTS})
    config.load_project()
    config.load_shell_env()
    settings = load_settings(config.box, project_dir=REPO_ROOT)
    address = get_provider(settings).state().address
    assert address, "start the box first (fab box.start)"
    return settings, address


def open_box() -> Any:
    """A pinned connection to the box `fab` acts on (not yet opened: use it in `with`)."""
    settings, _ = box_settings()
    return box_connection(settings, get_provider(settings))


def accepted_logins(settings: BoxSettings, address: str) -> int:
    """SSH logins sshd accepted so far (from the box's journal); this count logs in once."""
    with connect(settings, address) as conn:
        out = conn.run(
            "sudo -n journalctl -q --no-pager -o cat _COMM=sshd-session _COMM=sshd "
            "| grep -c 'Accepted publickey'",
            hide=True,
            warn=True,
        ).stdout
    return int(out.strip() or 0)


def run_fab(*args: str) -> subprocess.CompletedProcess[str]:
    """`fab ARGS` as a user runs it; its exit code is the caller's to read."""
    return subprocess.run([*FAB, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)


def fab(*args: str) -> str:
    """`fab ARGS`, which must succeed; its output."""
    done = run_fab(*args)
    if done.returncode != 0:
        raise SystemExit(f"`fab {' '.join(args)}` failed: {done.stderr.strip()}")
    return done.stdout


class BoxLoad:
    """The load client on the box, started in the background and stopped by a file."""

    def __init__(self, conn: Any, tag: str, body: bytes | None = None) -> None:
        self.conn, self.tag = conn, f"/tmp/mlops-bench-{tag}"
        conn.put(str(LOAD_SCRIPT), f"{self.tag}.py")
        conn.put(io.BytesIO(body or trips()), f"{self.tag}.json")

    def start(self, url: str, threads: int, duration_s: float) -> None:
        t = self.tag
        self.conn.run(
            f"rm -f {t}.stop {t}.out; (setsid nohup python3 {t}.py {url} {t}.json "
            f"--threads {threads} --duration {duration_s} --stop-file {t}.stop --out {t}.out "
            f"> {t}.log 2>&1 < /dev/null &)",
            hide=True,
        )

    def stop(self) -> dict[str, Any]:
        self.conn.run(f"touch {self.tag}.stop", hide=True)
        deadline = time.monotonic() + 120
        while not self.conn.run(f"test -f {self.tag}.out", hide=True, warn=True).ok:
            if time.monotonic() > deadline:
                raise SystemExit(self.conn.run(f"cat {self.tag}.log", hide=True).stdout)
            time.sleep(0.5)
        return dict(json.loads(self.conn.run(f"cat {self.tag}.out", hide=True).stdout))

    def clean(self) -> None:
        self.conn.run(f"rm -f {self.tag}.*", hide=True, warn=True)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))]


def latencies(result: dict[str, Any]) -> list[float]:
    return [r["end"] - r["start"] for r in result["results"] if r["status"] == 200]


def state(conn: Any) -> dict[str, Any]:
    """The deploy state on the box."""
    return dict(json.loads(conn.run(f"cat {STATE_FILE}", hide=True).stdout))


def ensure_live(conn: Any, uri: str) -> dict[str, Any]:
    """Make `uri` live (a blue-green deploy, unless it is live already); its assignment."""
    live = state(conn)["live"] if conn.run(f"test -f {STATE_FILE}", warn=True).ok else None
    if not live or live["model"]["uri"] != uri:
        print(f"1. deploying {uri}", flush=True)
        fab("deploy.blue-green", "--model", uri, "--bake", "0")
        live = state(conn)["live"]
    print(f"1. live: {uri} in {live['slot']}", flush=True)
    return dict(live)
