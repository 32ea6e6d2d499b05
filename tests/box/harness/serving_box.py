"""A local box with MLflow and registered models, as the serving tests drive it.

Models come from the example project: examples/taxi/train.py runs on this machine
against the box's MLflow through an SSH tunnel, and the real client registers them.
Test models that misbehave on purpose come from tests/box/harness/models/picky_model.py.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remote.mlflow.install import install_on_box
from remote.providers.local.provider import LocalProvider
from remote.settings import BoxSettings
from remote.system.bootstrap import bootstrap
from tests.box.harness.local_box import REPO_ROOT
from tests.box.harness.mlflow_box import MlflowBox

TAXI = REPO_ROOT / "examples" / "taxi"
PICKY_MODEL = Path(__file__).with_name("models") / "picky_model.py"
LOAD_SCRIPT = Path(__file__).with_name("load.py")
ROUTER = "http://127.0.0.1:8000"
STATE_FILE = "/var/lib/mlops-box/deploy/state.json"


def _example_module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, TAXI / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# Two trips, in the columns of the example's features (examples/taxi/taxi_data.py).
TRIPS = {
    "columns": _example_module("taxi_data").FEATURES,
    "data": [["Midtown", "Chelsea", 2.5, 9, 2, 1.0], ["Astoria", "Harlem", 4.3, 18, 4, 2.0]],
}


def trips(passengers: float = 1.0) -> bytes:
    data = [[*row[:-1], passengers] for row in TRIPS["data"]]
    return json.dumps({"dataframe_split": {**TRIPS, "data": data}}).encode()


def open_box(settings: BoxSettings, provider: LocalProvider) -> MlflowBox:
    """The test box started, bootstrapped and running MLflow (each step a no-op when done)."""
    box = MlflowBox(settings, provider, "", None)
    box.start()
    bootstrap(box.conn)
    install_on_box(box.conn, box.provider)
    return box


def train_and_register(
    box: MlflowBox, name: str, *, model: str, seed: int, knobs: tuple[str, ...] = ()
) -> str:
    """Train the example on this machine, logging to the box's MLflow; register it.
    `knobs`: the example's drift arguments, such as ("--speed-factor", "0.5")."""
    import mlflow

    with box.tracking() as url:
        done = subprocess.run(
            [
                *(sys.executable, "train.py", "--model", model, "--rows", "1500"),
                *("--seed", str(seed), *knobs),
            ],
            cwd=TAXI,
            env={**os.environ, "MLFLOW_TRACKING_URI": url},
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        uri = re.search(r"^model (\S+)$", done.stdout, re.MULTILINE)
        assert uri, done.stdout + done.stderr
        return str(mlflow.register_model(uri.group(1), name).version)


def register_picky(
    box: MlflowBox,
    name: str,
    *,
    most_passengers: int,
    like: str,
    extra: tuple[str, ...] = (),
    sleep_s: float = 0.0,
) -> str:
    """Log and register a picky model with the requirements of the model `like` (so they
    share one environment on the box), plus `extra` ones; it sleeps `sleep_s` a call."""
    import mlflow
    import pandas as pd

    with box.tracking():
        requirements_file = mlflow.pyfunc.get_model_dependencies(like)
        requirements = [
            line.strip()
            for line in Path(requirements_file).read_text().splitlines()
            if line.strip()
        ]
        example = pd.DataFrame(TRIPS["data"], columns=TRIPS["columns"])
        mlflow.set_experiment("serving-tests")
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(PICKY_MODEL),
                model_config={"most_passengers": most_passengers, "sleep_s": sleep_s},
                input_example=example,
                pip_requirements=[*requirements, *extra],
            )
        return str(mlflow.register_model(info.model_uri, name).version)


