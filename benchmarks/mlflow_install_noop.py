"""How long a no-change `fab mlflow.install` takes, and how many SSH connections it opens.

Against a box where MLflow is already installed (for example the local box after the
main job), it runs the real CLI `--runs` times and prints, for each run, the wall time
and the number of SSH logins sshd accepted meanwhile (from the box's journal).

Run as root:  .venv/bin/python benchmarks/mlflow_install_noop.py [--runs 3]
The box is the one fabric.yaml / FABRIC_BOX_* select. It prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from fabric import Config

from remote.providers import get_provider
from remote.settings import CONFIG_DEFAULTS, load_settings
from remote.ssh.connection import connect

REPO_ROOT = Path(__file__).resolve().parents[1]


def accepted_logins(settings, address: str) -> int:  # type: ignore[no-untyped-def]
    with connect(settings, address) as conn:
        out = conn.run(
            "sudo -n journalctl -q --no-pager -o cat _COMM=sshd-session _COMM=sshd "
            "| grep -c 'Accepted publickey'",
            hide=True,
            warn=True,
        ).stdout
    return int(out.strip() or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    # The same sources as `fab`: fabric.yaml, then FABRIC_BOX_* variables.
    config = Config(project_location=str(REPO_ROOT), overrides={})
    config.load_collection({"box": CONFIG_DEFAULTS})
    config.load_project()
    config.load_shell_env()
    settings = load_settings(config.box, project_dir=REPO_ROOT)
    address = get_provider(settings).state().address
    assert address, "start the box first (fab box.start)"
    fab = [str(Path(sys.executable).with_name("fab")), "-r", str(REPO_ROOT), "mlflow.install"]
    times = []
    for run in range(1, args.runs + 1):
        before = accepted_logins(settings, address)
        began = time.perf_counter()
        done = subprocess.run(fab, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        took = time.perf_counter() - began
        # The count itself logs in once: subtract that login.
        logins = accepted_logins(settings, address) - before - 1
        times.append(took)
        last = done.stdout.strip().splitlines()[0] if done.stdout.strip() else done.stderr
        print(f"run {run}: {took:.2f}s, {logins} SSH connection(s), exit {done.returncode}: {last}")
    print(f"median {statistics.median(times):.2f}s over {args.runs} runs")


if __name__ == "__main__":
    main()
