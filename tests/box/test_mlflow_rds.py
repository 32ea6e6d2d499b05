"""MLflow on the "RDS" backend: a real PostgreSQL on this machine stands in for RDS, and a
moto server on this machine for AWS (RDS's API and Secrets Manager).

As on AWS, the controller finds the database by the box's tags (the AWS provider's own
code, over HTTP to the moto server) and gets where it is and its secret's ARN, never the
password; the box reads the secret itself whenever mlflow.service starts. moto's RDS
endpoint is a made-up hostname, so only host and port are replaced by the real server's.

What stands in for what:
- The instance role. On EC2 every process on the box gets the role's credentials from the
  instance metadata service. The local box has none, so this test (not the code under
  test) writes a systemd drop-in for every service on the box, AWS_DROP_IN, removed at
  the end: AWS_ENDPOINT_URL (the moto server, at the host side of the box's veth) and a
  fake access key. The production code sets none of these: boto3's standard credential
  chain reads them as it reads the role's on EC2.
- Access keys tell the callers apart in the moto server's request log: the box signs
  with BOX_KEY, this process (the controller) with CONTROLLER_KEY, the seeding with
  SEED_KEY.
Everything else is real: the box, systemd, the MLflow server and client, boto3 over
HTTP, psycopg2, PostgreSQL and its password check.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shlex
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from remote.errors import DatabaseAuthError, DatabaseSecretError, DatabaseUnreachable
from remote.mlflow.install import install_on_box
from remote.mlflow.server import wait_healthy
from remote.mlflow.status import status
from remote.providers.aws.stack import find_database
from remote.providers.base import Database
from remote.providers.local.provider import LocalProvider
from remote.settings import BoxSettings
from remote.system.bootstrap import bootstrap
from remote.system.files import RemoteFile, write
from tests.box.harness import postgres
from tests.box.harness.local_box import START_TIMEOUT_S
from tests.box.harness.mlflow_box import MlflowBox, files_holding, log_a_run, staged_pattern
from tests.box.harness.moto_host import REGION, HostAws
from tests.box.harness.postgres import HostPostgres, host_address, nasty_password
from tests.remote.conftest import free_port
from tests.remote.moto_rds import seed_rds_box

pytestmark = pytest.mark.box
host_postgres = postgres.host_postgres

BOX_KEY = "AKIABOXINSTANCEROLE0"
CONTROLLER_KEY = "AKIATHECONTROLLER000"
SEED_KEY = "AKIATESTSEEDING00000"
AWS_DROP_IN = "/etc/systemd/system/service.d/mlops-box-test-aws.conf"
RDS_ENV = "600 root /run/mlflow/rds.env"
WRONG_PASSWORD = json.dumps({"username": postgres.DB_USER, "password": "not-the-password"})
MISSING_ARN = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:rds!db-gone-AbCdEf"


@pytest.fixture(scope="module")
def host_aws(
    local_settings: BoxSettings, local_box: LocalProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostAws]:
    local_box.start(timeout_s=START_TIMEOUT_S)  # its veth's address is where moto listens
    recording = tmp_path_factory.mktemp("moto") / "requests.jsonl"
    aws = HostAws.start(host_address(local_settings), recording)
    try:
        yield aws
    finally:
        aws.stop()


@pytest.fixture(scope="module")
def database(
    host_aws: HostAws, host_postgres: HostPostgres, local_settings: BoxSettings
) -> Database:
    """What the controller finds in (moto's) AWS for the box, pointed at the real server."""
    seed_rds_box(
        username=host_postgres.user,
        password=host_postgres.password,
        dbname=host_postgres.dbname,
        name=local_settings.name,
        stack=local_settings.stack,
        region=REGION,
        client=lambda service: host_aws.client(service, SEED_KEY),
    )
    aws_settings = dataclasses.replace(local_settings, provider="aws", region=REGION)
    with pytest.MonkeyPatch.context() as env:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                env.delenv(name)
        env.setenv("AWS_ENDPOINT_URL", host_aws.url)
        env.setenv("AWS_ACCESS_KEY_ID", CONTROLLER_KEY)
        env.setenv("AWS_SECRET_ACCESS_KEY", "fake")
        env.setenv("AWS_CONFIG_FILE", "/nonexistent")
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        found = find_database(aws_settings)
    return dataclasses.replace(found, host=host_address(local_settings), port=host_postgres.port)


def box_credentials(box: MlflowBox, endpoint: str, *, keys: bool = True) -> None:
    """The test's stand-in for the instance role (see the module's docstring)."""
    lines = [
        "# Test only (tests/box/test_mlflow_rds.py): stands in for the EC2 instance role.",
        "[Service]",
        f"Environment=AWS_ENDPOINT_URL={endpoint}",
    ]
    if keys:
        lines += [f"Environment=AWS_ACCESS_KEY_ID={BOX_KEY}", "Environment=AWS_SECRET_ACCESS_KEY=x"]
    else:  # and no metadata service to ask: this machine's own must never answer the box
        lines.append("Environment=AWS_EC2_METADATA_DISABLED=true")
    box.sh(f"sudo install -d -m 755 {os.path.dirname(AWS_DROP_IN)}")
    write(box.conn, RemoteFile(AWS_DROP_IN, ("\n".join(lines) + "\n").encode(), 0o644))
    box.sh("sudo systemctl daemon-reload")


@pytest.fixture(scope="module")
def rds_box(
    local_settings: BoxSettings, local_box: LocalProvider, host_aws: HostAws, database: Database
) -> Iterator[MlflowBox]:
    """The box with MLflow on the PostgreSQL backend, the box reading the secret."""
    box = MlflowBox(local_settings, local_box, "", None)
    box.start()
    bootstrap(box.conn)
    box_credentials(box, host_aws.url)
    try:
        install_rds(box, database)
        yield box
    finally:
        # Without this machine's moto the rds unit cannot start again: leave it stopped.
        box.conn.run(
            f"sudo systemctl stop mlflow.service; sudo rm -f {AWS_DROP_IN} /run/mlflow/rds.env; "
            "sudo systemctl daemon-reload",
            hide=True,
            warn=True,
        )
        box.conn.close()


def install_rds(box: MlflowBox, database: Database) -> None:
    """What `fab mlflow.install --backend rds` runs, with the database found above (the
    local provider has none of its own)."""
    install_on_box(box.conn, box.provider, backend="rds", database=database)


def forms_of(password: str) -> list[str]:
    """The password as it may be stored: raw, and URL-quoted inside the store URI."""
    return [password, quote(password, safe="")]


def restart(box: MlflowBox) -> None:
    box.sh("sudo systemctl restart mlflow.service")
    wait_healthy(box.conn, 5000, fresh_start=True)


def put_secret(aws: HostAws, arn: str, username: str, password: str) -> None:
    secret = json.dumps({"username": username, "password": password})
    aws.client("secretsmanager", SEED_KEY).put_secret_value(SecretId=arn, SecretString=secret)


def test_a_run_is_logged_and_read_back_through_postgres(
    rds_box: MlflowBox, host_postgres: HostPostgres, database: Database
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
    # `fab mlflow.status` counts it through the env file the start step wrote.
    current = status(rds_box.conn)
    assert current.backend == "rds (postgresql)"
    assert current.backend_where == f"{database.host}:{database.port}"
    assert int(current.runs) >= 1


def test_the_box_read_the_secret_and_the_controller_never_did(
    rds_box: MlflowBox, host_aws: HostAws
) -> None:
    requests = host_aws.requests()
    readers = [key for key, action in requests if action == "secretsmanager.GetSecretValue"]
    assert readers and set(readers) == {BOX_KEY}
    # The controller asked AWS where the box and its database are, and nothing of secrets.
    asked = {action for key, action in requests if key == CONTROLLER_KEY}
    assert "DescribeDBInstances" in asked
    assert not [action for action in asked if action.startswith("secretsmanager.")]


def test_the_password_is_in_no_argv_no_journal_and_only_the_root_env_file(
    rds_box: MlflowBox, host_postgres: HostPostgres
) -> None:
    """Every process's argv is sampled on the box while the service (re)starts."""
    forms = forms_of(host_postgres.password)
    staged_pattern(rds_box, forms, "/root/.argv-secret")
    staged_pattern(rds_box, ["rds-env"], "/root/.argv-step")  # not in the sampler's argv
    sampler = (
        "while :; do grep -alF -f /root/.argv-secret /proc/[0-9]*/cmdline >> /root/.argv-hits;"
        " for f in $(grep -alF -f /root/.argv-step /proc/[0-9]*/cmdline); do"
        " tr '\\0' ' ' < $f >> /root/.argv-seen; echo >> /root/.argv-seen; done;"
        " sleep 0.05; done 2>/dev/null"
    )
    rds_box.sh("sudo rm -f /root/.argv-hits /root/.argv-seen && sudo touch /root/.argv-hits")
    rds_box.sh(f"sudo systemd-run --quiet --unit=mlops-test-argv sh -c {shlex.quote(sampler)}")
    try:
        assert rds_box.sh("systemctl is-active mlops-test-argv").strip() == "active"
        restart(rds_box)
    finally:
        rds_box.conn.run("sudo systemctl stop mlops-test-argv", hide=True, warn=True)
    seen = rds_box.sh("sudo cat /root/.argv-seen; sudo cat /root/.argv-hits | wc -l")
    rds_box.sh("sudo rm -f /root/.argv-secret /root/.argv-step /root/.argv-hits /root/.argv-seen")
    # The sampler saw the start step run (so it watched the right moment), and no password.
    assert "-m mlops_agent rds-env /etc/mlflow/rds.json /run/mlflow/rds.env" in seen
    assert seen.splitlines()[-1].strip() == "0"
    journal = rds_box.conn.run("sudo journalctl --no-pager -o cat", hide=True).stdout
    assert "Wrote the store URI of mlflow@" in journal  # the start step's own line is there
    assert not [form for form in forms if form in journal]
    assert files_holding(rds_box, forms) == [RDS_ENV]
    assert rds_box.sh("sudo stat -c '%a %U' /etc/mlflow/rds.json").split() == ["644", "root"]


def test_a_rotated_password_is_picked_up_by_a_restart(
    rds_box: MlflowBox, host_postgres: HostPostgres, host_aws: HostAws, database: Database
) -> None:
    """As RDS rotates it: the database's password and the secret change together."""
    import mlflow

    old, new = host_postgres.password, nasty_password()
    put_secret(host_aws, database.secret_arn, host_postgres.user, new)
    host_postgres.set_password(new)
    try:
        restart(rds_box)
        with rds_box.tracking():
            run_id = log_a_run()
            assert mlflow.get_run(run_id).data.metrics["rmse"] == 0.25
        assert files_holding(rds_box, forms_of(new)) == [RDS_ENV]
        assert files_holding(rds_box, forms_of(old)) == []
    finally:  # back to the password the other tests know
        put_secret(host_aws, database.secret_arn, host_postgres.user, old)
        host_postgres.set_password(old)
        restart(rds_box)


def other_secret(aws: HostAws, value: str) -> str:
    name = f"mlops-box-test-{secrets.token_hex(4)}"
    created = aws.client("secretsmanager", SEED_KEY).create_secret(Name=name, SecretString=value)
    return str(created["ARN"])


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda aws: {"port": free_port()}, DatabaseUnreachable, "Cannot reach PostgreSQL"),
        (
            lambda aws: {"secret_arn": other_secret(aws, WRONG_PASSWORD)},
            DatabaseAuthError,
            "refused the password",
        ),
        (lambda aws: {"secret_arn": MISSING_ARN}, DatabaseSecretError, "does not exist"),
        (
            lambda aws: {"secret_arn": other_secret(aws, "hunter2, not JSON")},
            DatabaseSecretError,
            "is not JSON with a username and a password",
        ),
    ],
    ids=["unreachable", "wrong-password", "missing-secret", "malformed-secret"],
)
def test_a_bad_database_leaves_the_running_server_and_its_data(
    rds_box: MlflowBox,
    database: Database,
    host_aws: HostAws,
    host_postgres: HostPostgres,
    change: object,
    error: type[Exception],
    message: str,
) -> None:
    """Through the install `fab mlflow.install --backend rds` runs: one line, no change."""
    import mlflow

    with rds_box.tracking():
        run_id = log_a_run()
    before = rds_box.started_at()
    bad = dataclasses.replace(database, **change(host_aws))  # type: ignore[operator]
    with pytest.raises(error) as caught:
        install_rds(rds_box, bad)
    text = str(caught.value)
    assert message in text and "\n" not in text
    assert host_postgres.password not in text and "hunter2" not in text
    assert rds_box.started_at() == before
    # The candidate files of the check are gone; the live ones are as they were.
    assert rds_box.sh("sudo ls /run/mlflow").split() == ["rds.env"]
    assert database.secret_arn in rds_box.sh("cat /etc/mlflow/rds.json")
    with rds_box.tracking():
        assert mlflow.get_run(run_id).data.metrics["rmse"] == 0.25


def test_without_credentials_the_start_and_the_install_say_so_in_one_line(
    rds_box: MlflowBox, host_aws: HostAws, database: Database
) -> None:
    """The box without its role: the restart fails with the agent's sentence in the journal,
    and the install (which restarts the failed service) raises it as one line."""
    box_credentials(rds_box, host_aws.url, keys=False)
    try:
        rds_box.conn.run("sudo systemctl restart mlflow.service", hide=True, warn=True)
        journal = rds_box.sh("sudo journalctl -u mlflow.service -n 40 --no-pager -o cat")
        assert '"kind": "secret-no-credentials"' in journal
        assert "The box has no AWS credentials to read the database secret" in journal
        with pytest.raises(DatabaseSecretError) as caught:
            install_rds(rds_box, database)
        text = str(caught.value)
        assert text.startswith("The box has no AWS credentials to read the database secret")
        assert "instance profile" in text and "\n" not in text
    finally:
        box_credentials(rds_box, host_aws.url)
        restart(rds_box)
