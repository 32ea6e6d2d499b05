"""How long a drift report takes on the box for 10k and 100k logged predictions, and its
memory peak (goal: under 10 s at 100k).

It makes a throw-away local box, installs MLflow, trains and registers the example model
through a tunnel (as a user does from a laptop), then for each size writes that many
predictions (the model's own, one request each, over the last 20 hours, with labels for
a tenth of them) as a serving slot's log on the box and runs the real report. It prints,
per size: the report's own time on the box (the agent's, from its first import to the
MLflow run logged) split by stage, the CPU time of its whole process (which, unlike the
wall time, does not grow when other work shares the cores: the load average is
printed too), its peak resident memory, and the whole `monitor.drift` call from here
(SSH, systemd-run, the download). The first report also
builds the monitor's environment: that build is left out of every figure.

Run as root:  .venv/bin/python benchmarks/drift_report.py [--sizes 10000 100000] [--runs 2]
It prints figures and asserts nothing; the box is destroyed at the end.
"""

from __future__ import annotations

import datetime
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from harness import REPO_ROOT, arguments

from remote.contract import LABELS_DIR, PREDICTION_LOG_DIR
from remote.mlflow.install import install_on_box
from remote.monitor.drift import report
from remote.monitor.env import ensure_monitor_env
from remote.monitor.options import DriftRequest
from remote.providers.local.provider import LocalProvider
from remote.settings import load_settings
from remote.ssh import keys
from remote.system import files
from remote.system.bootstrap import bootstrap
from remote.system.files import RemoteFile
from tests.box.harness.mlflow_box import MlflowBox
from tests.prediction_log import lines
from tests.taxi_example import example_module

MODEL = "taxi-duration"


def quiet(_: str) -> None:
    return None


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=3, help="reports per size")
    parser.add_argument("--subnet", default="10.217.0.0/16")
    args = parser.parse_args()
    import mlflow

    taxi_data = example_module("taxi_data")
    train = example_module("train")
    with tempfile.TemporaryDirectory(prefix="mlops-box-bench-") as tmp:
        settings = load_settings(
            {
                "provider": "local",
                "name": f"mldrift-{secrets.token_hex(3)}",
                "key": f"{tmp}/key",
                "ssh_dir": f"{tmp}/ssh",
                "local": {"root": f"{tmp}/boxes", "subnet": args.subnet},
            },
            project_dir=REPO_ROOT,
        )
        keys.keygen(settings)
        provider = LocalProvider(settings)
        provider.create()
        try:
            box = MlflowBox(settings, provider, "", None)
            box.start()
            bootstrap(box.conn)
            install_on_box(box.conn, provider, say=quiet)
            ensure_monitor_env(box.conn, print)
            with box.tracking():
                train.main(["--rows", "5000", "--seed", "1"])
                run = mlflow.search_runs(output_format="list", max_results=1)[0]
                model_uri = f"runs:/{run.info.run_id}/model"
                for _ in args.sizes:
                    mlflow.register_model(model_uri, MODEL)
                model = mlflow.pyfunc.load_model(model_uri)
            print(
                f"{'rows':>8} {'on box':>8} {'stages (s)':<74} {'CPU':>6} {'peak RSS':>9} "
                f"{'fab call':>9}  load"
            )
            for version, size in enumerate(args.sizes, 1):
                trips = taxi_data.generate(size, 100 + version)
                now = datetime.datetime.now(datetime.UTC)
                log = "".join(
                    lines(
                        trips[taxi_data.FEATURES],
                        model.predict(trips[taxi_data.FEATURES]),
                        model=MODEL,
                        version=str(version),
                        start=now - datetime.timedelta(hours=20),
                        end=now,
                        id_prefix=f"v{version}",
                    )
                )
                labels = "".join(
                    f'{{"request_id": "v{version}-{i}", "value": {trips[taxi_data.TARGET][i]}, '
                    f'"name": "{taxi_data.TARGET}"}}\n'
                    for i in range(0, size, 10)
                )
                box.sh(f"sudo rm -rf {PREDICTION_LOG_DIR} {LABELS_DIR}")
                box.sh(f"sudo install -d {PREDICTION_LOG_DIR} {LABELS_DIR}")
                files.write(box.conn, RemoteFile(f"{PREDICTION_LOG_DIR}/blue.jsonl", log.encode()))
                files.write(box.conn, RemoteFile(f"{LABELS_DIR}/bench.jsonl", labels.encode()))
                request = DriftRequest(f"{MODEL}/{version}", 86400)
                walls, seconds, cpus = [], [], []
                for _ in range(args.runs):
                    began = time.perf_counter()
                    made = report(box.conn, request, Path(tmp) / "reports", say=quiet)
                    walls.append(time.perf_counter() - began)
                    answer = made.answer
                    seconds.append(answer["seconds"])
                    cpus.append(answer["cpu_s"])
                    stages = " ".join(f"{k} {v:.2f}" for k, v in answer["stages"].items())
                    print(
                        f"{size:>8} {answer['seconds']:>7.2f}s {stages:<74} "
                        f"{answer['cpu_s']:>5.2f}s {answer['peak_rss_mb']:>7.0f}MB "
                        f"{walls[-1]:>8.2f}s  {os.getloadavg()[0]:.1f}"
                    )
                print(
                    f"{size:>8} median: {statistics.median(seconds):.2f}s on the box, "
                    f"{statistics.median(cpus):.2f}s CPU, "
                    f"fab call {statistics.median(walls):.2f}s; "
                    f"{answer['rows']} rows, {answer['labels']['used']} labelled"
                )
            box.conn.close()
        finally:
            provider.destroy()


if __name__ == "__main__":
    main()
