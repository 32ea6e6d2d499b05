"""The TLS front door as files: what `fab deploy.expose` puts on the box, rendered here.

Pure functions only (no SSH). nginx listens on port 443 (contract.FRONT_DOOR_PORT) of
the box's IPv4 addresses, with a certificate made on the box for the box, and answers
only clients from the network the user gave (`--cidr`) that send the box's bearer token:

  https://<box>/          the router on 127.0.0.1:8000 (the models; 502 while none runs)
  https://<box>/mlflow/   MLflow on 127.0.0.1:5000: its REST API and artifacts, for a
                          client whose tracking URI is https://<box>/mlflow

Why MLflow sits under a path of 443 rather than on a port of its own: one port is one
firewall rule, and 443 is the port restrictive networks let out. MLflow's client keeps a
path in its tracking URI for every REST and artifact call, so nginx only cuts the prefix
off and MLflow needs no --static-prefix (whose artifact routes ignore the prefix). The
model server's /health and /version would collide with MLflow's at the root. MLflow's
web UI assumes it owns `/`, and a browser cannot send a bearer token anyway: the UI stays
on the SSH tunnel (`fab mlflow.ui`).
"""

from __future__ import annotations

import ipaddress
import json
import re

from remote import contract
from remote.errors import ConfigError
from remote.system import agent, templates

FRONT_DOOR_DIR = contract.FRONT_DOOR_DIR
CA_FILE = f"{FRONT_DOOR_DIR}/ca.pem"
CERT_FILE = f"{FRONT_DOOR_DIR}/server.pem"
KEY_FILE = f"{FRONT_DOOR_DIR}/server.key"
TOKEN_FILE = f"{FRONT_DOOR_DIR}/token.conf"
STATE_FILE = f"{FRONT_DOOR_DIR}/state.json"
SITE = "mlops-front-door"
CERT_UNIT = contract.FRONT_DOOR_CERT_UNIT
PORT = contract.FRONT_DOOR_PORT
MLFLOW_PATH = "/mlflow"
# secrets.token_urlsafe's alphabet: safe inside the nginx string it is compared with.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,256}")


def parse_cidr(text: str) -> ipaddress.IPv4Network:
    """The network `--cidr` names; ConfigError, in one sentence, for anything else."""
    value = text.strip()
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ConfigError(
            f"--cidr {value[:60]!r} is not a network: give one such as 203.0.113.7/32 "
            "(an address with /32 for one machine; host bits zero)."
        ) from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise ConfigError(
            f"--cidr {network} is IPv6: the front door listens on IPv4 only; give an IPv4 "
            "network such as 203.0.113.7/32."
        )
    return network


def check_token(token: str) -> str:
    if not _TOKEN.fullmatch(token):
        raise ConfigError(
            "The front door's token file does not hold a token (32 or more of A-Z a-z 0-9 _ -): "
            "delete it and run `fab deploy.expose` again to make a new one."
        )
    return token


def render_site(cidr: ipaddress.IPv4Network) -> str:
    return templates.render(
        "front-door.nginx.j2",
        port=PORT,
        cidr=str(cidr),
        cert=CERT_FILE,
        key=KEY_FILE,
        token_file=TOKEN_FILE,
        router_port=contract.ROUTER_PORT,
        mlflow_port=contract.MLFLOW_PORT,
        mlflow_path=MLFLOW_PATH,
    )


def render_token(token: str) -> str:
    return templates.render("front-door-token.nginx.j2", token=check_token(token))


def render_state(cidr: ipaddress.IPv4Network) -> str:
    """What the front door was opened to, read back by `mlflow.install --public`."""
    return json.dumps({"cidr": str(cidr), "port": PORT}, indent=2) + "\n"


def render_cert_unit() -> str:
    path, _ = agent.bundle()
    return templates.render(
        "front-door-cert.service.j2",
        agent=path,
        python=agent.SYSTEM_PYTHON,
        package=agent.PACKAGE,
        directory=FRONT_DOOR_DIR,
    )


def base_url(address: str) -> str:
    """https://<address> for a name or an IPv4 address (IPv6 in brackets)."""
    host = f"[{address}]" if ":" in address else address
    suffix = "" if PORT == 443 else f":{PORT}"
    return f"https://{host}{suffix}"
