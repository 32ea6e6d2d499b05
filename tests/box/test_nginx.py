"""nginx on the real box through remote/system/nginx.py: installed without its default
site (so nothing listens), a site written once, and a configuration nginx refuses (a bad
directive, a port another process holds) leaving the previous one serving."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from remote.system import nginx, systemd
from tests.box.harness.mlflow_box import public_listeners

pytestmark = pytest.mark.box

SITE = "mlops-test-site"
PORT = 8091
TAKEN_PORT = 8092
HOG = "mlops-test-port-hog.service"


def site(port: int, body: str) -> str:
    return f"server {{\n    listen 127.0.0.1:{port};\n    return 200 '{body}';\n}}\n"


def answer(conn: Any, port: int = PORT) -> str:
    return str(conn.run(f"curl -sS -m 10 http://127.0.0.1:{port}/", hide=True, warn=True).stdout)


@pytest.fixture
def conn(box_conn: Any) -> Iterator[Any]:
    nginx.ensure_nginx(box_conn)
    yield box_conn
    box_conn.run(f"sudo systemctl stop {HOG}", hide=True, warn=True)
    nginx.remove_site(box_conn, SITE)


def test_nginx_runs_without_its_default_site_and_a_second_call_changes_nothing(
    box_conn: Any,
) -> None:
    nginx.ensure_nginx(box_conn)

    unit = systemd.state(box_conn, nginx.UNIT)
    assert unit.running and unit.enabled
    assert not box_conn.run(f"test -e {nginx.DEFAULT_SITE}", hide=True, warn=True).ok
    assert public_listeners(box_conn) == []
    assert not nginx.ensure_nginx(box_conn)


def test_a_site_is_written_once_then_changes_nothing(conn: Any) -> None:
    assert nginx.ensure_site(conn, SITE, site(PORT, "one")).changes == [
        f"/etc/nginx/conf.d/{SITE}.conf"
    ]
    assert answer(conn) == "one"
    assert not nginx.ensure_site(conn, SITE, site(PORT, "one"))
    assert nginx.ensure_site(conn, SITE, site(PORT, "two"))
    assert answer(conn) == "two"


def test_a_bad_directive_is_refused_with_nginxs_words_and_the_old_site_serves(
    conn: Any,
) -> None:
    nginx.ensure_site(conn, SITE, site(PORT, "one"))

    with pytest.raises(nginx.NginxError) as refused:
        nginx.ensure_site(conn, SITE, site(PORT, "two").replace("return", "retrun"))

    assert f'unknown directive "retrun" in /etc/nginx/conf.d/{SITE}.conf:3' in str(refused.value)
    assert answer(conn) == "one"
    assert "return 200 'one'" in conn.run(f"cat /etc/nginx/conf.d/{SITE}.conf", hide=True).stdout
    assert not conn.run("ls /etc/nginx/conf.d | grep mlops-box-", hide=True, warn=True).ok


def test_a_port_another_process_holds_is_refused_and_the_old_site_serves(conn: Any) -> None:
    nginx.ensure_site(conn, SITE, site(PORT, "one"))
    conn.run(
        f"sudo systemd-run --unit={HOG} python3 -m http.server {TAKEN_PORT} --bind 127.0.0.1",
        hide=True,
    )
    conn.run(
        f"curl -sS -o /dev/null --retry 10 --retry-connrefused --retry-delay 1 "
        f"http://127.0.0.1:{TAKEN_PORT}/",
        hide=True,
    )

    with pytest.raises(nginx.NginxError) as refused:
        nginx.ensure_site(conn, SITE, site(TAKEN_PORT, "two"))

    assert f"bind() to 127.0.0.1:{TAKEN_PORT} failed (98: Address already in use)" in str(
        refused.value
    )
    assert "kept serving the previous one" in str(refused.value)
    assert answer(conn) == "one"
    assert (
        f"listen 127.0.0.1:{PORT};"
        in conn.run(f"cat /etc/nginx/conf.d/{SITE}.conf", hide=True).stdout
    )


def test_removing_a_site_stops_its_listener(conn: Any) -> None:
    nginx.ensure_site(conn, SITE, site(PORT, "one"))

    assert nginx.remove_site(conn, SITE).changes == [f"/etc/nginx/conf.d/{SITE}.conf"]

    assert f"127.0.0.1:{PORT}" not in conn.run("sudo ss -Hltn", hide=True).stdout
    assert not nginx.remove_site(conn, SITE)
