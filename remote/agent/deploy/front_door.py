"""The front door's certificate, made on the box for the box (`front-door-cert`).

A small CA, made once, signs a server certificate whose names are the box's addresses
now: its global interface addresses and, on EC2, its public IPv4 address and DNS name
(from the instance metadata service). The addresses change at every start, so this runs
before nginx at every boot (mlops-front-door-cert.service) and at every `deploy.expose`,
and issues a new certificate only when the names, the CA or the key changed, or the
certificate is within RENEW_BEFORE_S of its end. The server's key is made once and kept,
so its pin (the sha256 of its public key) stays valid across those re-issues.

Both private keys are made here (openssl writes them 0600, in a 0700 directory of root)
and never leave the box; clients get the CA's certificate. The crypto is `openssl`'s
(the standard library cannot make X.509).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..system.failure import AgentFailure

CA_DAYS = 3650
# Under the 398 days that browsers and Apple's TLS stack accept for a server certificate.
SERVER_DAYS = 397
RENEW_BEFORE_S = 30 * 86400
CURVE = "P-256"
IMDS = "http://169.254.169.254/latest"
IMDS_TIMEOUT_S = 1.0
COMMAND_TIMEOUT_S = 60
_DNS_NAME = re.compile(r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}")


def interface_addresses(ip_json: str) -> list[str]:
    """The global unicast addresses in `ip -j addr show` output, IPv4 first."""
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for link in json.loads(ip_json or "[]"):
        for info in link.get("addr_info", []):
            if info.get("scope") != "global" or info.get("family") not in ("inet", "inet6"):
                continue
            try:
                found.append(ipaddress.ip_address(str(info.get("local", ""))))
            except ValueError:
                continue
    ordered = sorted(set(found), key=lambda a: (a.version, int(a)))
    return [str(a) for a in ordered]


def ec2_public_names(base: str = IMDS, timeout_s: float = IMDS_TIMEOUT_S) -> list[str]:
    """The instance's public IPv4 address and DNS name (IMDSv2); [] off EC2."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        token_request = urllib.request.Request(
            f"{base}/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
        )
        with opener.open(token_request, timeout=timeout_s) as answer:
            token = answer.read(200).decode()
    except (urllib.error.URLError, OSError, ValueError):
        return []
    names = []
    for item in ("public-ipv4", "public-hostname"):
        request = urllib.request.Request(
            f"{base}/meta-data/{item}", headers={"X-aws-ec2-metadata-token": token}
        )
        try:
            with opener.open(request, timeout=timeout_s) as answer:
                value = answer.read(300).decode().strip().lower()
        except (urllib.error.URLError, OSError, ValueError):
            continue  # 404: the instance has no public address
        if value and (_is_ip(value) or _DNS_NAME.fullmatch(value)):
            names.append(value)
    return names


def box_names() -> list[str]:
    """The names the box is reached by now, without duplicates."""
    shown = _run(["ip", "-j", "address", "show"], "list the addresses").decode()
    names = interface_addresses(shown) + ec2_public_names()
    return list(dict.fromkeys(names))


def ensure_certificate(directory: str) -> dict[str, Any]:
    """Make the CA and the server key if absent; (re)issue the certificate if needed."""
    where = Path(directory)
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    names = box_names()
    if not names:
        raise AgentFailure("no-address", "The box has no global address to certify.")
    changed = []
    ca_key, ca_pem = where / "ca.key", where / "ca.pem"
    key, cert, issued = where / "server.key", where / "server.pem", where / "server.json"
    if not (ca_key.is_file() and ca_pem.is_file()):
        _make_ca(ca_key, ca_pem)
        changed.append("CA")
    if not key.is_file():
        _openssl("make the key", "genpkey -algorithm EC -pkeyopt {curve} -out {key}", key=key)
        changed.append("server key")
    record = {"names": names, "ca_sha256": _pem_sha256(ca_pem), "key_pin": _key_pin(key)}
    if not _still_good(cert, ca_pem, issued, record):
        _issue(key, cert, ca_key, ca_pem, names)
        issued.write_text(json.dumps(record, indent=2) + "\n")
        changed.append("certificate")
    for public in (ca_pem, cert):
        public.chmod(0o644)
    return {
        "changed": changed,
        "names": names,
        "cert_sha256": _pem_sha256(cert),
        "ca_sha256": record["ca_sha256"],
        "key_pin": record["key_pin"],
        "not_after": _not_after(cert),
    }


