"""`fab train.*` on the real local box, against the real MLflow server and client.

The module shares one box (the session's) and one MLflow install; every job's project
needs the same requirements (examples/taxi's), so one job environment is built, once.
Jobs run as a user runs them: through the real `fab` CLI in a subprocess for the main
flow, the faults and the bad inputs, through the library where a test reads counts the
CLI only prints. What a test checks is what a user would notice: exit codes, the lines
printed, the job records, the units, the MLflow runs and registered versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from remote.contract import TRAIN_BLOBS_DIR, TRAIN_ENVS_DIR, TRAIN_JOBS_DIR
from remote.locks import BASE, box_lock
from remote.mlflow.server import wait_healthy
from remote.mlflow.spec import STATE_FILE
from remote.providers.local.provider import LocalProvider
from remote.settings import BoxSettings
from remote.system.venv import frozen
from remote.train.jobs import JobRequest, list_jobs, prepare, show, start
from remote.train.records import JobRecord
from remote.train.upload import Uploaded
from remote.waiting import wait_for
from tests.box.harness.local_box import REPO_ROOT
from tests.box.harness.mlflow_box import MlflowBox, open_mlflow_box

pytestmark = pytest.mark.box

TAXI = REPO_ROOT / "examples" / "taxi"
ROWS = 1500  # enough to learn something, quick on two cores
JOB_TIMEOUT_S = 300
TINY_SCRIPTS = {
    "fail.py": (
        "import sys\n"
        "for i in range(15):\n"
        "    print(f'line {i}')\n"
        "print('boom: the data is bad', file=sys.stderr)\n"
        "sys.exit(3)\n"
    ),
    "slow.py": (
        "import sys, time\n"
        "for i in range(int(sys.argv[1])):\n"
        "    print(f'tick {i}', flush=True)\n"
        "    time.sleep(1)\n"
        "print('done')\n"
    ),
    "secret.py": (
        "import hashlib, os\n"
        "print('sha256', hashlib.sha256(os.environ['MY_TOKEN'].encode()).hexdigest())\n"
    ),
    "hog.py": "blob = b'x' * (512 << 20)\nprint(len(blob))\n",
    "noop.py": "print('ok')\n",
}


@pytest.fixture(scope="module")
def mlflow_box(local_settings: BoxSettings, local_box: LocalProvider) -> Iterator[MlflowBox]:
    box = open_mlflow_box(local_settings, local_box)
    try:
        yield box
    finally:
        box.conn.close()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small scripts for the faults, with the example's requirements (so its environment)."""
    root = tmp_path_factory.mktemp("tiny")
    shutil.copy(TAXI / "requirements.txt", root / "requirements.txt")
    for name, text in TINY_SCRIPTS.items():
        (root / name).write_text(text)
    return root


@pytest.fixture(scope="module")
def model_name() -> str:
    return f"taxi-duration-{secrets.token_hex(3)}"


def job_id_of(stdout: str) -> str:
    """The job's id, which train.run prints first."""
    first = stdout.splitlines()[0]
    found = re.fullmatch(r"Job (\d{8}-\d{6}-[0-9a-f]{4}): .*", first)
    assert found, f"the first line is not the job's id: {first!r}"
    return found.group(1)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def wait_ended(box: MlflowBox, job_id: str, timeout_s: float = JOB_TIMEOUT_S) -> JobRecord:
    def ended() -> JobRecord | None:
        record = show(box.conn, job_id)
        return record if record.ended else None

    return wait_for(ended, what=f"job {job_id} to end", timeout_s=timeout_s, poll_s=1.0)


def run_status(box: MlflowBox, run_id: str | None) -> str:
    import mlflow

    assert run_id
    with box.tracking():
        return str(mlflow.MlflowClient().get_run(run_id).info.status)


def nothing_left(box: MlflowBox) -> dict[str, str]:
    """What a refused train.run must not change: jobs, environments, staging, blobs."""
    return {
        "jobs": box.sh(f"sudo ls {TRAIN_JOBS_DIR} 2>/dev/null || true"),
        "envs": box.sh(f"sudo ls -A {TRAIN_ENVS_DIR} 2>/dev/null || true"),
        "blobs": box.sh(f"sudo ls {TRAIN_BLOBS_DIR} 2>/dev/null || true"),
        "staging": box.sh("ls -d /tmp/mlops-box-train-* 2>/dev/null || true"),
    }


def installs(box: MlflowBox) -> int:
    """uv runs on the box so far (resolving or installing), from sudo's own log."""
    out = box.sh("sudo journalctl -q --no-pager -o cat _COMM=sudo | grep -c '/bin/uv ' || true")
    return int(out.strip() or 0)


