"""MLflow with SQLite on the real local box: install, use it from the real client, keep it.

The module bootstraps the box and installs MLflow once (about a minute with a cold pip
cache); every test then acts on that server, as a user would, through the pinned SSH
connection, the real `fab` CLI and the real MLflow client over an SSH tunnel.
"""

from __future__ import annotations

import select
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from remote.deploy.client_files import ClientFiles
from remote.deploy.expose import close_front_door
from remote.locks import MLFLOW_SERVER, box_lock
from remote.mlflow.backup import backup
from remote.mlflow.install import install_on_box
from remote.mlflow.server import wait_healthy
from remote.mlflow.spec import ServerSpec
from remote.mlflow.status import status
from remote.providers.local.provider import LocalProvider
from remote.settings import BoxSettings
from remote.system.venv import frozen
from tests.box.harness.mlflow_box import (
    MlflowBox,
    free_port,
    https_get,
    log_a_run,
    open_mlflow_box,
    public_listeners,
)

pytestmark = pytest.mark.box
SERVER_LOCK = box_lock(MLFLOW_SERVER)
VERSION = SERVER_LOCK.version_of("mlflow")  # the default release: the lock's


@pytest.fixture(scope="module")
def mlflow_box(local_settings: BoxSettings, local_box: LocalProvider) -> Iterator[MlflowBox]:
    box = open_mlflow_box(local_settings, local_box)
    try:
        yield box
    finally:
        close_front_door(box.conn)  # if a --public test stopped half-way
        box.conn.close()


def test_health_and_the_real_client_logs_and_reads_back_a_run(mlflow_box: MlflowBox) -> None:
    import mlflow

    assert mlflow_box.sh("curl -fsS http://127.0.0.1:5000/health").strip() == "OK"
    with mlflow_box.tracking():
        run_id = log_a_run()
        run = mlflow.get_run(run_id)
        assert run.data.metrics["rmse"] == 0.25
        assert run.data.params["alpha"] == "0.5"
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/notes/hello.txt")
        assert text == "hello from the controller"
    # Proxied artifact serving: the file is in the server's local store, not the client's.
    found = mlflow_box.sh(f"sudo find /var/lib/mlflow/artifacts -path '*{run_id}*' -name hello.txt")
    assert found.strip()


def test_the_servers_env_holds_exactly_its_lock_from_the_hosts_shared_cache(
    mlflow_box: MlflowBox,
) -> None:
    venv = ServerSpec(version=VERSION, lock_key=SERVER_LOCK.key).venv
    assert mlflow_box.sh("ls /opt/mlflow/venvs").split() == [venv.rsplit("/", 1)[1]]
    assert frozen(mlflow_box.conn, venv) == SERVER_LOCK.pins()
    # uv in the box unpacked into the host's cache, bind-mounted: the next box links it.
    cache = mlflow_box.settings.local.cache / "packages" / "uv"
    assert any(cache.glob("archive-v*/*")), f"uv in the box left nothing in {cache}"


def test_the_server_listens_on_loopback_only(mlflow_box: MlflowBox) -> None:
    listening = mlflow_box.sh("sudo ss -Hltn 'sport = :5000'").split()
    addresses = [word for word in listening if word.endswith(":5000")]
    assert addresses and all(a.startswith("127.0.0.1:") for a in addresses), listening


def test_a_second_install_changes_nothing(mlflow_box: MlflowBox) -> None:
    before = mlflow_box.started_at()
    said: list[str] = []
    changed = install_on_box(mlflow_box.conn, mlflow_box.provider, say=said.append)
    assert not changed
    assert (
        said == [f"MLflow {VERSION} is installed and running; nothing changed"]
        or "nothing changed" in said[-1]
    )
    assert mlflow_box.started_at() == before
    cli = mlflow_box.fab("mlflow.install")
    assert cli.returncode == 0, cli.stderr
    assert "nothing changed" in cli.stdout
    assert mlflow_box.started_at() == before


def test_an_unknown_version_fails_clearly_and_keeps_the_server(mlflow_box: MlflowBox) -> None:
    before = mlflow_box.started_at()
    result = mlflow_box.fab("mlflow.install", "--version", "9.9.9")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "MLflow 9.9.9 is not on PyPI" in result.stderr.strip().splitlines()[-1]
    assert mlflow_box.started_at() == before
    assert mlflow_box.sh("curl -fsS http://127.0.0.1:5000/health").strip() == "OK"
    assert mlflow_box.sh("ls /opt/mlflow/venvs").split() == [f"{VERSION}-{SERVER_LOCK.key}"]


