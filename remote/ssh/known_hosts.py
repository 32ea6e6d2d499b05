"""The box's host key, pinned under its alias in the project's own known_hosts.

The box gets a new address at every start, so its key is kept under the alias that the
ssh entry names with HostKeyAlias, in `ssh.known_hosts_path` (OpenSSH's format, so that
`ssh <name>` and the project's Fabric connections check the same key).
"""

from __future__ import annotations

import contextlib

from paramiko.hostkeys import HostKeys

from remote.errors import SshConfigError
from remote.settings import BoxSettings
from remote.ssh import config_entry as ssh


def pinned_keys(settings: BoxSettings) -> list[tuple[str, str]]:
    """The (key type, base64 key) pairs pinned for the box's alias; empty if none."""
    path = ssh.known_hosts_path(settings)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise SshConfigError(
            f"Cannot read {path} ({exc.strerror}): fix its permissions or remove it."
        ) from None
    keys = []
    for line in data.decode(errors="replace").splitlines():
        fields = line.split()
        if len(fields) >= 3 and _names_alias(fields[0], settings.name):
            keys.append((fields[1], fields[2]))
    return keys


def pin_host_key(settings: BoxSettings, key_type: str, key_base64: str) -> None:
    """Append `<alias> <type> <key>` to the project's known_hosts, in OpenSSH's format."""
    path = ssh.known_hosts_path(settings)
    ssh.prepare_ssh_dir(settings)
    with ssh.locked(settings):
        ssh.make_private_dir(ssh.entry_dir(settings))
        current = ssh.wrap_os(path, "read", lambda: path.read_bytes() if path.exists() else b"")
        if current and not current.endswith(b"\n"):
            current += b"\n"
        line = f"{settings.name} {key_type} {key_base64}\n".encode()
        ssh.atomic_write(path, current + line, 0o600)


def forget_host_key(settings: BoxSettings) -> bool:
    """Drop every known_hosts line for the box's alias; return whether any was there."""
    path = ssh.known_hosts_path(settings)
    if not path.exists():
        return False
    with ssh.locked(settings):
        data = ssh.wrap_os(path, "read", path.read_bytes)
        lines = data.splitlines(keepends=True)
        kept = [ln for ln in lines if not _line_names_alias(ln, settings.name)]
        if len(kept) == len(lines):
            return False
        ssh.atomic_write(path, b"".join(kept), 0o600)
    return True


def _names_alias(names: str, alias: str) -> bool:
    for name in names.split(","):
        if name == alias:
            return True
        if name.startswith("|1|"):
            with contextlib.suppress(ValueError, AssertionError):
                if HostKeys.hash_host(alias, name) == name:
                    return True
    return False


def _line_names_alias(line: bytes, alias: str) -> bool:
    fields = line.decode(errors="replace").split()
    return len(fields) >= 3 and not fields[0].startswith("#") and _names_alias(fields[0], alias)