def _still_good(cert: Path, ca_pem: Path, issued: Path, record: dict[str, Any]) -> bool:
    """The certificate exists, was issued for these names, this CA and this key, verifies,
    and has more than RENEW_BEFORE_S to run."""
    try:
        if json.loads(issued.read_text()) != record or not cert.is_file():
            return False
    except (OSError, ValueError):
        return False
    try:
        _openssl("verify", "verify -CAfile {ca} {cert}", ca=ca_pem, cert=cert)
        _openssl("check", "x509 -checkend {s} -noout -in {cert}", s=str(RENEW_BEFORE_S), cert=cert)
    except AgentFailure:
        return False
    return True


def _make_ca(ca_key: Path, ca_pem: Path) -> None:
    config = (
        "[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = ca\n"
        f"[dn]\nCN = mlops-box front door CA ({_host()})\n"
        "[ca]\nbasicConstraints = critical, CA:TRUE, pathlen:0\n"
        "keyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp, "ca.cnf")
        conf.write_text(config)
        _openssl(
            "make the CA",
            "req -x509 -new -config {conf} -newkey ec -pkeyopt {curve} -nodes -sha256 "
            "-days {days} -keyout {key} -out {cert}",
            days=str(CA_DAYS),
            conf=conf,
            key=ca_key,
            cert=ca_pem,
        )


def _issue(key: Path, cert: Path, ca_key: Path, ca_pem: Path, names: list[str]) -> None:
    alt = ", ".join(f"IP:{n}" if _is_ip(n) else f"DNS:{n}" for n in names)
    config = (
        "[req]\ndistinguished_name = dn\nprompt = no\n"
        "[dn]\nCN = mlops-box front door\n"
        "[server]\nbasicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n"
        f"subjectAltName = {alt}\n"
        "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n"
    )
    serial = f"0x{secrets.randbits(127):032x}"  # positive, and never reused
    with tempfile.TemporaryDirectory() as tmp:
        conf, csr, new = Path(tmp, "server.cnf"), Path(tmp, "server.csr"), Path(tmp, "new.pem")
        conf.write_text(config)
        _openssl(
            "make the certificate request",
            "req -new -config {conf} -key {key} -out {csr}",
            conf=conf,
            key=key,
            csr=csr,
        )
        _openssl(
            "sign the certificate",
            "x509 -req -in {csr} -CA {ca} -CAkey {ca_key} -set_serial {serial} "
            "-days {days} -sha256 -extfile {conf} -extensions server -out {new}",
            days=str(SERVER_DAYS),
            csr=csr,
            ca=ca_pem,
            ca_key=ca_key,
            serial=serial,
            conf=conf,
            new=new,
        )
        staged = cert.with_name(cert.name + ".new")
        staged.write_bytes(new.read_bytes())
        os.replace(staged, cert)  # nginx reads it whole at its next reload


def _key_pin(key: Path) -> str:
    """curl's --pinnedpubkey form: sha256// and the base64 sha256 of the public key (DER)."""
    der = _openssl("read the server key", "pkey -in {key} -pubout -outform DER", key=key)
    return "sha256//" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def _pem_sha256(path: Path) -> str:
    """The certificate's SHA-256 fingerprint (of its DER form), in hex."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(path.read_text())).hexdigest()


def _not_after(cert: Path) -> str:
    end = _openssl("read the certificate", "x509 -enddate -noout -in {cert}", cert=cert)
    return end.decode().strip().removeprefix("notAfter=")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:40]


def _openssl(what: str, template: str, **values: Path | str) -> bytes:
    """`openssl` with the template's words, each formatted after the split (a path with a
    space stays one word); `{curve}` is the key type's parameter."""
    words = [w.format(curve=f"ec_paramgen_curve:{CURVE}", **values) for w in template.split()]
    return _run(["openssl", *words], what)


def _run(argv: list[str], what: str) -> bytes:
    """Run a command; its stdout, or AgentFailure("tls") with its last error lines."""
    try:
        done = subprocess.run(argv, capture_output=True, check=False, timeout=COMMAND_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AgentFailure("tls", f"Could not {what} on the box: {exc}.") from None
    if done.returncode != 0:
        errors = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise AgentFailure("tls", f"Could not {what} on the box: {' | '.join(errors)}.")
    return done.stdout
