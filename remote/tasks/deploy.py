"""`fab deploy.*`: what serves on the box, and the TLS front door that exposes it."""

from __future__ import annotations

from typing import Any

from fabric import task
from invoke import Collection

from remote.deploy.expose import close_front_door, open_front_door
from remote.deploy.front_door import PORT, parse_cidr
from remote.errors import ConfigError
from remote.tasks._common import box_connection, box_of, say, user_errors


@task(
    help={
        "cidr": "The network allowed in, e.g. 203.0.113.7/32 (on AWS the security group "
        "must admit it too: httpsAllowedCidrs).",
        "off": "Close the front door: nothing listens on the box's public addresses again.",
    }
)
@user_errors
def expose(c: Any, cidr: str = "", off: bool = False) -> None:
    """Serve the models and MLflow on 443 with TLS and a bearer token, to CIDR only."""
    if off == bool(cidr):
        raise ConfigError(
            "Give --cidr NETWORK (e.g. 203.0.113.7/32) to open the front door, or --off to "
            "close it."
        )
    network = parse_cidr(cidr) if cidr else None
    settings, provider = box_of(c)
    if network is None:  # --off
        with box_connection(settings, provider) as conn:
            changed = close_front_door(conn)
        done = f"removed {changed}" if changed else "it was closed"
        say(f"Front door of {settings.name} closed ({done}): nothing listens on port {PORT}.")
        return
    with box_connection(settings, provider) as conn:
        exposure = open_front_door(conn, settings, provider, network, say=say)
    say(f"Changed: {exposure.changed}" if exposure.changed else "Nothing changed.")
    for line in exposure.describe():
        say(line)


deploy = Collection("deploy", expose)
