"""The system layer on the real box: systemd units through `ensure_unit`, and the agent
shipped once per content hash and run under systemd-run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fabric import Connection

from remote.agent.mlflow import commands as mlflow_cmds
from remote.errors import MlopsBoxError
from remote.system import agent, systemd

pytestmark = pytest.mark.box

UNIT = "mlops-box-test-web.service"
PORT = 8765


def web_unit(port: int) -> str:
    return (
        "[Unit]\nDescription=mlops-box test web server\n\n"
        "[Service]\nDynamicUser=yes\n"
        f"ExecStart=/usr/bin/python3 -u -m http.server {port} --bind 127.0.0.1 --directory /\n\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )


@pytest.fixture
def conn(box_conn: Connection) -> Connection:
    return box_conn


@pytest.fixture
def web(conn: Connection) -> Iterator[Connection]:
    yield conn
    conn.run(
        f"sudo -n sh -c 'systemctl disable --now {UNIT}; rm -f /etc/systemd/system/{UNIT}; "
        "systemctl daemon-reload'",
        hide=True,
        warn=True,
    )


def answers(conn: Connection, port: int) -> bool:
    curl = "curl -fsS -o /dev/null --retry 10 --retry-connrefused --retry-delay 1 -m 20 "
    return bool(conn.run(f"{curl} http://127.0.0.1:{port}/", hide=True, warn=True).ok)


def test_ensure_unit_starts_once_then_changes_nothing_then_restarts_on_a_change(
    web: Connection,
) -> None:
    first = systemd.ensure_unit(web, UNIT, web_unit(PORT))

    assert first.changes == [f"/etc/systemd/system/{UNIT}", "enabled at boot", "started"]
    assert answers(web, PORT)
    assert not systemd.ensure_unit(web, UNIT, web_unit(PORT))

    moved = systemd.ensure_unit(web, UNIT, web_unit(PORT + 1))

    assert moved.changes == [f"/etc/systemd/system/{UNIT}", "restarted"]
    assert answers(web, PORT + 1)
    assert systemd.state(web, UNIT).enabled
    assert "Serving HTTP on 127.0.0.1 port" in systemd.journal_tail(web, UNIT)


def test_a_unit_that_cannot_start_fails_with_its_log(web: Connection) -> None:
    broken = (
        web_unit(PORT)
        .replace("[Service]\n", "[Service]\nType=oneshot\n")
        .replace("-m http.server", "-m no_such_module_here")
    )

    with pytest.raises(MlopsBoxError) as caught:
        systemd.ensure_unit(web, UNIT, broken)

    assert f"Could not restart {UNIT} on the box" in str(caught.value)
    assert "No module named no_such_module_here" in str(caught.value)


def test_the_agent_is_shipped_once_per_version_and_answers_in_json(conn: Connection) -> None:
    path, _ = agent.bundle()
    conn.run(f"sudo -n rm -f {path}", hide=True)

    assert agent.ensure_agent(conn).changes == [path]
    assert not agent.ensure_agent(conn)
    assert conn.run(f"stat -c '%U %a' {path}", hide=True).stdout.split() == ["root", "644"]

    with pytest.raises(agent.AgentError, match="There is no SQLite database at /nonexistent"):
        agent.run_agent(conn, mlflow_cmds.SQLITE_BACKUP, "/nonexistent.db", "/tmp/x.db")
