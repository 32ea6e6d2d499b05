"""More input to the real `fab` CLI: an endpoint that answers HTML, addresses that would
lock SSH out, what `mlflow.install --public` promises, and a user's Host block our entry
shadows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.remote.fab_cli import NAME, fab, refused
from tests.remote.http_answer import Answering, answering

# What a proxy or a load balancer in front of a wrong endpoint sends: not XML.
ERROR_PAGE = (
    b"<!DOCTYPE html>\n<html><head><meta charset=utf-8><title>500</title></head>"
    b"<body><h1>Internal Server Error</h1><p>upstream failed<br></body></html>\n"
)


@pytest.fixture
def html_endpoint() -> Iterator[Answering]:
    """An endpoint that answers every request with a 500 HTML page."""
    with answering(ERROR_PAGE, status=500, content_type="text/html") as endpoint:
        yield endpoint


@pytest.mark.parametrize("task", [["box.status"], ["box.start", "--ssh-timeout", "0"]])
def test_an_endpoint_answering_html_is_refused(
    fab_env: dict[str, str], html_endpoint: Answering, fab_ssh_dir: Path, task: list[str]
) -> None:
    env = dict(fab_env, AWS_ENDPOINT_URL=html_endpoint.url)

    line = refused(fab(env, *task))

    assert html_endpoint.requests >= 1
    assert line == (
        f"Cannot look up the box {NAME}: the AWS endpoint answered with something other "
        "than an AWS response (an HTML error page?): check AWS_ENDPOINT_URL, any proxy and "
        "the network, then run again."
    )
    assert not fab_ssh_dir.exists()


@pytest.mark.parametrize("ip", ["0.0.0.0", "127.0.0.1", "224.0.0.1", "10.1.2.3", "fe80::1"])
def test_allow_my_ip_refuses_a_non_public_ip_before_any_aws_call(
    fab_env: dict[str, str], html_endpoint: Answering, ip: str
) -> None:
    env = dict(fab_env, AWS_ENDPOINT_URL=html_endpoint.url)

    line = refused(fab(env, "box.allow-my-ip", "--ip", ip))

    assert line.startswith(f"--ip is {ip}, which is not a public address (")
    assert line.endswith(
        "pass this machine's public address with --ip, e.g. --ip $(curl -s "
        "https://checkip.amazonaws.com)."
    )
    assert html_endpoint.requests == 0


def test_allow_my_ip_refusal_keeps_the_rules(
    fab_env: dict[str, str], server_ec2: Any, box: Any
) -> None:
    def rules() -> list[tuple[int, str]]:
        found = server_ec2.describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [box.group_id]}]
        )["SecurityGroupRules"]
        return sorted((r["FromPort"], r.get("CidrIpv4", "")) for r in found if not r["IsEgress"])

    before = rules()

    line = refused(fab(fab_env, "box.allow-my-ip", "--ip", "0.0.0.0"))

    assert "(unspecified)" in line
    assert rules() == before == [(22, "198.51.100.0/24")]


def test_mlflow_install_help_says_public_goes_through_the_tls_front_door(
    fab_env: dict[str, str],
) -> None:
    result = fab(fab_env, "mlflow.install", "--help")

    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "through the TLS front door (bearer token; see deploy.expose)" in text
    assert "--allowed-hosts" not in text and "basic" not in text


def test_a_user_host_block_for_the_alias_is_warned_about(
    fab_env: dict[str, str], box: Any, fab_ssh_dir: Path
) -> None:
    fab_ssh_dir.mkdir(mode=0o700)
    config = fab_ssh_dir / "config"
    config.write_text(f"Host *\n    User me\n\nhost={NAME}\n    HostName 192.0.2.9\n")

    result = fab(fab_env, "box.ssh-config")

    assert result.returncode == 0, result.stderr
    # Line 5 of the file as it is now, with the Include added at the top.
    assert config.read_text().splitlines()[4] == f"host={NAME}"
    assert result.stderr.splitlines() == [
        f"Warning: {config} line 5, `host={NAME}`, also matches {NAME}; the mlops-box "
        f"entry, included at the top of {config}, comes first and wins: rename or remove "
        "that block."
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["monitor.drift", "--out", "{file}"], "--out {file} is a file, not a folder"),
        (["deploy.shadow-report", "--out", "{file}"], "--out {file} is a file, not a folder"),
        (["monitor.drift", "--out", "{file}/reports"], "is not a folder you can write in"),
        (["deploy.blue-green", "--model", "/"], "--model '/' is not a model URI"),
        (["deploy.canary", "--model", "models:/x"], "names no version"),
        (["deploy.shadow", "--model", "models:/x/latest"], "a version is a number"),
        (["deploy.shadow", "--model", "models:/x/1", "--sample", "0.001"], "--sample is 0.001"),
        (["deploy.canary", "--model", "models:/x/1", "--bake", "604800"], "past a canary's cap"),
        (["train.run", "--project", "examples/taxi", "--register-as", "a:b@c"], "--register-as"),
        (["monitor.schedule", "--model", "taxi@champion"], "without --every it only shows it"),
        (["monitor.schedule", "--off", "--since", "2h"], "--since set a schedule's checks"),
    ],
)
def test_bad_values_are_refused_before_the_box_is_asked(
    fab_env: dict[str, str], html_endpoint: Answering, tmp_path: Path, args: list[str], message: str
) -> None:
    # The endpoint counts requests: a refusal here asks nothing of AWS (nor the box).
    file = tmp_path / "report.html"
    file.write_text("kept")
    env = dict(fab_env, AWS_ENDPOINT_URL=html_endpoint.url)

    line = refused(fab(env, *(arg.format(file=file) for arg in args)))

    assert message.format(file=file) in line
    assert html_endpoint.requests == 0
    assert file.read_text() == "kept"
