"""The TLS front door on the real local box: real nginx, TLS verified by Python's own ssl
against the CA saved on this machine, the real MLflow client, the real `fab` CLI.

What stands in: the router on 127.0.0.1:8000 belongs to the serving work; here a test site
of the same nginx answers there with the headers it was sent, so the tests see what the
front door forwards.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import subprocess
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from remote.deploy.client_files import ClientFiles
from remote.deploy.expose import close_front_door, open_front_door
from remote.deploy.front_door import SITE, STATE_FILE, TOKEN_FILE
from remote.providers.local.provider import LocalProvider
from remote.settings import BoxSettings
from remote.system import files, nginx
from tests.box.harness.mlflow_box import (
    MlflowBox,
    files_holding,
    https_get,
    log_a_run,
    open_mlflow_box,
    public_listeners,
    served_certificate,
)

pytestmark = pytest.mark.box

ROUTER = "mlops-test-router"
ROUTER_SITE = (
    "server {\n    listen 127.0.0.1:8000;\n    default_type text/plain;\n"
    "    location / {\n"
    '        return 200 "router: auth=[$http_authorization] from=[$http_x_forwarded_for]";\n'
    "    }\n}\n"
)


@pytest.fixture(scope="module")
def box(local_settings: BoxSettings, local_box: LocalProvider) -> Iterator[MlflowBox]:
    box = open_mlflow_box(local_settings, local_box)
    nginx.ensure_nginx(box.conn)
    # The box is the session's: a real router another module left on 127.0.0.1:8000 would
    # answer in place of this stand-in (nginx takes the first server on a port).
    box.fab("deploy.stop")  # refused when nothing was ever deployed: nothing to stop then
    nginx.ensure_site(box.conn, ROUTER, ROUTER_SITE)
    try:
        yield box
    finally:
        close_front_door(box.conn)
        nginx.remove_site(box.conn, ROUTER)
        box.conn.close()


@pytest.fixture
def client(box: MlflowBox) -> ClientFiles:
    """The front door open to this machine (box.local.subnet), and its files here."""
    open_front_door(
        box.conn, box.settings, box.provider, box.settings.local.subnet, say=lambda _: None
    )
    return ClientFiles.of(box.settings)


def key_pin(der: bytes) -> str:
    spki = (
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return "sha256//" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


def front_door_files(box: MlflowBox) -> dict[str, object]:
    paths = [f"/etc/nginx/conf.d/{SITE}.conf", TOKEN_FILE, STATE_FILE]
    return dict(files.probe(box.conn, paths))


def test_nothing_listens_publicly_until_the_front_door_opens(box: MlflowBox) -> None:
    close_front_door(box.conn)
    # nginx (with the stand-in router) and MLflow run, on loopback only.
    assert "127.0.0.1:8000" in box.sh("sudo ss -Hltn") and "127.0.0.1:5000" in box.sh(
        "sudo ss -Hltn"
    )
    assert public_listeners(box.conn) == []


def test_fab_deploy_expose_opens_it_and_its_curl_example_works(box: MlflowBox) -> None:
    close_front_door(box.conn)
    subnet = str(box.settings.local.subnet)

    opened = box.fab("deploy.expose", "--cidr", subnet)

    assert opened.returncode == 0, opened.stderr
    token = ClientFiles.of(box.settings).read_token()
    assert token not in opened.stdout + opened.stderr
    assert f"Front door open for {subnet}: https://{box.address}/" in opened.stdout
    assert public_listeners(box.conn) == ["0.0.0.0:443"]
    # The example as printed, in bash: TLS checked against the saved CA, the token by stdin.
    (example,) = [line for line in opened.stdout.splitlines() if line.strip().startswith("curl")]
    ran = subprocess.run(
        ["bash", "-c", example], capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("router: auth=[] from=[")
    again = box.fab("deploy.expose", "--cidr", subnet)
    assert again.returncode == 0 and "Nothing changed." in again.stdout


def test_without_the_token_401_with_it_200_over_verified_tls(
    box: MlflowBox, client: ClientFiles
) -> None:
    url = f"https://{box.address}/ping"
    token = client.read_token()

    status, headers, _ = https_get(url, client.ca)
    assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="mlops-box"'
    assert https_get(url, client.ca, token=token[:-1] + "x")[0] == 401
    status, _, body = https_get(url, client.ca, token=token)
    assert status == 200
    # The credential stops at the front door; the router learns who asked.
    host_side = ipaddress.IPv4Network((box.address, 30), strict=False)[1]
    assert body == f"router: auth=[] from=[{host_side}]"


def test_the_served_certificate_is_the_pinned_one(box: MlflowBox, client: ClientFiles) -> None:
    pinned = client.pinned()
    assert pinned is not None and box.address in pinned.names

    served = served_certificate(box.address, 443, client.ca)

    assert hashlib.sha256(served).hexdigest() == pinned.cert_sha256
    assert key_pin(served) == pinned.key_pin


def test_the_token_is_root_only_on_the_box_and_0600_here(
    box: MlflowBox, client: ClientFiles
) -> None:
    token = client.read_token()
    assert client.token.stat().st_mode & 0o777 == 0o600
    assert files_holding(box, [token]) == [f"600 root {TOKEN_FILE}"]
    assert token not in box.sh("ps -eo args")
    assert box.sh("sudo stat -c '%a %U' /etc/mlops-box/front-door/server.key").strip() == (
        "600 root"
    )


def test_mlflows_client_logs_and_reads_back_through_the_front_door(
    box: MlflowBox, client: ClientFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(client.ca))
    mlflow.set_tracking_uri(f"https://{box.address}/mlflow")
    try:
        with pytest.raises(MlflowException, match="401"):
            mlflow.search_experiments(max_results=1)
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", client.read_token())
        run_id = log_a_run()
        run = mlflow.get_run(run_id)
        assert run.data.metrics["rmse"] == 0.25
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/notes/hello.txt")
        assert text == "hello from the controller"
    finally:
        mlflow.set_tracking_uri(None)


def test_a_client_outside_the_network_is_turned_away(box: MlflowBox, client: ClientFiles) -> None:
    elsewhere = ipaddress.IPv4Network("192.0.2.0/24")

    exposure = open_front_door(box.conn, box.settings, box.provider, elsewhere, say=print)

    assert not exposure.access.allowed
    assert f"Give --cidr {box.settings.local.subnet}" in str(exposure.access.follow_up)
    url = f"https://{box.address}/ping"
    assert https_get(url, client.ca, token=client.read_token())[0] == 403


def test_bad_input_changes_nothing_on_the_box(box: MlflowBox, client: ClientFiles) -> None:
    before = front_door_files(box)
    for args in (["--cidr", "10.213.0.1/16"], ["--cidr", "2001:db8::/64"], []):
        refused = box.fab("deploy.expose", *args)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert front_door_files(box) == before


def test_a_new_start_gets_a_certificate_for_the_new_address_and_the_same_key(
    box: MlflowBox, client: ClientFiles
) -> None:
    pinned = client.pinned()
    assert pinned is not None
    old_address = box.address

    box.provider.stop(timeout_s=60)
    box.start()  # a fresh /30: a new address, as on EC2; no deploy.expose since

    assert box.address != old_address
    served = served_certificate(box.address, 443, client.ca)
    assert key_pin(served) == pinned.key_pin
    assert hashlib.sha256(served).hexdigest() != pinned.cert_sha256
    url = f"https://{box.address}/ping"
    assert https_get(url, client.ca)[0] == 401
    assert https_get(url, client.ca, token=client.read_token())[0] == 200


def test_off_closes_it_and_a_new_expose_keeps_the_token(
    box: MlflowBox, client: ClientFiles
) -> None:
    token = client.read_token()

    closed = box.fab("deploy.expose", "--off")

    assert closed.returncode == 0, closed.stderr
    assert "nothing listens on port 443" in closed.stdout
    assert public_listeners(box.conn) == []
    assert all(state is None for state in front_door_files(box).values())
    with pytest.raises(OSError):
        served_certificate(box.address, 443, client.ca)
    again = box.fab("deploy.expose", "--off")
    assert again.returncode == 0 and "it was closed" in again.stdout
    # This machine kept the token and the CA: clients need nothing new when it reopens.
    open_front_door(box.conn, box.settings, box.provider, box.settings.local.subnet)
    assert client.read_token() == token
    url = f"https://{box.address}/ping"
    assert https_get(url, client.ca, token=token)[0] == 200
