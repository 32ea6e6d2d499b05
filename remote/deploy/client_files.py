"""What a client of the front door needs, kept on this machine in box.secrets_dir
(~/.config/mlops-box by default), one set per box:

  <name>-token            the bearer token (0600): made once here, copied to the box into
                          a root-only file; never in argv, a log line or a message
  <name>-ca.pem           the box's CA certificate, for `curl --cacert` / `verify=`
  <name>-front-door.json  what was pinned: the server key (curl's --pinnedpubkey form,
                          stable across the re-issues every address change brings), the
                          certificate's and the CA's SHA-256 fingerprints, the names
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remote.deploy.front_door import check_token
from remote.local_files import locked, read_or_make_secret, write_atomically
from remote.settings import BoxSettings

TOKEN_BYTES = 32


@dataclass(frozen=True)
class Pin:
    """The front door's identity as the box reported it over the pinned SSH connection."""

    key_pin: str  # sha256//<base64 of the public key's sha256>
    cert_sha256: str
    ca_sha256: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class ClientFiles:
    token: Path
    ca: Path
    pin: Path

    @classmethod
    def of(cls, settings: BoxSettings) -> ClientFiles:
        where, name = settings.secrets_dir, settings.name
        return cls(
            token=where / f"{name}-token",
            ca=where / f"{name}-ca.pem",
            pin=where / f"{name}-front-door.json",
        )

    def read_token(self) -> str:
        """The box's bearer token, made once (0600) and read back every time after."""
        return check_token(read_or_make_secret(self.token, _new_token))

    def pinned(self) -> Pin | None:
        """The pin saved last time, None if there is none (or it is unreadable)."""
        try:
            data: dict[str, Any] = json.loads(self.pin.read_text())
            return Pin(
                str(data["key_pin"]),
                str(data["cert_sha256"]),
                str(data["ca_sha256"]),
                tuple(data["names"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, ca_pem: bytes, pin: Pin) -> None:
        """Keep the CA certificate and the pin (public, so 0644 in the 0700 directory)."""
        self.pin.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with locked(self.pin.with_name(f".{self.pin.name}.lock")):
            write_atomically(self.ca, ca_pem, 0o644)
            record = {
                "key_pin": pin.key_pin,
                "cert_sha256": pin.cert_sha256,
                "ca_sha256": pin.ca_sha256,
                "names": list(pin.names),
            }
            write_atomically(self.pin, (json.dumps(record, indent=2) + "\n").encode(), 0o644)


def _new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)
