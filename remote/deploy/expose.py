"""Open or close the TLS front door on the box (`fab deploy.expose [--cidr N | --off]`).

`open_front_door`, in order:
  1. (the caller parsed --cidr) the token on this machine, read or made once (0600);
  2. the provider says whether the box's firewall admits the network (read only: on AWS
     the rule comes from the stack's httpsAllowedCidrs);
  3. on the box: nginx without its default site; the certificate unit, which runs at every
     boot before nginx; the agent's `front-door-cert` (CA, key, and a certificate for the
     box's names of this start), which must count the address we reach the box at;
  4. the site, the token file (0600 root) and the state file through one `ensure_site`:
     `nginx -t`, then a graceful reload; a failed check leaves the old files in place;
  5. a check on the box itself, over loopback: TLS verified against the CA for the box's
     address with the pinned key, and a request without the token refused (401);
  6. the CA certificate and the pin saved on this machine, next to the token.
A second run on an open front door changes nothing and says so. `expose` is the task's
whole work: the arguments checked, then one of the two, over one connection.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import shlex
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from remote.agent.deploy import commands as deploy_cmds
from remote.changes import Changed
from remote.deploy import front_door
from remote.deploy.client_files import ClientFiles, Pin
from remote.deploy.front_door import (
    CA_FILE,
    CERT_UNIT,
    FRONT_DOOR_DIR,
    MLFLOW_PATH,
    PORT,
    SITE,
    STATE_FILE,
    TOKEN_FILE,
    parse_cidr,
)
from remote.errors import ConfigError, MlopsBoxError, WaitTimeout
from remote.providers.base import AccessCheck, Provider
from remote.settings import BoxSettings, expand_home
from remote.ssh.connection import box_connection
from remote.system import files, nginx, systemd
from remote.system.agent import run_agent
from remote.system.files import RemoteFile
from remote.system.run import Connection, check, run, sudo, tail
from remote.waiting import wait_for

CHECK_TIMEOUT_S = 30


class FrontDoorError(MlopsBoxError):
    """The front door could not be opened, checked or closed on the box."""


@dataclass(frozen=True)
class Exposure:
    """An open front door, as `deploy.expose` reports it."""

    url: str
    cidr: ipaddress.IPv4Network
    client: ClientFiles
    pin: Pin
    access: AccessCheck
    changed: Changed
    key_changed: bool  # the box's key is not the one pinned before

    @property
    def mlflow_url(self) -> str:
        return f"{self.url}{MLFLOW_PATH}"

    def describe(self) -> list[str]:
        token, ca = _home(self.client.token), _home(self.client.ca)
        lines = [
            f"Front door open for {self.cidr}: {self.url}/ (models, 502 until one is "
            f"deployed) and {self.mlflow_url} (MLflow), TLS with a bearer token.",
            f"  token {token} (0600, never shown); CA {ca}",
            f"  pinned server key {self.pin.key_pin}; certificate SHA-256 "
            f"{self.pin.cert_sha256[:16]}... ({_home(self.client.pin)})",
            "Try it (the token goes through stdin, never the command line):",
            f"  curl --cacert {ca} -H @- {self.url}/ping "
            f'<<< "Authorization: Bearer $(cat {token})"',
            "MLflow's client:",
            f"  export MLFLOW_TRACKING_URI={self.mlflow_url} "
            f'MLFLOW_TRACKING_SERVER_CERT_PATH={ca} MLFLOW_TRACKING_TOKEN="$(cat {token})"',
            self.access.summary,
        ]
        if self.key_changed:
            lines.append(
                "Note: the box's front-door key is not the one pinned before (a new box?); "
                "the new pin is saved."
            )
        if self.access.follow_up:
            lines.append(self.access.follow_up)
        return lines


def expose(
    settings: BoxSettings,
    provider: Provider,
    *,
    cidr: str = "",
    off: bool = False,
    say: Callable[[str], None] = print,
) -> list[str]:
    """Open the front door for `cidr`, or close it (`off`); the lines that say what happened.

    The arguments are checked before the box is asked anything.
    """
    if off == bool(cidr):
        raise ConfigError(
            "Give --cidr NETWORK (e.g. 203.0.113.7/32) to open the front door, or --off to "
            "close it."
        )
    network = parse_cidr(cidr) if cidr else None
    if network is None:  # --off
        with box_connection(settings, provider) as conn:
            changed = close_front_door(conn)
        done = f"removed {changed}" if changed else "it was closed"
        return [f"Front door of {settings.name} closed ({done}): nothing listens on port {PORT}."]
    with box_connection(settings, provider) as conn:
        exposure = open_front_door(conn, settings, provider, network, say=say)
    return [
        f"Changed: {exposure.changed}" if exposure.changed else "Nothing changed.",
        *exposure.describe(),
    ]


def open_front_door(
    conn: Connection,
    settings: BoxSettings,
    provider: Provider,
    cidr: ipaddress.IPv4Network,
    *,
    say: Callable[[str], None] = print,
) -> Exposure:
    """Serve the router and MLflow on 443 to `cidr`, with TLS and the bearer token."""
    client = ClientFiles.of(settings)
    token = client.read_token()
    access = provider.front_door_access(cidr)
    address = provider.address()
    changed = nginx.ensure_nginx(conn, say=say)
    changed.merge(
        systemd.ensure_unit(
            conn, CERT_UNIT, front_door.render_cert_unit(), start=False, error=FrontDoorError
        )
    )
    answer = run_agent(
        conn, deploy_cmds.FRONT_DOOR_CERT, "--dir", FRONT_DOOR_DIR, error=FrontDoorError
    )
    pin = Pin(
        key_pin=str(answer["key_pin"]),
        cert_sha256=str(answer["cert_sha256"]),
        ca_sha256=str(answer["ca_sha256"]),
        names=tuple(str(n) for n in answer["names"]),
    )
    for made in answer["changed"]:
        changed.add(f"front door {made}")
    if address not in pin.names:
        raise FrontDoorError(
            f"The box does not count {address}, where this machine reaches it, among its "
            f"addresses ({', '.join(pin.names)}), so its certificate cannot name it. On EC2 "
            "the public address comes from the instance metadata service: check that it is on."
        )
    site = nginx.ensure_site(
        conn,
        SITE,
        front_door.render_site(cidr),
        companions=[
            RemoteFile(TOKEN_FILE, front_door.render_token(token).encode(), 0o600),
            RemoteFile(STATE_FILE, front_door.render_state(cidr).encode(), 0o644),
        ],
        error=FrontDoorError,
    )
    if answer["changed"] and not site:
        nginx.reload(conn, error=FrontDoorError)  # the new certificate, same configuration
    changed.merge(site)
    url = front_door.base_url(address)
    _check_on_box(conn, url, address, pin.key_pin)
    ca_pem = run(conn, sudo(f"cat {CA_FILE}"), what="read the CA", error=FrontDoorError)
    if _sha256(ca_pem) != pin.ca_sha256:
        raise FrontDoorError(f"{CA_FILE} on the box changed while it was read: run again.")
    before = client.pinned()
    client.save(ca_pem.encode(), pin)
    key_changed = before is not None and before.key_pin != pin.key_pin
    return Exposure(url, cidr, client, pin, access, changed, key_changed)


def close_front_door(conn: Connection) -> Changed:
    """Remove the front door (its site, the token on the box, the boot-time unit); the CA
    and the key stay for the next `deploy.expose`. Checks that nothing listens on 443."""
    changed = nginx.remove_site(conn, SITE, companions=[TOKEN_FILE, STATE_FILE])
    if systemd.state(conn, CERT_UNIT).enabled:
        systemd.systemctl(conn, "disable", CERT_UNIT, error=FrontDoorError)
        changed.add(f"{CERT_UNIT} disabled")
    listening = check(conn, sudo(f"ss -Hltnp 'sport = :{PORT}'"))
    if listening.stdout.strip():
        raise FrontDoorError(
            f"The front door is removed, but something else still listens on port {PORT}: "
            f"{' '.join(listening.stdout.split())[:200]}."
        )
    return changed


def current_cidr(conn: Connection) -> ipaddress.IPv4Network | None:
    """The network the open front door admits; None when it is closed."""
    if files.probe(conn, [STATE_FILE])[STATE_FILE] is None:
        return None
    text = run(conn, sudo(f"cat {STATE_FILE}"), what="read the front door's state")
    try:
        return ipaddress.IPv4Network(json.loads(text)["cidr"])
    except (ValueError, KeyError, TypeError):
        raise FrontDoorError(
            f"{STATE_FILE} on the box is damaged: run `fab deploy.expose --cidr <network>`."
        ) from None


def _check_on_box(conn: Connection, url: str, address: str, key_pin: str) -> None:
    """From the box to itself over loopback, as a client at `url` sees it: the certificate
    verifies for `address` against the CA, carries the pinned key, and no token means 401."""
    host = f"[{address}]" if ":" in address else address
    curl = shlex.join(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
            "--cacert",
            CA_FILE,
            "--pinnedpubkey",
            key_pin,
            "--connect-to",
            f"{host}:{PORT}:127.0.0.1:{PORT}",
            f"{url}/",
        ]
    )
    last = ""

    def refused_without_token() -> bool | None:
        nonlocal last
        result = check(conn, sudo(curl))
        last = result.stdout.strip() if result.ok else tail(result)
        return True if last == "401" else None

    try:
        wait_for(
            refused_without_token,
            what=f"the front door at {url} to answer 401 without a token",
            timeout_s=CHECK_TIMEOUT_S,
            poll_s=1.0,
        )
    except WaitTimeout:
        raise FrontDoorError(
            f"The front door at {url} does not answer as it should (a request without the "
            f"token got: {last or 'nothing'}). See `journalctl -u nginx` on the box."
        ) from None


def _sha256(pem: str) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def _home(path: Path) -> str:
    """A path as a person types it: ~/... for one in the home directory."""
    home = expand_home("~")
    return f"~/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)
