"""The MLflow backend store: found in (fake) AWS by the box's tags, written to the env file,
and checked by the agent without the password ever showing. (That systemd reads each env
file line back as written is checked on the real box, in tests/box/test_bootstrap.py.)"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from moto import mock_aws

from remote.agent import db as agent
from remote.agent.__main__ import main as agent_main
from remote.errors import (
    DatabaseNotConfigured,
    DatabaseNotFound,
    DatabaseNotReady,
    DatabaseSecretError,
)
from remote.mlflow.spec import env_file_line
from remote.mlflow.store import PostgresStore, SqliteStore
from remote.providers.aws import stack
from remote.providers.aws.stack import find_artifact_bucket
from remote.providers.aws.stack import find_database as find_rds_store
from remote.providers.base import Database
from remote.providers.local import LocalProvider
from remote.settings import BoxSettings
from tests.nasty_values import NASTY_PASSWORDS
from tests.remote.conftest import REGION, seed_box
from tests.remote.moto_rds import seed_rds_box


@pytest.fixture
def aws(aws_env: dict[str, str]) -> Iterator[None]:
    with mock_aws():
        yield


def test_find_rds_store_returns_the_endpoint_and_the_current_master_password(
    aws: None, settings: BoxSettings
) -> None:
    seeded = seed_rds_box(password="s3cret 'with' $tuff%")

    store = find_rds_store(settings)

    assert store == Database(
        host=seeded.endpoint,
        port=5432,
        dbname="mlflow",
        user="mlflow",
        password="s3cret 'with' $tuff%",
    )


def test_find_rds_store_reads_the_user_from_the_secret_as_rds_stores_it(
    aws: None, settings: BoxSettings
) -> None:
    seeded = seed_rds_box()  # moto's own secret value, not one we put there
    secret = boto3.client("secretsmanager", region_name=REGION).get_secret_value(
        SecretId=seeded.secret_arn
    )
    expected = json.loads(secret["SecretString"])

    store = find_rds_store(settings)

    assert (store.user, store.password) == (expected["username"], expected["password"])


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


def test_a_deleted_secret_says_how_to_recreate_it(aws: None, settings: BoxSettings) -> None:
    seeded = seed_rds_box(password="never-shown")
    secrets: Any = boto3.client("secretsmanager", region_name=REGION)
    secrets.delete_secret(SecretId=seeded.secret_arn, ForceDeleteWithoutRecovery=True)

    with pytest.raises(DatabaseSecretError) as caught:
        find_rds_store(settings)

    assert "does not exist" in str(caught.value)
    assert "--manage-master-user-password" in str(caught.value)


def test_a_secret_scheduled_for_deletion_says_how_to_restore_it(
    aws: None, settings: BoxSettings
) -> None:
    seeded = seed_rds_box(password="never-shown")
    secrets: Any = boto3.client("secretsmanager", region_name=REGION)
    secrets.delete_secret(SecretId=seeded.secret_arn, RecoveryWindowInDays=7)

    with pytest.raises(DatabaseSecretError, match="restore-secret"):
        find_rds_store(settings)


def test_a_malformed_secret_is_reported_without_its_content(
    aws: None, settings: BoxSettings
) -> None:
    seeded = seed_rds_box()
    secrets: Any = boto3.client("secretsmanager", region_name=REGION)
    secrets.put_secret_value(SecretId=seeded.secret_arn, SecretString="hunter2-not-json")

    with pytest.raises(DatabaseSecretError) as caught:
        find_rds_store(settings)

    assert "not JSON with a username and a password" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_access_denied_to_the_secret_names_the_permission() -> None:
    message = stack._secret_failure("AccessDeniedException", "arn:aws:x", "db-1")
    assert "secretsmanager:GetSecretValue" in message
    assert "kms:Decrypt" in message


def test_the_artifact_bucket_comes_from_the_box_tag(aws: None, settings: BoxSettings) -> None:
    seed_rds_box(bucket="my-artifacts-123")

    assert find_artifact_bucket(settings) == "my-artifacts-123"


def test_the_local_box_has_no_bucket_and_no_rds(make_settings: Callable[..., BoxSettings]) -> None:
    local = make_settings(provider="local")

    assert LocalProvider(local).artifact_bucket() is None
    with pytest.raises(DatabaseNotConfigured, match="sqlite"):
        LocalProvider(local).database()


# -- the store URIs ----------------------------------------------------------------------


def test_sqlite_uri_is_absolute() -> None:
    assert SqliteStore().uri() == "sqlite:////var/lib/mlflow/mlflow.db"


@pytest.mark.parametrize("password", NASTY_PASSWORDS)
def test_postgres_uri_quotes_the_password_and_reads_back(password: str) -> None:
    store = PostgresStore("db.example.com", 5432, "mlflow", "ml user", password)

    uri = store.uri()
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


def test_repr_never_shows_the_password() -> None:
    store = PostgresStore("h", 5432, "mlflow", "mlflow", "Sup3r-S3cret")
    assert "Sup3r-S3cret" not in repr(store)
    assert "Sup3r-S3cret" not in str(store)


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
    uri = PostgresStore("db.example.com", 5432, "mlflow", "mlflow", password).uri()
    target = agent.target_of(uri)
    detail = agent.scrub(f"could not connect using {uri} (password {password})", target)

    for kind in (agent.KIND_UNREACHABLE, agent.KIND_AUTH, agent.KIND_NO_DATABASE, "other"):
        sentence = agent.failure_sentence(kind, target, detail)
        assert password not in sentence
        assert "db.example.com:5432" in sentence
    assert "refused the password for user mlflow" in agent.failure_sentence(
        agent.KIND_AUTH, target, detail
    )
