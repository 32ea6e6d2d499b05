"""The front door's certificate as the agent makes it, with this machine's real openssl,
checked by Python's own TLS stack in a real handshake.

What stands in for the box: its names (the tests say which addresses the box has), and
a small HTTP server playing EC2's instance metadata service, which only EC2 has.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from remote.agent.deploy import front_door as front_door_tls
from remote.agent.system.failure import AgentFailure

AWS_NAME = "ec2-198-51-100-7.compute-1.amazonaws.com"


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The box's names; a test changes the list as a new start would."""
    current = ["127.0.0.1", AWS_NAME]
    monkeypatch.setattr(front_door_tls, "box_names", lambda: list(current))
    return current


def handshake(where: Path, server_name: str) -> bytes:
    """Serve where/server.pem on loopback and connect to it as `server_name`, trusting only
    where/ca.pem; the certificate the server sent (DER)."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(where / "server.pem", where / "server.key")
    client = ssl.create_default_context(cafile=str(where / "ca.pem"))
    client.verify_flags |= ssl.VERIFY_X509_STRICT
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def accept() -> None:
            conn, _ = listener.accept()
            try:
                with server.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                client.wrap_socket(raw, server_hostname=server_name) as tls,
            ):
                der = tls.getpeercert(binary_form=True)
                assert der is not None
                return der
        finally:
            thread.join(timeout=10)


def key_pin(der: bytes) -> str:
    public = x509.load_der_x509_certificate(der).public_key()
    spki = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256//" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


def test_the_first_run_makes_a_ca_a_key_and_a_certificate_for_the_box(
    tmp_path: Path, names: list[str]
) -> None:
    where = tmp_path / "front-door"

    made = front_door_tls.ensure_certificate(str(where))

    assert made["changed"] == ["CA", "server key", "certificate"]
    assert made["names"] == names
    served = handshake(where, "127.0.0.1")
    assert hashlib.sha256(served).hexdigest() == made["cert_sha256"]
    assert key_pin(served) == made["key_pin"]
    alt = x509.load_der_x509_certificate(served).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert alt.value.get_values_for_type(x509.DNSName) == [AWS_NAME]
    # Python 3.13 and newer verify strictly by default, which wants this extension.
    assert x509.load_der_x509_certificate(served).extensions.get_extension_for_class(
        x509.AuthorityKeyIdentifier
    )
    # The keys never leave their root-only files.
    assert where.stat().st_mode & 0o777 == 0o700
    for private in ("ca.key", "server.key"):
        assert (where / private).stat().st_mode & 0o777 == 0o600
    assert (where / "ca.pem").stat().st_mode & 0o777 == 0o644


def test_a_second_run_changes_nothing(tmp_path: Path, names: list[str]) -> None:
    where = tmp_path / "front-door"
    first = front_door_tls.ensure_certificate(str(where))
    before = {p.name: p.stat().st_mtime_ns for p in where.iterdir()}

    again = front_door_tls.ensure_certificate(str(where))

    assert again["changed"] == []
    assert again["cert_sha256"] == first["cert_sha256"]
    assert {p.name: p.stat().st_mtime_ns for p in where.iterdir()} == before


def test_a_new_address_gets_a_new_certificate_for_the_same_key(
    tmp_path: Path, names: list[str]
) -> None:
    where = tmp_path / "front-door"
    first = front_door_tls.ensure_certificate(str(where))
    names[0] = "127.0.0.2"  # the box started again, with another address

    moved = front_door_tls.ensure_certificate(str(where))

    assert moved["changed"] == ["certificate"]
    assert moved["key_pin"] == first["key_pin"]
    assert moved["cert_sha256"] != first["cert_sha256"]
    assert handshake(where, "127.0.0.2")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(where, "127.0.0.1")


def test_a_new_ca_and_a_certificate_near_its_end_are_reissued(
    tmp_path: Path, names: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    where = tmp_path / "front-door"
    first = front_door_tls.ensure_certificate(str(where))
    (where / "ca.key").unlink()

    renewed = front_door_tls.ensure_certificate(str(where))

    assert renewed["changed"] == ["CA", "certificate"]
    assert renewed["ca_sha256"] != first["ca_sha256"]
    assert renewed["key_pin"] == first["key_pin"]
    assert handshake(where, AWS_NAME)
    monkeypatch.setattr(front_door_tls, "RENEW_BEFORE_S", (front_door_tls.SERVER_DAYS + 1) * 86400)
    assert front_door_tls.ensure_certificate(str(where))["changed"] == ["certificate"]


def test_a_box_without_an_address_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(front_door_tls, "box_names", list)
    with pytest.raises(AgentFailure) as failure:
        front_door_tls.ensure_certificate(str(tmp_path / "front-door"))
    assert failure.value.kind == "no-address"
    assert not (tmp_path / "front-door" / "ca.key").exists()


def test_interface_addresses_are_the_global_unicast_ones() -> None:
    shown = [
        {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "scope": "host"}]},
        {
            "ifname": "eth0",
            "addr_info": [
                {"family": "inet", "local": "172.31.5.9", "scope": "global"},
                {"family": "inet6", "local": "fe80::1", "scope": "link"},
                {"family": "inet6", "local": "2001:db8::5", "scope": "global"},
                {"family": "inet", "local": "10.0.0.1", "scope": "global"},
            ],
        },
    ]
    assert front_door_tls.interface_addresses(json.dumps(shown)) == [
        "10.0.0.1",
        "172.31.5.9",
        "2001:db8::5",
    ]


class FakeMetadata(http.server.BaseHTTPRequestHandler):
    """EC2's IMDSv2, as far as the agent uses it: a token by PUT, then two items by GET."""

    items: ClassVar[dict[str, str]] = {}

    def do_PUT(self) -> None:
        self._answer(200, "a-token" if self.path == "/latest/api/token" else "")

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != "a-token":
            self._answer(401, "")
            return
        item = self.path.removeprefix("/latest/meta-data/")
        self._answer(200, self.items[item]) if item in self.items else self._answer(404, "")

    def _answer(self, status: int, body: str) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def metadata() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeMetadata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/latest"
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ({"public-ipv4": "198.51.100.7", "public-hostname": AWS_NAME}, ["198.51.100.7", AWS_NAME]),
        ({}, []),  # no public address: 404s
        ({"public-ipv4": "not an address", "public-hostname": "bad name!"}, []),
    ],
)
def test_ec2_public_names_come_from_imdsv2(
    metadata: str, items: dict[str, str], expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeMetadata, "items", items)
    assert front_door_tls.ec2_public_names(metadata) == expected


def test_off_ec2_there_are_no_public_names() -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    assert front_door_tls.ec2_public_names(f"http://127.0.0.1:{port}/latest") == []
