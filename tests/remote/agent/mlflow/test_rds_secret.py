"""MLflow's store URI for the RDS backend, written on the box from the database's secret:
the current password into a root-only file, and every way that can fail said in one
sentence without the secret. The box's start step against moto's Secrets Manager."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.core import set_initial_no_auth_action_count

from remote.agent.cli import main as agent_main
from remote.agent.mlflow import rds_secret
from remote.agent.mlflow import store as agent
from remote.agent.system.envfile import env_file_line
from remote.agent.system.failure import AgentFailure
from remote.mlflow.spec import render_rds_config
from remote.providers.aws.stack import find_database as find_rds_store
from remote.providers.base import Database
from remote.settings import BoxSettings
from tests.nasty_values import NASTY_PASSWORDS
from tests.remote.conftest import REGION, free_port
from tests.remote.moto_rds import DB_INSTANCE_ID, EXAMPLE_DATABASE, iam_user, seed_rds_box


@dataclasses.dataclass(frozen=True)
class StartStep:
    """The agent's `rds-env` with its files in a temporary directory."""

    database: Database
    config: Path
    env_file: Path

    def run(self) -> dict[str, Any]:
        return rds_secret.write_env(str(self.config), str(self.env_file))

    def failure(self) -> AgentFailure:
        with pytest.raises(AgentFailure) as caught:
            self.run()
        assert "\n" not in caught.value.sentence
        return caught.value

    def uri(self) -> str:
        """The store URI as systemd reads it back from the env file's one quoted line."""
        (line,) = self.env_file.read_text().splitlines()
        key, quoted = line.split("=", 1)
        assert key == agent.URI_KEY and quoted[0] == quoted[-1] == '"'
        return re.sub(r"\\(.)", r"\1", quoted[1:-1])


@pytest.fixture
def start_step(aws: None, settings: BoxSettings, tmp_path: Path) -> StartStep:
    """moto holds the box's RDS instance and secret; the coordinates are what the controller
    found, written as the install writes them."""
    seed_rds_box(username="ml user", password="first")
    database = find_rds_store(settings)
    config = tmp_path / "rds.json"
    config.write_text(render_rds_config(database))
    return StartStep(database, config, tmp_path / "run" / "rds.env")


def start_step_failure(tmp_path: Path, config: str | None) -> AgentFailure:
    """The agent's `rds-env` failure with `config` as the coordinates file (None: no file)."""
    path = tmp_path / "rds.json"
    if config is not None:
        path.write_text(config)
    with pytest.raises(AgentFailure) as caught:
        rds_secret.write_env(str(path), str(tmp_path / "rds.env"))
    assert not (tmp_path / "rds.env").exists()
    return caught.value


def put_secret(step: StartStep, value: object) -> None:
    text = value if isinstance(value, str) else json.dumps(value)
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId=step.database.secret_arn, SecretString=text
    )