@dataclass
class ServingBox:
    box: MlflowBox

    def fab(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.box.fab(*args)

    def fab_in_background(self, *args: str) -> subprocess.Popen[str]:
        return self.box.fab_in_background(*args)

    def fab_running(self, *args: str) -> contextlib.AbstractContextManager[subprocess.Popen[str]]:
        return self.box.fab_running(*args)

    def deploy(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`fab deploy.blue-green ...`, which must succeed."""
        done = self.fab("deploy.blue-green", *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def sh(self, command: str) -> str:
        return self.box.sh(command)

    def state(self) -> dict[str, Any]:
        return dict(json.loads(self.sh(f"cat {STATE_FILE}")))

    def live(self) -> str:
        live = self.state()["live"]
        return f"{live['model']['name']}/{live['model']['version']}" if live else ""

    def router(
        self, path: str = "/invocations", body: bytes | None = None, port: int = 8000
    ) -> tuple[int, dict[str, str], str]:
        """One request to the router on the box: (status, headers, body)."""
        data = f"--data-binary {shlex.quote(body.decode())} " if body is not None else ""
        kind = "-H 'Content-Type: application/json' " if body is not None else ""
        out = self.box.conn.run(
            f"curl -s -i -m 30 {kind}{data}http://127.0.0.1:{port}{path}", hide=True, warn=True
        ).stdout
        head, _, text = out.replace("\r\n", "\n").partition("\n\n")
        lines = head.splitlines()
        if not lines:
            return 0, {}, ""
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        return int(lines[0].split()[1]), headers, text

    def restart(self, timeout_s: float = 180) -> tuple[int, dict[str, str], str]:
        """Power the box off and on (as a reboot), then wait for the router to answer a
        prediction and MLflow its /health (the next deploy resolves its model there);
        the router's answer."""
        self.box.provider.stop(timeout_s=60)
        self.box.start()
        deadline = time.monotonic() + timeout_s
        while (answer := self.router(body=trips()))[0] != 200:
            assert time.monotonic() < deadline, answer
            time.sleep(2)
        while self.sh("curl -s -m 5 http://127.0.0.1:5000/health || true").strip() != "OK":
            assert time.monotonic() < deadline, "MLflow did not answer /health after the start"
            time.sleep(2)
        return answer

    def booted(self, timeout_s: float = 60) -> dict[str, Any]:
        """The deploy state once the box's boot unit has reconciled serving."""
        deadline = time.monotonic() + timeout_s
        unit = "mlops-serving-boot.service"
        while self.sh(f"systemctl show -P ActiveState {unit}").strip() == "activating":
            assert time.monotonic() < deadline, self.sh(f"journalctl -u {unit} | tail -5")
            time.sleep(1)
        assert self.sh(f"systemctl show -P Result {unit}").strip() == "success", self.sh(
            f"journalctl -u {unit} | tail -5"
        )
        return self.state()

    @contextlib.contextmanager
    def load(
        self,
        body: bytes = b"",
        *,
        threads: int = 4,
        duration_s: float = 300,
        headers: dict[str, str] | None = None,
        max_requests: int = 100_000,
    ) -> Iterator[dict[str, Any]]:
        """A steady load through the router on the box while the block runs; the dict is
        filled with the load's summary and results when it ends."""
        tag = f"mlops-load-{time.monotonic_ns()}"
        self.box.conn.put(str(LOAD_SCRIPT), f"/tmp/{tag}.py")
        self.box.conn.put(io.BytesIO(body or trips()), f"/tmp/{tag}.json")
        sent = "".join(f"--header {shlex.quote(f'{k}: {v}')} " for k, v in (headers or {}).items())
        self.sh(
            f"cd /tmp && (setsid nohup python3 {tag}.py {ROUTER}/invocations {tag}.json "
            f"--threads {threads} --duration {duration_s} --stop-file {tag}.stop "
            f"--max-requests {max_requests} {sent}"
            f"--out {tag}.out > {tag}.log 2>&1 < /dev/null &)"
        )
        found: dict[str, Any] = {}
        try:
            time.sleep(1.0)
            yield found
        finally:
            self.sh(f"touch /tmp/{tag}.stop")
            deadline = time.monotonic() + 90
            while not self.box.conn.run(f"test -f /tmp/{tag}.out", warn=True, hide=True).ok:
                assert time.monotonic() < deadline, self.sh(f"cat /tmp/{tag}.log")
                time.sleep(1)
            found.update(json.loads(self.sh(f"cat /tmp/{tag}.out")))
            self.sh(f"rm -f /tmp/{tag}.*")


def champion(serving: ServingBox, name: str) -> str:
    """The version the registry alias `champion` of model `name` points at."""
    import mlflow

    with serving.box.tracking():
        return str(mlflow.MlflowClient().get_model_version_by_alias(name, "champion").version)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused `fab` command printed (exit 1, no traceback)."""
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    return lines[-1]


def wait_for_step(
    serving: ServingBox,
    text: str,
    timeout_s: float = 300,
    command: subprocess.Popen[str] | None = None,
) -> dict[str, Any]:
    """The running transition, once its current step says `text`; an AssertionError at
    once if `command` (the fab that started it) ended first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if command is not None and command.poll() is not None:
            out, err = command.communicate()
            raise AssertionError(f"{command.args} ended before {text!r}: {out}{err}")
        transition = serving.state().get("transition") or {}
        if text in str(transition.get("step", "")):
            return transition
        time.sleep(0.5)
    raise AssertionError(f"no step with {text!r}: {serving.state().get('transition')}")
