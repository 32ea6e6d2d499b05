"""MLflow on the "RDS" backend: a real PostgreSQL on this machine stands in for RDS.

The database is found as on AWS (find_rds_store against moto's RDS and Secrets Manager,
which hold the real server's user and password; only moto's made-up endpoint is replaced
by the address the box sees this machine at). Everything else is real: the box, the
MLflow server and client, psycopg2, PostgreSQL and its password check.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from remote.errors import DatabaseAuthError, DatabaseUnreachable
from remote.mlflow.install import install_on_box
from remote.mlflow.store import PostgresStore
from remote.providers.local.provider import LocalProvider
from remote.settings import BoxSettings
from remote.system.bootstrap import bootstrap
from tests.box import postgres
from tests.box.mlflow_box import MlflowBox, files_holding, log_a_run
from tests.box.postgres import HostPostgres

pytestmark = pytest.mark.box
host_postgres = postgres.host_postgres
rds_store = postgres.rds_store


@pytest.fixture
def rds_box(
    local_settings: BoxSettings, local_box: LocalProvider, rds_store: PostgresStore
) -> Iterator[MlflowBox]:
    """The box with MLflow on the PostgreSQL backend (a no-op once it is installed)."""
    box = MlflowBox(local_settings, local_box, "", None)
    box.start()
    bootstrap(box.conn)
    install_on_box(box.conn, box.provider, backend="rds", rds_store=rds_store)
    try:
        yield box
    finally:
        box.conn.close()


def forms_of(password: str) -> list[str]:
    """The password as it may be stored: raw, and URL-quoted inside the store URI."""
    return [password, quote(password, safe="")]


def test_a_run_is_logged_and_read_back_through_postgres(
    rds_box: MlflowBox, host_postgres: HostPostgres
) -> None:
    import mlflow

    with rds_box.tracking():
        run_id = log_a_run()
        run = mlflow.get_run(run_id)
        assert run.data.metrics["rmse"] == 0.25
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/notes/hello.txt")
        assert text == "hello from the controller"
    # The run is in PostgreSQL, not in a SQLite file on the box.
    stored = host_postgres.psql(f"SELECT count(*) FROM runs WHERE run_uuid = '{run_id}'", "mlflow")
    assert stored.strip() == "1"


def test_the_password_is_in_no_argv_and_no_readable_file(
    rds_box: MlflowBox, host_postgres: HostPostgres
) -> None:
    forms = forms_of(host_postgres.password)
    processes = rds_box.sh("ps -eo args")
    assert "mlflow" in processes
    assert not [form for form in forms if form in processes]
    holders = files_holding(rds_box, forms)
    assert holders == ["600 root /etc/mlflow/mlflow.env"]


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda s: {"port": unused_port()}, DatabaseUnreachable, "Cannot reach PostgreSQL"),
        (lambda s: {"password": "not-the-password"}, DatabaseAuthError, "refused the password"),
    ],
    ids=["unreachable", "wrong-password"],
)
def test_a_bad_database_leaves_the_running_server_and_its_data(
    rds_box: MlflowBox,
    rds_store: PostgresStore,
    host_postgres: HostPostgres,
    change: object,
    error: type[Exception],
    message: str,
) -> None:
    import mlflow

    with rds_box.tracking():
        run_id = log_a_run()
    before = rds_box.started_at()
    bad = dataclasses.replace(rds_store, **change(rds_store))  # type: ignore[operator]
    with pytest.raises(error) as caught:
        install_on_box(rds_box.conn, rds_box.provider, backend="rds", rds_store=bad)
    text = str(caught.value)
    assert message in text and "\n" not in text
    assert host_postgres.password not in text and bad.password not in text
    assert rds_box.started_at() == before
    with rds_box.tracking():
        assert mlflow.get_run(run_id).data.metrics["rmse"] == 0.25
