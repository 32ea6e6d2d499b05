"""MLflow's backend store as the box's agent checks it: the Postgres URI (the password
quoted, never in a sentence), a missing store URI, libpq's failures by kind."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from remote.agent.cli import main as agent_main
from remote.agent.mlflow import store as agent
from tests.nasty_values import NASTY_PASSWORDS


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