def test_status_and_backup(mlflow_box: MlflowBox, tmp_path: Path) -> None:
    current = status(mlflow_box.conn)
    assert current.state == "active" and current.enabled
    assert current.version == VERSION
    assert current.backend == "sqlite" and current.backend_where == "/var/lib/mlflow/mlflow.db"
    assert current.listen == "127.0.0.1:5000"
    assert int(current.runs) >= 1 and int(current.experiments) >= 2
    made = backup(mlflow_box.conn, tmp_path, mlflow_box.settings.name)
    assert made.runs == int(current.runs)
    assert made.path.stat().st_mode & 0o777 == 0o600
    cli = mlflow_box.fab("mlflow.status")
    assert cli.returncode == 0 and VERSION in cli.stdout and "runs" in cli.stdout


def test_fab_mlflow_ui_tunnels_until_ctrl_c(mlflow_box: MlflowBox) -> None:
    port = free_port()
    ui = mlflow_box.fab_in_background("mlflow.ui", "--port", str(port))
    try:
        # The task prints the URL once MLflow answers through its tunnel.
        deadline = time.monotonic() + 60
        assert ui.stdout is not None
        line = ""
        while "MLflow UI:" not in line:
            assert ui.poll() is None, ui.communicate()
            ready, _, _ = select.select([ui.stdout], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, "fab mlflow.ui never printed its URL"
            line = ui.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
            assert response.status == 200
        ui.send_signal(signal.SIGINT)
        out, err = ui.communicate(timeout=30)
    finally:
        if ui.poll() is None:
            ui.kill()
    assert ui.returncode == 0, err
    assert "Traceback" not in err
    assert "Tunnel closed" in out


def test_public_is_opt_in_and_only_through_the_tls_front_door(mlflow_box: MlflowBox) -> None:
    before = mlflow_box.started_at()
    closed = mlflow_box.fab("mlflow.install", "--public")
    assert closed.returncode == 1 and "Traceback" not in closed.stderr
    assert "add --cidr NETWORK" in closed.stderr.strip().splitlines()[-1]
    assert public_listeners(mlflow_box.conn) == []

    subnet = str(mlflow_box.settings.local.subnet)
    opened = mlflow_box.fab("mlflow.install", "--public", "--cidr", subnet)

    assert opened.returncode == 0, opened.stderr
    assert f"https://{mlflow_box.address}/mlflow (MLflow)" in opened.stdout
    assert mlflow_box.started_at() == before  # MLflow itself did not change
    # MLflow stays on loopback: no plain HTTP from outside, only TLS with the token.
    test_the_server_listens_on_loopback_only(mlflow_box)
    assert public_listeners(mlflow_box.conn) == ["0.0.0.0:443"]
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://{mlflow_box.address}:5000/health", timeout=10)
    client = ClientFiles.of(mlflow_box.settings)
    url = f"https://{mlflow_box.address}/mlflow/api/2.0/mlflow/experiments/search?max_results=1"
    assert https_get(url, client.ca)[0] == 401
    assert https_get(url, client.ca, token=client.read_token())[0] == 200
    # Back to the default: nothing listens publicly.
    off = mlflow_box.fab("deploy.expose", "--off")
    assert off.returncode == 0, off.stderr
    assert public_listeners(mlflow_box.conn) == []


def test_an_install_right_after_a_box_start_waits_until_mlflow_answers(
    mlflow_box: MlflowBox,
) -> None:
    """After `fab box.start` mlflow.service is active but still starting; an install that
    changes nothing must not call it running before /health answers."""
    install_on_box(mlflow_box.conn, mlflow_box.provider)
    for task in ("box.stop", "box.start"):
        done = mlflow_box.fab(task)
        assert done.returncode == 0, f"fab {task}: {done.stdout}{done.stderr}"
    mlflow_box.start()  # connect now, to the new address, so the check below is immediate

    install = mlflow_box.fab("mlflow.install")
    health = mlflow_box.conn.run("curl -sS -m 5 http://127.0.0.1:5000/health", hide=True, warn=True)

    assert install.returncode == 0, install.stderr
    assert "installed and running; nothing changed" in install.stdout
    assert health.ok and health.stdout.strip() == "OK", health.stderr


def test_a_stop_and_start_keeps_the_run(mlflow_box: MlflowBox) -> None:
    import mlflow

    with mlflow_box.tracking():
        run_id = log_a_run()
    mlflow_box.provider.stop(timeout_s=60)
    mlflow_box.start()
    wait_healthy(mlflow_box.conn, 5000)
    with mlflow_box.tracking():
        assert mlflow.get_run(run_id).data.metrics["rmse"] == 0.25
