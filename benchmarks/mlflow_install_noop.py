"""How long a no-change `fab mlflow.install` takes, and how many SSH connections it opens.

Against a box where MLflow is already installed (for example the local box after the
main job), it runs the real CLI `--runs` times and prints, for each run, the wall time
and the number of SSH logins sshd accepted meanwhile (from the box's journal).

Run as root:  .venv/bin/python benchmarks/mlflow_install_noop.py [--runs 3]
The box is the one fabric.yaml / FABRIC_BOX_* select. It prints figures, asserts nothing.
"""

from __future__ import annotations

import statistics
import time

from harness import accepted_logins, arguments, box_settings, run_fab


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    settings, address = box_settings()
    times = []
    for run in range(1, args.runs + 1):
        before = accepted_logins(settings, address)
        began = time.perf_counter()
        done = run_fab("mlflow.install")
        took = time.perf_counter() - began
        # The count itself logs in once: subtract that login.
        logins = accepted_logins(settings, address) - before - 1
        times.append(took)
        last = done.stdout.strip().splitlines()[0] if done.stdout.strip() else done.stderr
        print(f"run {run}: {took:.2f}s, {logins} SSH connection(s), exit {done.returncode}: {last}")
    print(f"median {statistics.median(times):.2f}s over {args.runs} runs")


if __name__ == "__main__":
    main()
