"""The ssh key pair the box is reached with.

Paramiko cannot generate Ed25519 keys (its Ed25519Key only loads them), so the pair is
made with `cryptography`, paramiko's own dependency, and written in OpenSSH's formats:
no `ssh-keygen` needed on the controller.
"""

from __future__ import annotations

import os
import shlex
import stat
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
    for path in (private, public):
        _refuse_dangling_link(path)
    has_private, has_public = private.exists(), public.exists()
    if has_private and has_public:
        check_private_key(private)
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


def check_private_key(path: Path) -> None:
    """Refuse a private key that ssh would refuse, or that is not there, before it is used.

    OpenSSH ignores a key that group or others may read or write ("UNPROTECTED PRIVATE
    KEY FILE"), so `ssh <name>` would fail with it even where paramiko would not.
    """
    _refuse_dangling_link(path)
    if not path.exists():
        raise SshConfigError(
            f"The private key {path} does not exist: run `fab box.keygen`, or set box.key "
            "(fabric.yaml or FABRIC_BOX_KEY) to the key the box was made with."
        )
    if not path.is_file():
        raise SshConfigError(
            f"The private key {path} is not a file: set box.key to the key file itself."
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SshConfigError(
            f"The private key {path} is open to other users (mode {mode:04o}) and ssh "
            f"refuses such a key: run `chmod 600 {shlex.quote(str(path))}` and run again."
        )


def _refuse_dangling_link(path: Path) -> None:
    if path.is_symlink() and not path.exists():
        raise SshConfigError(
            f"{path} is a symlink to {os.readlink(path)}, which does not exist: restore "
            "that file, or remove the link, and run again."
        )
