"""The ssh key pair the box is reached with.

Paramiko cannot generate Ed25519 keys (its Ed25519Key only loads them), so the pair is
made with `cryptography`, paramiko's own dependency, and written in OpenSSH's formats:
no `ssh-keygen` needed on the controller.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from remote import local_files as files
from remote.errors import SshConfigError
from remote.settings import BoxSettings


def keygen(settings: BoxSettings) -> bool:
    """Create an Ed25519 key pair at `settings.key` unless it exists; return whether it did.

    The private key is 0600, the public key 0644 with the comment `mlops-box@<name>`,
    and a missing parent directory is created 0700.
    """
    private, public = settings.key, settings.public_key
    has_private, has_public = private.exists(), public.exists()
    if has_private and has_public:
        return False
    if has_private or has_public:
        present, missing = (private, public) if has_private else (public, private)
        raise SshConfigError(
            f"{present} exists but {missing} does not: restore the missing half "
            f"(`ssh-keygen -y -f {private} > {public}` recreates a public key) "
            "or remove the other, then run again."
        )
    key = Ed25519PrivateKey.generate()
    private_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public_bytes = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    try:
        _make_parent(private.parent)
        # Private first: a crash in between leaves a private key without its public half,
        # which the check above reports, rather than a public key nobody holds.
        # Exclusive (replace=False): two runs at once never both create the key.
        comment = f" mlops-box@{settings.name}\n".encode()
        files.write_atomically(private, private_bytes, 0o600, replace=False)
        files.write_atomically(public, public_bytes + comment, 0o644, replace=False)
    except FileExistsError:
        raise SshConfigError(
            f"{private} appeared while it was being created: another run is making it; "
            "run again once it has finished."
        ) from None
    except OSError as exc:
        raise SshConfigError(
            f"Cannot create the key {private} ({exc.strerror}): make {private.parent} "
            "writable or set box.key to a writable path."
        ) from None
    return True


def _make_parent(path: Path) -> None:
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o700)
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
