"""A training job's main process (agent/train/execute.py), run as the job's unit runs it:
a real child entry, real signals, and registering against an MLflow that is down (the
box tier registers against a real one, tests/box/test_train.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from remote.agent.train import jobs
from remote.agent.train.records import REGISTRATION

REPO = Path(__file__).resolve().parents[4]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def execute(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "PYTHONPATH": str(REPO),
        "MLFLOW_RUN_ID": "0" * 32,
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{closed_port()}",  # MLflow is down
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    }
    return subprocess.run(
        [sys.executable, "-m", "remote.agent.train.execute", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_entrys_exit_status_is_the_jobs_and_a_failed_entry_registers_nothing(
    tmp_path: Path,
) -> None:
    done = execute(tmp_path, "--register-as", "taxi", "--", "sh", "-c", "echo trained; exit 3")
    assert (done.returncode, done.stdout) == (3, "trained\n")
    assert not (tmp_path / REGISTRATION).exists()


def test_an_entry_killed_by_a_signal_ends_the_job_by_that_signal(tmp_path: Path) -> None:
    # systemd then sees EXIT_CODE=killed EXIT_STATUS=TERM, as when it ran the entry itself
    done = execute(tmp_path, "--", "sh", "-c", "kill -TERM $$")
    assert done.returncode == -signal.SIGTERM


def test_a_registration_that_fails_is_kept_for_the_record_and_said_in_the_log(
    tmp_path: Path,
) -> None:
    done = execute(tmp_path, "--register-as", "taxi", "--", "true")
    assert done.returncode == 0, done.stderr  # the training itself succeeded
    kept = json.loads((tmp_path / REGISTRATION).read_text())
    assert kept["register_error"].startswith(
        "Registering the model as 'taxi' failed: MlflowException: API request to http://127.0.0.1:"
    )
    assert "\n" not in kept["register_error"]
    assert f"[mlops-box] Not registered: {kept['register_error']}" in done.stderr


def test_nothing_to_run_is_a_usage_error(tmp_path: Path) -> None:
    assert execute(tmp_path, "--register-as", "taxi").returncode == 2


@pytest.mark.parametrize(
    ("kept", "outcome"),
    [
        ({"registered": "taxi/3", "alias": "challenger"}, {"registered": "taxi/3"}),
        ({"register_error": "Run r logged no model"}, {"register_error": "Run r logged no model"}),
        # the file is the job user's: what it claims is checked against the record
        ({"registered": "other/3"}, {"register_error": "does not say 'taxi' was registered"}),
        ({"registered": "taxi/latest"}, {"register_error": "does not say 'taxi' was registered"}),
        (["taxi/3"], {"register_error": "does not say 'taxi' was registered"}),
        (None, {"register_error": "The job ended without registering 'taxi'"}),
    ],
)
def test_the_record_takes_the_registration_the_job_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept: object, outcome: dict[str, str]
) -> None:
    monkeypatch.setattr(jobs, "job_dir", lambda _job_id: tmp_path)
    (tmp_path / "home").mkdir()
    if kept is not None:
        (tmp_path / "home" / REGISTRATION).write_text(json.dumps(kept))
    found = jobs.registration("20260101-000000-abcd", "taxi")
    assert found.keys() == outcome.keys()
    key, text = next(iter(outcome.items()))
    assert text in found[key]
