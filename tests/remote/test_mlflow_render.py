"""Pure rendering of MLflow's unit, environment file and server arguments: no box, no mocks."""

from __future__ import annotations

import json

import pytest

from remote.errors import ConfigError
from remote.mlflow.spec import (
    ENV_FILE,
    ServerSpec,
    controller_version,
    render_env,
    render_state,
    render_unit,
    s3_artifacts,
    server_args,
)

SECRET_URI = "postgresql+psycopg2://mlflow:p%40ss%22w0rd@db.example:5432/mlflow"


def test_the_default_server_listens_on_loopback_and_proxies_artifacts() -> None:
    args = server_args(ServerSpec(version="3.17.2"))
    assert args[:2] == ["/opt/mlflow/venvs/3.17.2/bin/mlflow", "server"]
    assert args[args.index("--host") + 1] == "127.0.0.1"
    assert args[args.index("--port") + 1] == "5000"
    assert "--serve-artifacts" in args
    assert args[args.index("--artifacts-destination") + 1] == "/var/lib/mlflow/artifacts"
    assert "--app-name" not in args and "--allowed-hosts" not in args


def test_the_backend_store_uri_is_never_on_the_command_line_or_in_the_unit() -> None:
    spec = ServerSpec(version="3.17.2", backend="rds", artifacts=s3_artifacts("my-bucket"))
    unit = render_unit(spec)
    env = render_env(SECRET_URI)
    assert "--backend-store-uri" not in unit
    assert "p%40ss" not in unit and "p%40ss" not in " ".join(server_args(spec))
    assert f"EnvironmentFile={ENV_FILE}" in unit
    assert 'MLFLOW_BACKEND_STORE_URI="postgresql+psycopg2://mlflow:p%40ss%22w0rd@' in env
    assert spec.requirements == ("mlflow==3.17.2", "psycopg2-binary", "boto3")


def test_the_unit_restarts_on_failure_starts_at_boot_and_runs_as_mlflow() -> None:
    unit = render_unit(ServerSpec(version="3.17.2"))
    assert "Restart=on-failure" in unit
    assert "WantedBy=multi-user.target" in unit
    assert "User=mlflow" in unit
    state = json.loads(render_state(ServerSpec(version="3.17.2")))
    assert state["listen"] == "127.0.0.1:5000"
    assert state["artifacts"] == "/var/lib/mlflow/artifacts"
    assert state["version"] == "3.17.2"


def test_env_values_are_quoted_for_systemd() -> None:
    uri = 'sqlite:////x/"a"\\b$HOME%i'
    env = render_env(uri)
    assert 'MLFLOW_BACKEND_STORE_URI="sqlite:////x/\\"a\\"\\\\b\\$HOME%i"' in env
    with pytest.raises(ConfigError):
        render_env("sqlite:////x\nEVIL=1")


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

    assert controller_version() == importlib.metadata.version("mlflow-skinny")