def read_until(proc: subprocess.Popen[str], wanted: str, timeout_s: float = 300) -> list[str]:
    """The process's stdout lines up to the first that contains `wanted`."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while not lines or wanted not in lines[-1]:
        assert proc.poll() is None, (lines, proc.communicate())
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"no {wanted!r} within {timeout_s}s: {lines}"
        lines.append(proc.stdout.readline())
    return lines


# -- refused before any job starts ------------------------------------------------------


def test_without_mlflow_on_the_box_nothing_starts(mlflow_box: MlflowBox) -> None:
    # MLflow's state file is the install's own record of what it installed: without it,
    # MLflow is not installed as far as every fab task is concerned (mlflow.status too).
    before = nothing_left(mlflow_box)
    mlflow_box.sh(f"sudo mv {STATE_FILE} {STATE_FILE}.aside")
    try:
        result = mlflow_box.fab("train.run", "--project", str(TAXI))
    finally:
        mlflow_box.sh(f"sudo mv {STATE_FILE}.aside {STATE_FILE}")
    assert one_line_error(result) == (
        "MLflow is not installed on the box, and a training job logs to it: run "
        "`fab mlflow.install` first."
    )
    assert nothing_left(mlflow_box) == before


def test_bad_inputs_are_refused_in_one_line_before_any_job(
    mlflow_box: MlflowBox, tiny: Path, tmp_path: Path
) -> None:
    before = nothing_left(mlflow_box)
    missing = mlflow_box.fab("train.run", "--project", str(tmp_path / "nope"))
    assert "is not a directory" in one_line_error(missing)
    no_script = mlflow_box.fab("train.run", "--project", str(TAXI), "--entry", "python tran.py")
    assert "The entry runs tran.py, which is not in" in one_line_error(no_script)
    for args in (("train.logs", "20200101-000000-abcd"), ("train.cancel", "20200101-000000-abcd")):
        unknown = mlflow_box.fab(*args)
        assert one_line_error(unknown) == (
            "There is no job 20200101-000000-abcd on the box: see `fab train.list`."
        )
    assert "is not a job id" in one_line_error(mlflow_box.fab("train.logs", "last"))
    assert nothing_left(mlflow_box) == before

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "train.py").write_text("print('never')\n")
    (broken / "requirements.txt").write_text("mlops-box-no-such-package==0.0.1\n")
    failed = mlflow_box.fab("train.run", "--project", str(broken))
    error = one_line_error(failed)
    assert error.startswith("Cannot resolve mlops-box-no-such-package==0.0.1")
    assert "mlops-box-no-such-package was not found in the package registry" in error
    assert "no job was started" in error
    assert nothing_left(mlflow_box) == before


# -- the main flow ----------------------------------------------------------------------


def test_the_example_trains_and_registers_a_new_version_each_time(
    mlflow_box: MlflowBox, model_name: str
) -> None:
    import mlflow

    entry = f"python train.py --rows {ROWS}"
    # As right after `box.start`: MLflow is starting, and train.run waits for it.
    mlflow_box.sh("sudo systemctl restart --no-block mlflow")
    first = mlflow_box.fab(
        "train.run", "--project", str(TAXI), "--entry", entry, "--register-as", model_name
    )
    assert first.returncode == 0, first.stderr
    assert "Waiting for MLflow on the box to answer /health" in first.stderr
    job1 = job_id_of(first.stdout)
    assert f"Registered models:/{model_name}/1 (alias challenger)" in first.stdout
    assert "val_rmse=" in first.stdout  # the job's own output, followed live
    # Detached: nobody follows it, and the box still registers its model.
    second = mlflow_box.fab(
        "train.run", "--project", str(TAXI), "--entry", entry, "--register-as", model_name,
        "--detach",
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert f"the box registers its model as {model_name}" in second.stdout
    job2 = job_id_of(second.stdout)
    assert wait_ended(mlflow_box, job2).state == "succeeded"
    logs = mlflow_box.fab("train.logs", job2)
    assert logs.returncode == 0, logs.stderr
    assert f"Registered models:/{model_name}/2 (alias challenger)" in logs.stdout

    records = {r.id: r for r in list_jobs(mlflow_box.conn)}
    assert records[job1].state == records[job2].state == "succeeded"
    assert records[job1].registered == f"{model_name}/1"
    assert records[job2].registered == f"{model_name}/2"
    listed = mlflow_box.fab("train.list")
    assert listed.returncode == 0 and f"{model_name}/2" in listed.stdout

    with mlflow_box.tracking():
        client = mlflow.MlflowClient()
        run = client.get_run(str(records[job1].run_id))
        assert run.info.status == "FINISHED"
        assert run.info.run_name == job1
        assert run.data.metrics["val_rmse"] > 0 and "val_mae" in run.data.metrics
        assert run.data.params["rows"] == str(ROWS)
        tags = run.data.tags
        assert tags["mlops.job_id"] == job1
        assert tags["mlops.entry"] == entry
        assert len(tags["mlops.project_hash"]) == 64
        assert len(tags["mlops.git_commit"]) == 40  # the example lives in this repository
        assert tags["mlops.git_dirty"] in ("true", "false")
        models = client.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{run.info.run_id}'",
        )
        assert [m.name for m in models] == ["model"]
        version = client.get_model_version(model_name, "1")
        assert models[0].model_id in version.source
        assert version.run_id == run.info.run_id
        assert version.tags["mlops.job_id"] == job1
        assert client.get_model_version_by_alias(model_name, "challenger").version == "2"

    # The job ran from an immutable snapshot, as the unprivileged job user.
    snapshot = f"{TRAIN_JOBS_DIR}/{job1}/project"
    assert mlflow_box.sh(f"sudo stat -c '%U %a' {snapshot}/train.py").strip() == "root 640"
    writable = mlflow_box.conn.run(
        f"sudo -u mlops-train test -w {snapshot}/train.py", warn=True, hide=True
    )
    assert not writable.ok


def test_a_rerun_of_an_unchanged_project_uploads_nothing_and_installs_nothing(
    mlflow_box: MlflowBox, tiny: Path, tmp_path: Path
) -> None:
    project = tmp_path / "rerun"
    shutil.copytree(tiny, project)
    said: list[str] = []
    # However warm the box is, after this first run it has the blobs and the environment.
    first = start(mlflow_box.conn, prepare(JobRequest(project, "python noop.py")), say=said.append)
    wait_ended(mlflow_box, first.record.id)
    installs_before = installs(mlflow_box)
    blobs_before = mlflow_box.sh(f"sudo ls {TRAIN_BLOBS_DIR}")
    env_before = mlflow_box.sh(f"sudo stat -c '%i %Y' {first.environment.path}")

    again = start(mlflow_box.conn, prepare(JobRequest(project, "python noop.py")), say=said.append)

    assert again.uploaded == Uploaded(blobs=0, bytes=0)
    assert not again.env_built
    assert again.environment == first.environment
    assert installs(mlflow_box) == installs_before
    assert mlflow_box.sh(f"sudo ls {TRAIN_BLOBS_DIR}") == blobs_before
    assert mlflow_box.sh(f"sudo stat -c '%i %Y' {first.environment.path}") == env_before
    assert wait_ended(mlflow_box, again.record.id).state == "succeeded"

    (project / "noop.py").write_text(f"print('ok, changed {secrets.token_hex(8)}')\n")
    changed = start(
        mlflow_box.conn, prepare(JobRequest(project, "python noop.py")), say=said.append
    )
    assert changed.uploaded.blobs == 1 and changed.uploaded.bytes > 0
    assert wait_ended(mlflow_box, changed.record.id).state == "succeeded"


def test_a_jobs_env_holds_exactly_its_lock_which_its_run_keeps_until_upgrade(
    mlflow_box: MlflowBox, tiny: Path
) -> None:
    import mlflow

    said: list[str] = []
    job = start(mlflow_box.conn, prepare(JobRequest(tiny, "python noop.py")), say=said.append)
    record = wait_ended(mlflow_box, job.record.id)
    lock = job.environment.lock
    assert frozen(mlflow_box.conn, job.environment.path) == lock.pins()
    # Resolved against the box's base lock: the same MLflow and pandas as other envs.
    base = box_lock(BASE).pins()
    assert all(lock.pins()[name] == base[name] for name in ("mlflow", "pandas", "numpy"))
    with mlflow_box.tracking():
        kept = mlflow.artifacts.load_text(f"runs:/{record.run_id}/environment/requirements.lock")
    assert kept == lock.text
    # --upgrade resolves the same requirements again, on purpose.
    said.clear()
    again = prepare(JobRequest(tiny, "python noop.py", upgrade=True))
    upgraded = start(mlflow_box.conn, again, say=said.append)
    assert any(line.startswith("Resolving ") for line in said), said
    assert upgraded.environment.lock.pins()["mlflow"] == lock.pins()["mlflow"]
    assert wait_ended(mlflow_box, upgraded.record.id).state == "succeeded"


def test_register_as_refuses_a_run_that_logged_no_model(
    mlflow_box: MlflowBox, model_name: str
) -> None:
    import mlflow

    name = f"{model_name}-none"
    result = mlflow_box.fab(
        "train.run",
        "--project",
        str(TAXI),
        "--entry",
        "python train.py --rows 300 --no-log-model",
        "--register-as",
        name,
    )
    error = one_line_error(result)
    assert re.fullmatch(r"Run [0-9a-f]{32} logged no model, so nothing was registered: .*", error)
    job = show(mlflow_box.conn, job_id_of(result.stdout))
    assert job.state == "succeeded" and job.registered is None
    with mlflow_box.tracking():
        assert mlflow.MlflowClient().search_registered_models(f"name = '{name}'") == []


# -- faults -------------------------------------------------------------------------------


def test_a_failing_script_shows_its_last_lines_and_fails_its_run(
    mlflow_box: MlflowBox, tiny: Path
) -> None:
    result = mlflow_box.fab("train.run", "--project", str(tiny), "--entry", "python fail.py")

    assert result.returncode == 3
    job = show(mlflow_box.conn, job_id_of(result.stdout))
    assert f"Job {job.id} failed with exit code 3" in result.stderr
    assert f"MLflow run {job.run_id} is FAILED" in result.stderr
    last = result.stderr.split("Its last log lines:", 1)[1].split()
    assert "line 14" in " ".join(last) and "boom: the data is bad" in " ".join(last)
    assert (job.state, job.exit_code) == ("failed", 3)
    assert run_status(mlflow_box, job.run_id) == "FAILED"


def test_a_dropped_connection_stops_following_but_not_the_job(
    mlflow_box: MlflowBox, tiny: Path
) -> None:
    follow = ("train.run", "--project", str(tiny), "--entry", "python slow.py 8")
    with mlflow_box.fab_running(*follow) as proc:
        lines = read_until(proc, "tick 2")
        job_id = job_id_of("".join(lines))
        # The follow command carries the pid of its sshd session: kill that session.
        session = mlflow_box.sh(
            f"ps -eo args | grep 'mlops-train-{job_id}.*follow [0-9]*$' | grep -v grep "
            "| grep -o '[0-9]*$' | head -1"
        ).strip()
        assert session, "no follow command on the box"
        mlflow_box.sh(f"sudo kill -9 {session}")
        _, err = proc.communicate(timeout=60)

    assert proc.returncode == 255
    assert "Lost the connection to the box." in err
    assert f"`fab train.logs {job_id} --follow`" in err and f"`fab train.cancel {job_id}`" in err
    unit = f"mlops-train-{job_id}.service"
    wait_for(
        lambda: (
            mlflow_box.sh(f"systemctl show -p ActiveState --value {unit}").strip() == "inactive"
            or None
        ),
        what=f"{unit} to end",
        timeout_s=JOB_TIMEOUT_S,
    )
    # Nobody watched it end: the unit's own ExecStopPost recorded it and ended its run.
    record = json.loads(mlflow_box.sh(f"sudo cat {TRAIN_JOBS_DIR}/{job_id}/job.json"))
    assert (record["state"], record["exit_code"]) == ("succeeded", 0)
    assert run_status(mlflow_box, record["run_id"]) == "FINISHED"
    logs = mlflow_box.fab("train.logs", job_id)
    assert logs.returncode == 0, logs.stderr
    assert [line for line in logs.stdout.splitlines() if line.startswith(("tick", "done"))] == [
        *(f"tick {i}" for i in range(8)),
        "done",
    ]


def test_cancel_stops_the_unit_and_kills_the_run(mlflow_box: MlflowBox, tiny: Path) -> None:
    started = mlflow_box.fab(
        "train.run", "--project", str(tiny), "--entry", "python slow.py 300", "--detach"
    )
    assert started.returncode == 0, started.stderr
    job_id = job_id_of(started.stdout)
    unit = f"mlops-train-{job_id}.service"
    assert mlflow_box.sh(f"systemctl is-active {unit}").strip() == "active"

    cancelled = mlflow_box.fab("train.cancel", job_id)

    assert cancelled.returncode == 0, cancelled.stderr
    assert f"Job {job_id} was cancelled" in cancelled.stdout
    assert mlflow_box.sh(f"systemctl show -p LoadState --value {unit}").strip() == "not-found"
    job = show(mlflow_box.conn, job_id)
    assert (job.state, job.exit_code) == ("killed", 143)
    assert run_status(mlflow_box, job.run_id) == "KILLED"
    again = mlflow_box.fab("train.cancel", job_id)
    assert again.returncode == 0 and "Nothing to cancel" in again.stdout


def test_two_jobs_at_once_and_env_values_reach_only_the_job(
    mlflow_box: MlflowBox, tiny: Path
) -> None:
    token = f"s3cr3t {secrets.token_hex(8)} $HOME"
    with (
        mlflow_box.fab_running(
            "train.run", "--project", str(tiny), "--entry", "python slow.py 15"
        ) as one,
        mlflow_box.fab_running(
            "train.run",
            "--project",
            str(tiny),
            "--entry",
            "python secret.py",
            "--env",
            f"MY_TOKEN={token}",
            "--env",
            "OTHER=1",
        ) as two,
    ):
        first_lines = read_until(one, "tick 1")
        # While the first job runs, the second one starts and ends beside it.
        out_two, err_two = two.communicate(timeout=JOB_TIMEOUT_S)
        assert (
            mlflow_box.sh(
                f"systemctl is-active mlops-train-{job_id_of(''.join(first_lines))}.service"
            ).strip()
            == "active"
        ), "the first job should still run"
        _, err_one = one.communicate(timeout=JOB_TIMEOUT_S)
    assert one.returncode == 0, err_one
    assert two.returncode == 0, err_two
    assert f"sha256 {hashlib.sha256(token.encode()).hexdigest()}" in out_two
    first = show(mlflow_box.conn, job_id_of("".join(first_lines)))
    second = show(mlflow_box.conn, job_id_of(out_two))
    assert first.state == second.state == "succeeded"
    assert run_status(mlflow_box, first.run_id) == run_status(mlflow_box, second.run_id)
    # The value travelled in no argv and no log; it is only in the job's root-only env file.
    env_file = f"{TRAIN_JOBS_DIR}/{second.id}/env"
    assert mlflow_box.sh(f"sudo stat -c '%a %U' {env_file}").strip() == "600 root"
    assert token not in mlflow_box.sh("sudo journalctl -q --no-pager -o cat --since -10min")
    assert token not in out_two + err_two


def _box_limits_memory(box: MlflowBox) -> bool:
    """Whether the box's systemd has the memory controller (cgroup v2): MemoryMax works."""
    found = box.sh("cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null || true")
    return "memory" in found.split()