def test_the_start_step_writes_the_current_password_into_a_0600_file_only(
    start_step: StartStep, capsys: pytest.CaptureFixture[str]
) -> None:
    db = start_step.database
    for password in [*NASTY_PASSWORDS, "with a\nnewline"]:  # one moto for all: seeding is slow
        put_secret(start_step, {"username": "ml user", "password": password})

        answer = start_step.run()

        expected = agent.postgres_uri("ml user", password, db.host, db.port, db.dbname)
        assert start_step.env_file.read_text() == env_file_line(agent.URI_KEY, expected) + "\n"
        assert start_step.uri() == expected
        assert stat.S_IMODE(start_step.env_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(start_step.env_file.parent.stat().st_mode) == 0o700
        assert password not in json.dumps(answer) and password not in capsys.readouterr().out
        assert os.listdir(start_step.env_file.parent) == ["rds.env"]  # no staged copy left


def test_a_rotated_password_is_read_again_and_replaces_a_readable_file(
    start_step: StartStep,
) -> None:
    start_step.run()
    os.chmod(start_step.env_file, 0o644)
    put_secret(start_step, {"username": "ml user", "password": "rotated"})

    start_step.run()

    assert agent.target_of(start_step.uri()).secrets[-1] == "rotated"
    assert "first" not in start_step.env_file.read_text()
    assert stat.S_IMODE(start_step.env_file.stat().st_mode) == 0o600


def test_the_uri_reads_back_with_its_user_host_and_database(start_step: StartStep) -> None:
    start_step.run()
    target = agent.target_of(start_step.uri())
    db = start_step.database
    assert (target.user, target.host, target.port, target.dbname) == (
        "ml user",
        db.host,
        5432,
        "mlflow",
    )


def test_a_deleted_secret_says_how_to_recreate_it(start_step: StartStep) -> None:
    boto3.client("secretsmanager", region_name=REGION).delete_secret(
        SecretId=start_step.database.secret_arn, ForceDeleteWithoutRecovery=True
    )

    failure = start_step.failure()

    assert failure.kind == rds_secret.KIND_MISSING
    assert "does not exist" in failure.sentence
    assert f"--db-instance-identifier {DB_INSTANCE_ID} --manage-master-user-password" in (
        failure.sentence
    )
    assert not start_step.env_file.exists()


def test_a_secret_scheduled_for_deletion_says_how_to_restore_it(start_step: StartStep) -> None:
    boto3.client("secretsmanager", region_name=REGION).delete_secret(
        SecretId=start_step.database.secret_arn, RecoveryWindowInDays=7
    )

    assert "restore-secret" in start_step.failure().sentence


def test_a_malformed_secret_is_reported_without_its_content(start_step: StartStep) -> None:
    malformed = {
        "not-json": "hunter2-not-json",
        "no-password": {"username": "mlflow"},
        "empty-password": {"username": "mlflow", "password": ""},
        "a-list": ["hunter2"],
        "user-not-text": {"username": ["hunter2"], "password": "hunter2"},
    }
    for case, secret in malformed.items():  # one moto for all: seeding is slow
        put_secret(start_step, secret)

        failure = start_step.failure()

        assert failure.kind == rds_secret.KIND_MALFORMED, case
        assert "not JSON with a username and a password" in failure.sentence
        assert "hunter2" not in failure.sentence
        assert not start_step.env_file.exists()


def test_a_box_role_without_the_right_to_the_secret_is_told_which_permission(
    start_step: StartStep, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto enforces IAM: the box's identity may read only some other secret."""
    other = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="another-secret", SecretString="{}"
    )["ARN"]
    only_other = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": other}
            ],
        }
    )
    keys = iam_user(only_other)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys["id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys["secret"])

    failure = set_initial_no_auth_action_count(0)(start_step.failure)()

    assert failure.kind == rds_secret.KIND_DENIED
    assert "may not read the database secret" in failure.sentence
    assert "secretsmanager:GetSecretValue on that secret" in failure.sentence


def test_no_credentials_on_the_box_names_the_instance_role(
    settings: BoxSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No moto: without credentials boto3 gives up before any request."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "absent"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no IMDS here to ask

    failure = start_step_failure(tmp_path, render_rds_config(EXAMPLE_DATABASE))

    assert failure.kind == rds_secret.KIND_NO_CREDENTIALS
    assert "no AWS credentials" in failure.sentence
    assert "instance profile" in failure.sentence


def test_an_unreachable_secrets_manager_is_named(
    aws_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nobody there

    failure = start_step_failure(tmp_path, render_rds_config(EXAMPLE_DATABASE))

    assert failure.kind == rds_secret.KIND_SECRET
    assert "cannot reach Secrets Manager in eu-west-1" in failure.sentence


@pytest.mark.parametrize(
    "content",
    [None, "not json", "{}", render_rds_config(dataclasses.replace(EXAMPLE_DATABASE, host="")),
     render_rds_config(EXAMPLE_DATABASE).replace("5432", '"5432"'),
     render_rds_config(dataclasses.replace(EXAMPLE_DATABASE, dbname="mlflow\nEVIL=1"))],
    ids=["absent", "not-json", "empty", "empty-host", "port-as-text", "a-newline"],
)  # fmt: skip
def test_missing_or_broken_coordinates_say_to_reinstall(
    tmp_path: Path, content: str | None
) -> None:
    failure = start_step_failure(tmp_path, content)

    assert failure.kind == rds_secret.KIND_CONFIG
    assert "fab mlflow.install --backend rds" in failure.sentence


def test_the_start_step_answers_in_one_json_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = agent_main(["rds-env", str(tmp_path / "absent.json"), str(tmp_path / "rds.env")])

    out = capsys.readouterr().out
    assert status == 1 and out.count("\n") == 1
    assert json.loads(out)["kind"] == rds_secret.KIND_CONFIG
