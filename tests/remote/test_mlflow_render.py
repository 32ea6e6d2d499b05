"""Pure rendering of MLflow's unit, environment file and server arguments: no box, no mocks."""

from __future__ import annotations

import json

import pytest

from remote.errors import ConfigError
from remote.mlflow.spec import (
    ENV_FILE,
    RDS_CONFIG,
    RDS_ENV_FILE,
    ServerSpec,
    default_version,
    installed_python,
    render_env,
    render_rds_config,
    render_state,
    render_unit,
    server_args,
)
from remote.system import agent
from tests.remote.moto_rds import EXAMPLE_DATABASE


def test_the_default_server_listens_on_loopback_and_proxies_artifacts() -> None:
    args = server_args(ServerSpec(version="3.17.2", lock_key="0123abcd"))
    assert args[:2] == ["/opt/mlflow/venvs/3.17.2-0123abcd/bin/mlflow", "server"]
    assert args[args.index("--host") + 1] == "127.0.0.1"
    assert args[args.index("--port") + 1] == "5000"
    assert "--serve-artifacts" in args
    assert args[args.index("--artifacts-destination") + 1] == "/var/lib/mlflow/artifacts"
    assert "--app-name" not in args and "--allowed-hosts" not in args


def test_sqlite_keeps_its_store_uri_in_the_env_file_and_has_no_start_step() -> None:
    spec = ServerSpec(version="3.17.2")
    unit = render_unit(spec)
    assert "--backend-store-uri" not in unit and "ExecStartPre" not in unit
    assert f"EnvironmentFile={ENV_FILE}\n" in unit and RDS_ENV_FILE not in unit
    assert 'MLFLOW_BACKEND_STORE_URI="sqlite:////var/lib/mlflow/mlflow.db"' in render_env(spec)
    assert 'MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"' in render_env(spec)
    assert spec.requirements == ("mlflow==3.17.2", "boto3", "psycopg2-binary")


def test_rds_reads_the_secret_on_the_box_at_every_start() -> None:
    spec = ServerSpec(version="3.17.2", backend="rds")
    unit = render_unit(spec).splitlines()
    zip_path, _ = agent.bundle()
    start_step = (
        f"ExecStartPre=+/usr/bin/env PYTHONPATH={zip_path} /opt/mlflow/venvs/3.17.2/bin/python "
        f"-m mlops_agent rds-env {RDS_CONFIG} {RDS_ENV_FILE}"
    )
    assert start_step in unit
    # systemd reads the file the step wrote, after the server's own, for ExecStart.
    own, written = f"EnvironmentFile={ENV_FILE}", f"EnvironmentFile=-{RDS_ENV_FILE}"
    assert unit.index(own) < unit.index(written)
    exec_start = next(i for i, line in enumerate(unit) if line.startswith("ExecStart="))
    assert unit.index(start_step) < exec_start
    # The server's own env file has no store URI; the start step needs boto3.
    assert "MLFLOW_BACKEND_STORE_URI" not in render_env(spec)
    assert "boto3" in spec.requirements


def test_the_rds_coordinates_hold_nothing_secret() -> None:
    config = json.loads(render_rds_config(EXAMPLE_DATABASE))
    assert config == {
        "host": EXAMPLE_DATABASE.host,
        "port": 5432,
        "dbname": "mlflow",
        "instance": "mlops-mlflow-0a1b",
        "secret_arn": EXAMPLE_DATABASE.secret_arn,
        "region": "eu-west-1",
    }


def test_the_unit_restarts_on_failure_starts_at_boot_and_runs_as_mlflow() -> None:
    unit = render_unit(ServerSpec(version="3.17.2"))
    assert "Restart=on-failure" in unit
    assert "WantedBy=multi-user.target" in unit
    assert "User=mlflow" in unit
    state = json.loads(render_state(ServerSpec(version="3.17.2", lock_key="0123abcd")))
    assert state["listen"] == "127.0.0.1:5000"
    assert installed_python(state) == "/opt/mlflow/venvs/3.17.2-0123abcd/bin/python"
    assert installed_python({"version": "3.1.0"}) == "/opt/mlflow/venvs/3.1.0/bin/python"
    assert state["artifacts"] == "/var/lib/mlflow/artifacts"
    assert state["version"] == "3.17.2"


@pytest.mark.parametrize("version", ["3.17.2", "3.0.0rc1", "2.22.1.post1"])
def test_release_versions_are_accepted(version: str) -> None:
    assert ServerSpec(version=version).venv == f"/opt/mlflow/venvs/{version}"


@pytest.mark.parametrize("version", ["", "latest", "3.1;rm -rf /", "../3.1", "3.1 4.0"])
def test_other_versions_are_refused_in_one_sentence(version: str) -> None:
    with pytest.raises(ConfigError, match="--version"):
        ServerSpec(version=version)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"backend": "mysql"}, "--backend"),
        ({"artifacts": "gs://x"}, "artifact store"),
    ],
)
def test_bad_specs_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ServerSpec(version="3.17.2", **kwargs)  # type: ignore[arg-type]


def test_the_default_version_is_the_controllers() -> None:
    import importlib.metadata

    assert default_version() == importlib.metadata.version("mlflow-skinny")