def test_an_out_of_memory_kill_is_reported_as_such(mlflow_box: MlflowBox, tiny: Path) -> None:
    if not _box_limits_memory(mlflow_box):
        pytest.skip(
            "the local box here is a container on a cgroup-v1 host: its systemd has no memory "
            "controller, so MemoryMax cannot be enforced (see the test below for the refusal)"
        )
    result = mlflow_box.fab(
        "train.run", "--project", str(tiny), "--entry", "python hog.py", "--memory-max", "64M"
    )
    assert result.returncode == 137
    job = show(mlflow_box.conn, job_id_of(result.stdout))
    assert job.state == "oom"
    assert "was killed for running out of memory" in result.stderr
    assert run_status(mlflow_box, job.run_id) == "FAILED"


def test_memory_max_is_refused_where_the_box_cannot_enforce_it(
    mlflow_box: MlflowBox, tiny: Path
) -> None:
    if _box_limits_memory(mlflow_box):
        pytest.skip("this box enforces MemoryMax (the test above runs instead)")
    before = nothing_left(mlflow_box)
    result = mlflow_box.fab(
        "train.run", "--project", str(tiny), "--entry", "python hog.py", "--memory-max", "64M"
    )
    assert one_line_error(result).startswith("This box cannot enforce --memory-max")
    assert nothing_left(mlflow_box) == before


def test_a_job_running_when_the_box_crashed_is_lost(mlflow_box: MlflowBox, tiny: Path) -> None:
    started = mlflow_box.fab(
        "train.run", "--project", str(tiny), "--entry", "python slow.py 300", "--detach"
    )
    assert started.returncode == 0, started.stderr
    job_id = job_id_of(started.stdout)
    # A crash, not a shutdown: no ExecStopPost runs. The box's nspawn dies at once.
    nspawn_pid = json.loads(mlflow_box.provider.run_file.read_text())["pid"]
    os.kill(nspawn_pid, signal.SIGKILL)
    mlflow_box.provider.stop(timeout_s=60)  # clears what the crash left on the host
    mlflow_box.start()
    wait_healthy(mlflow_box.conn, 5000)

    job = show(mlflow_box.conn, job_id)

    assert job.state == "lost"
    assert "was lost" in job.summary()
    assert run_status(mlflow_box, job.run_id) == "KILLED"
    listed = mlflow_box.fab("train.list")
    assert re.search(rf"{job_id}\s+lost\s", listed.stdout), listed.stdout
