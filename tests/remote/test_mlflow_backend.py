"""The MLflow backend store: found in (fake) AWS by the box's tags without its password,
the password read from the secret by the agent's start step (as the box runs it), written
to a root-only env file, and checked by the agent without the password ever showing.
(That systemd reads each env file line back as written is checked on the real box, in
tests/box/test_postgres_reachable.py.)"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count

from remote.agent.cli import main as agent_main
from remote.agent.mlflow import rds_secret
from remote.agent.mlflow import store as agent
from remote.agent.system.envfile import env_file_line
from remote.agent.system.failure import AgentFailure
from remote.errors import DatabaseNotConfigured, DatabaseNotFound, DatabaseNotReady
from remote.mlflow.spec import render_rds_config, sqlite_uri
from remote.providers.aws.stack import find_artifact_bucket
from remote.providers.aws.stack import find_database as find_rds_store
from remote.providers.base import Database
from remote.providers.local import LocalProvider
from remote.settings import BoxSettings
from tests.nasty_values import NASTY_PASSWORDS
from tests.remote.conftest import REGION, free_port, seed_box
from tests.remote.moto_rds import DB_INSTANCE_ID, EXAMPLE_DATABASE, seed_rds_box

# An IAM policy that lets an identity find the box and its database, and nothing else.
DESCRIBE_ONLY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["ec2:Describe*", "rds:Describe*"],
                "Resource": "*",
            }
        ],
    }
)


@pytest.fixture
def aws(aws_env: dict[str, str]) -> Iterator[None]:
    with mock_aws():
        yield


def iam_user(policy: str) -> dict[str, str]:
    """A moto IAM user with `policy` as its only permission: its access key."""
    iam: Any = boto3.client("iam", region_name=REGION)
    name = f"user-{len(iam.list_users()['Users'])}"
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="only", PolicyDocument=policy)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


def test_find_rds_store_returns_where_the_database_is_and_its_secret_not_the_password(
    aws: None, settings: BoxSettings
) -> None:
    seeded = seed_rds_box(password="s3cret 'with' $tuff%")

    store = find_rds_store(settings)

    assert store == Database(
        host=seeded.endpoint,
        port=5432,
        dbname="mlflow",
        instance=seeded.db_instance_id,
        secret_arn=seeded.secret_arn,
        region=REGION,
    )
    assert "s3cret" not in repr(store)


def test_the_controller_finds_the_database_without_any_right_to_its_secret(
    aws: None, settings: BoxSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto enforces IAM here: this machine's identity may describe, never read secrets."""
    seeded = seed_rds_box(password="never-read-here")
    keys = iam_user(DESCRIBE_ONLY)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys["id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys["secret"])

    @set_initial_no_auth_action_count(0)
    def as_the_controller() -> Database:
        # A fresh session: boto3's default one keeps the credentials it first found.
        denied: Any = boto3.session.Session().client("secretsmanager", region_name=REGION)
        with pytest.raises(denied.exceptions.ClientError, match="AccessDenied"):
            denied.get_secret_value(SecretId=seeded.secret_arn)  # the rule is enforced
        return find_rds_store(settings)

    assert as_the_controller().secret_arn == seeded.secret_arn


def test_a_box_made_with_the_sqlite_backend_says_how_to_add_the_database(
    aws: None, settings: BoxSettings
) -> None:
    ec2: Any = boto3.client("ec2", region_name=REGION)
    box = seed_box(ec2)
    ec2.create_tags(
        Resources=[box.instance_id], Tags=[{"Key": "mlops-box:mlflow-backend", "Value": "sqlite"}]
    )

    with pytest.raises(DatabaseNotConfigured) as caught:
        find_rds_store(settings)

    message = str(caught.value)
    assert "sqlite" in message
    assert "pulumi config set mlflowBackend rds && pulumi up" in message


def test_a_missing_rds_instance_is_named(aws: None, settings: BoxSettings) -> None:
    seeded = seed_rds_box()
    rds: Any = boto3.client("rds", region_name=REGION)
    rds.delete_db_instance(DBInstanceIdentifier=seeded.db_instance_id, SkipFinalSnapshot=True)

    with pytest.raises(DatabaseNotFound, match=f"{seeded.db_instance_id}, which does not exist"):
        find_rds_store(settings)


def test_a_stopped_rds_instance_says_to_start_it(aws: None, settings: BoxSettings) -> None:
    seeded = seed_rds_box()
    rds: Any = boto3.client("rds", region_name=REGION)
    rds.stop_db_instance(DBInstanceIdentifier=seeded.db_instance_id)

    with pytest.raises(DatabaseNotReady, match="is stopped, not available: start it"):
        find_rds_store(settings)


def test_the_artifact_bucket_comes_from_the_box_tag(aws: None, settings: BoxSettings) -> None:
    seed_rds_box(bucket="my-artifacts-123")

    assert find_artifact_bucket(settings) == "my-artifacts-123"


def test_the_local_box_has_no_bucket_and_no_rds(make_settings: Callable[..., BoxSettings]) -> None:
    local = make_settings(provider="local")

    assert LocalProvider(local).artifact_bucket() is None
    with pytest.raises(DatabaseNotConfigured, match="sqlite"):
        LocalProvider(local).database()


# -- the start step: the agent reads the secret, as the box does --------------------------


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


# -- the store URIs ----------------------------------------------------------------------


def test_sqlite_uri_is_absolute() -> None:
    assert sqlite_uri() == "sqlite:////var/lib/mlflow/mlflow.db"


@pytest.mark.parametrize("password", NASTY_PASSWORDS)
def test_postgres_uri_quotes_the_password_and_reads_back(password: str) -> None:
    uri = agent.postgres_uri("ml user", password, "db.example.com", 5432, "mlflow")
    parts = urlsplit(uri)
    target = agent.target_of(uri)

    assert uri.startswith("postgresql+psycopg2://ml%20user:")
    assert uri.endswith("@db.example.com:5432/mlflow")
    assert (parts.hostname, parts.port, parts.path) == ("db.example.com", 5432, "/mlflow")
    assert (target.user, target.host, target.port, target.dbname) == (
        "ml user",
        "db.example.com",
        5432,
        "mlflow",
    )
    assert agent.scrub(f"failed for {uri} with {password}", target).count("***") == 2


# -- the env file ------------------------------------------------------------------------


def test_env_file_line_refuses_what_the_format_cannot_hold() -> None:
    with pytest.raises(ValueError, match="newline"):
        env_file_line("KEY", "two\nlines")
    with pytest.raises(ValueError, match="not a valid"):
        env_file_line("1KEY", "x")
    with pytest.raises(ValueError, match="not a valid"):
        env_file_line("KEY WITH SPACE", "x")


def test_agent_reports_a_missing_store_uri_in_one_json_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(agent.URI_KEY, raising=False)

    status = agent_main(["db-check"])

    out = capsys.readouterr().out
    assert status == 1
    assert out.count("\n") == 1
    answer = json.loads(out)
    assert answer["ok"] is False
    assert answer["kind"] == agent.KIND_ENV_FILE
    assert "sets no MLFLOW_BACKEND_STORE_URI" in answer["error"]


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        (
            'connection to server at "10.0.0.5", port 5432 failed: timeout expired',
            agent.KIND_UNREACHABLE,
        ),
        (
            'connection to server at "10.0.0.5", port 5432 failed: Connection refused\n\t'
            "Is the server running on that host and accepting TCP/IP connections?",
            agent.KIND_UNREACHABLE,
        ),
        ('could not translate host name "db.x" to address: Name', agent.KIND_UNREACHABLE),
        (
            'connection to server at "h", port 5432 failed: FATAL:  password authentication '
            'failed for user "mlflow"',
            agent.KIND_AUTH,
        ),
        ('FATAL:  no pg_hba.conf entry for host "10.1.1.2", user "mlflow"', agent.KIND_AUTH),
        ('FATAL:  database "mlflow" does not exist', agent.KIND_NO_DATABASE),
        ("FATAL:  too many connections", agent.KIND_DB_ERROR),
    ],
)
def test_agent_classifies_libpq_failures(message: str, kind: str) -> None:
    assert agent.classify(message) == kind


@pytest.mark.parametrize("password", NASTY_PASSWORDS[1:])
def test_agent_failure_sentences_never_contain_the_password(password: str) -> None:
    uri = agent.postgres_uri("mlflow", password, "db.example.com", 5432, "mlflow")
    target = agent.target_of(uri)
    detail = agent.scrub(f"could not connect using {uri} (password {password})", target)

    for kind in (agent.KIND_UNREACHABLE, agent.KIND_AUTH, agent.KIND_NO_DATABASE, "other"):
        sentence = agent.failure_sentence(kind, target, detail)
        assert password not in sentence
        assert "db.example.com:5432" in sentence
    assert "refused the password for user mlflow" in agent.failure_sentence(
        agent.KIND_AUTH, target, detail
    )
