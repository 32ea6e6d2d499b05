"""The MLflow backend store: found in (fake) AWS by the box's tags without its password,
the password read from the secret by the agent's start step (as the box runs it), written
to a root-only env file, and checked by the agent without the password ever showing.
(That systemd reads each env file line back as written is checked on the real box, in
tests/box/test_postgres_reachable.py.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from moto.core import set_initial_no_auth_action_count

from remote.errors import DatabaseNotConfigured, DatabaseNotFound, DatabaseNotReady
from remote.mlflow.spec import sqlite_uri
from remote.providers.aws.stack import find_artifact_bucket
from remote.providers.aws.stack import find_database as find_rds_store
from remote.providers.base import Database
from remote.providers.local import LocalProvider
from remote.settings import BoxSettings
from tests.remote.conftest import REGION, seed_box
from tests.remote.moto_rds import iam_user, seed_rds_box

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


# -- the store URIs ----------------------------------------------------------------------


def test_sqlite_uri_is_absolute() -> None:
    assert sqlite_uri() == "sqlite:////var/lib/mlflow/mlflow.db"


# -- the env file ------------------------------------------------------------------------
