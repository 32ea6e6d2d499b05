"""What `fab train.run` adds to running a trivial entry on the box: time, SSH logins, bytes.

It makes a trivial project (noop.py, a `--data-mb` random data file, requirements naming
only the box's MLflow), then runs the real CLI `fab train.run --project <it> --entry
"python noop.py"`: once cold (its environment removed first, its files new to the box),
then `--runs` times warm (nothing changed). After each, it runs the same entry on the
box directly (one `ssh`, the same Python, the job's own snapshot) and prints the
difference: the overhead. SSH connections are the logins sshd accepted meanwhile (from
the box's journal); bytes are what train.run says it uploaded.

Goal (issue 9): warm overhead under 3 s, one SSH connection, 0 bytes.

Run as root:  .venv/bin/python benchmarks/train_overhead.py [--runs 3] [--data-mb 50]
The box is the one fabric.yaml / FABRIC_BOX_* select; it needs MLflow (fab mlflow.install).
It removes only its own environment (the one for exactly `mlflow==<server version>`).
It prints figures, asserts nothing.
"""

from __future__ import annotations

import os
import re
import secrets
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from harness import accepted_logins, arguments, box_settings, run_fab

from remote.contract import TRAIN_JOBS_DIR as JOBS_DIR
from remote.contract import TRAIN_USER
from remote.mlflow.status import read_state
from remote.settings import BoxSettings
from remote.ssh import config_entry
from remote.ssh.connection import connect
from remote.train.environment import LockedEnvironment, environment_for, lock, python_of


def make_project(root: Path, version: str, data_mb: int) -> None:
    (root / "noop.py").write_text(f"print('ok {secrets.token_hex(4)}')\n")
    (root / "requirements.txt").write_text(f"mlflow=={version}\n")
    with (root / "data.bin").open("wb") as data:
        for _ in range(data_mb):
            data.write(os.urandom(1 << 20))


def direct_s(settings: BoxSettings, env: LockedEnvironment, job_id: str) -> float:
    """The entry run on the box with one plain ssh: the baseline train.run is compared to."""
    command = (
        f"sudo -n -u {TRAIN_USER} sh -c "
        f"'cd {JOBS_DIR}/{job_id}/project && exec {python_of(env.key)} noop.py'"
    )
    ssh = ["ssh", "-F", str(config_entry.config_path(settings)), settings.name, command]
    began = time.perf_counter()
    subprocess.run(ssh, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - began


def one_run(
    label: str, project: Path, settings: BoxSettings, address: str, env: LockedEnvironment
) -> float:
    before = accepted_logins(settings, address)
    began = time.perf_counter()
    done = run_fab("train.run", "--project", str(project), "--entry", "python noop.py")
    took = time.perf_counter() - began
    logins = accepted_logins(settings, address) - before - 1  # the count's own login
    if done.returncode != 0:
        print(f"{label}: fab train.run failed ({done.returncode}): {done.stderr.strip()}")
        return float("nan")
    job_id = done.stdout.split(":", 1)[0].removeprefix("Job ")
    uploaded = re.search(r"Uploaded (\d+) new file\(s\), (\d+) bytes", done.stdout)
    files, sent = (uploaded.group(1), int(uploaded.group(2))) if uploaded else ("?", -1)
    built = "built" if f"Building {env.path}" in done.stdout else "reused"
    alone = direct_s(settings, env, job_id)
    print(
        f"{label}: {took:.2f}s with train.run, {alone:.2f}s alone: overhead "
        f"{took - alone:.2f}s; {logins} SSH connection(s); {sent:,} bytes uploaded "
        f"({files} files); environment {built}",
        flush=True,
    )
    return took - alone


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--runs", type=int, default=3, help="warm runs (default 3)")
    parser.add_argument("--data-mb", type=int, default=50, help="size of the data file (50)")
    args = parser.parse_args()
    settings, address = box_settings()
    with connect(settings, address) as conn:
        state = read_state(conn)
        assert state, "install MLflow on the box first (fab mlflow.install)"
        version = str(state["version"])
        env = lock(conn, environment_for([f"mlflow=={version}"], version), upgrade=False, say=print)
        conn.run(f"sudo -n rm -rf {env.path}", hide=True)
    with tempfile.TemporaryDirectory(prefix="train-overhead-") as tmp:
        project = Path(tmp)
        make_project(project, version, args.data_mb)
        one_run("cold", project, settings, address, env)
        warm = [one_run(f"warm {i}", project, settings, address, env) for i in range(args.runs)]
    print(f"warm overhead: median {statistics.median(warm):.2f}s over {args.runs} runs")


if __name__ == "__main__":
    main()
