"""The box's ssh Host entry and the one Include line that loads it.

Layout under `settings.ssh_dir` (normally ~/.ssh):

    config                  the user's file; we only ever add one Include line at its top
    mlops-box/<name>.conf   one Host entry per box, rendered from sshconfig.template
    mlops-box/known_hosts   host keys of all boxes, each under its alias (see known_hosts.py)
    .mlops-box.lock         flock'd while any of the above is rewritten

Every write is atomic (temp file in the same directory, fsync, os.replace), so a crash
leaves either the old or the new file, never half of one; and every check runs before
anything is created, so bad input changes nothing. (A little over 300 lines: the checks
of the user's files are the bulk of it, and belong beside the writes they guard.)
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import jinja2

from remote import local_files
from remote.errors import SshConfigError
from remote.settings import BoxSettings
from remote.system import templates

TEMPLATE_NAME = "sshconfig.template"
ENTRY_DIR = "mlops-box"
KNOWN_HOSTS_NAME = "known_hosts"
LOCK_NAME = ".mlops-box.lock"
# The template's first line starts with this; an entry file without it is not ours.
HEADER = "# Written by mlops-box"

T = TypeVar("T")

# An address ends up on a HostName line: refuse anything that could add config lines.
_ADDRESS = re.compile(r"[A-Za-z0-9._:-]+")
_USER = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]*")


def openssh_home() -> Path:
    """The home directory OpenSSH expands `~` to: the password database's, never $HOME.

    Under `sudo` (without -H), in CI, or in tests, $HOME can differ from it, so a `~`
    or a relative path in ssh config may point somewhere other than `settings.ssh_dir`.
    """
    return Path(pwd.getpwuid(os.getuid()).pw_dir)


def entry_dir(settings: BoxSettings) -> Path:
    return settings.ssh_dir / ENTRY_DIR


def entry_path(settings: BoxSettings) -> Path:
    """The box's own Host entry file: `<ssh_dir>/mlops-box/<name>.conf`."""
    return entry_dir(settings) / f"{settings.name}.conf"


def known_hosts_path(settings: BoxSettings) -> Path:
    """The project's known-hosts file, shared by all boxes (entries keyed by alias)."""
    return entry_dir(settings) / KNOWN_HOSTS_NAME


def config_path(settings: BoxSettings) -> Path:
    return settings.ssh_dir / "config"


def include_line(settings: BoxSettings) -> str:
    """The Include line for `<ssh_dir>/config`, without its line ending.

    The path is absolute: OpenSSH resolves a relative Include against ~/.ssh of the
    password-database home (see `openssh_home`), not against the directory of the file
    holding it, so a relative path would miss a non-default `box.ssh_dir` (and every
    test's fake one). The glob covers every box, so one line serves them all.
    """
    return f"Include {_ssh_path(entry_dir(settings).absolute() / '*.conf', tokens=False)}"


def render_entry(settings: BoxSettings, address: str) -> str:
    """Render the box's Host entry from sshconfig.template for `address`."""
    if not _ADDRESS.fullmatch(address):
        raise SshConfigError(
            f"The box address {address!r} is not a host name or IP address: "
            "check what the provider reports (`fab box.status`)."
        )
    if not _USER.fullmatch(settings.user):
        raise SshConfigError(
            f"box.user is {settings.user!r}: use a plain login name (letters, digits, "
            "'.', '_', '-')."
        )
    template_path = settings.project_dir / TEMPLATE_NAME
    try:
        source = template_path.read_text()
    except OSError as exc:
        raise SshConfigError(
            f"Cannot read {template_path} ({exc.strerror}): restore it from the repository."
        ) from None
    try:
        text = templates.render_source(
            source,
            provider=settings.provider,
            name=settings.name,
            address=address,
            user=settings.user,
            identity_file=_ssh_path(settings.key.absolute(), tokens=True),
            known_hosts=_ssh_path(known_hosts_path(settings).absolute(), tokens=True),
        )
    except jinja2.TemplateError as exc:
        raise SshConfigError(
            f"{template_path} does not render ({exc}): restore it from the repository."
        ) from None
    if not text.startswith(HEADER):
        raise SshConfigError(
            f"{template_path} must start with {HEADER!r} (it marks the entry as ours): "
            "restore it from the repository."
        )
    return text


def write_entry(settings: BoxSettings, address: str) -> bool:
    """Write the box's Host entry for `address`; return whether the file changed."""
    text = render_entry(settings, address)
    path = entry_path(settings)
    prepare_ssh_dir(settings)
    if _read_own_entry(path) == text.encode():
        return False
    with locked(settings):
        # Checked again under the lock: another run may have written it meanwhile.
        if _read_own_entry(path) == text.encode():
            return False
        make_private_dir(entry_dir(settings))
        atomic_write(path, text.encode(), 0o600)
    return True


def remove_entry(settings: BoxSettings) -> bool:
    """Delete the box's Host entry file if it is ours; return whether it existed.

    The Include line stays: its glob matches nothing once no box is left.
    """
    path = entry_path(settings)
    if _read_own_entry(path) is None:
        return False
    with locked(settings):
        wrap_os(path, "remove", path.unlink)
    return True


def ensure_include(settings: BoxSettings) -> bool:
    """Put the Include line at the very top of `<ssh_dir>/config`; return whether it changed.

    It must come first: OpenSSH takes the first value it sees for each option, and an
    Include placed after a `Host` or `Match` line only applies inside that block. So the
    line goes above everything, even comments; every other byte of the file is kept.
    """
    prepare_ssh_dir(settings)
    link = config_path(settings)
    target = _config_target(link)
    line = include_line(settings)
    with locked(settings):
        current = _read_config(target)
        if current is not None and _has_include(current, line):
            return False
        if current is None:
            atomic_write(target, f"{line}\n".encode(), 0o600)
            return True
        newline = b"\r\n" if current.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
        mode = stat.S_IMODE(target.stat().st_mode)
        atomic_write(target, line.encode() + newline + current, mode)
    return True


def update(settings: BoxSettings, address: str) -> bool:
    """Write the entry for `address` and the Include line; return whether anything changed."""
    changed = write_entry(settings, address)
    return ensure_include(settings) or changed


# --- the ssh directory's file primitives (known_hosts.py writes through them too) ------


def _ssh_path(path: Path, *, tokens: bool) -> str:
    """Spell `path` for ssh config: `%` escaped where ssh expands tokens, quoted if spaced."""
    text = str(path)
    if '"' in text or "\n" in text:
        raise SshConfigError(f"{text!r} cannot be written to ssh config: use a simpler path.")
    if tokens:
        text = text.replace("%", "%%")
    return f'"{text}"' if any(ch.isspace() for ch in text) else text


def _has_include(data: bytes, line: str) -> bool:
    """True if `line` is in config with only blank lines or comments above it."""
    for raw in data.decode(errors="replace").splitlines():
        stripped = raw.strip()
        if stripped == line:
            return True
        if stripped and not stripped.startswith("#"):
            return False
    return False


def prepare_ssh_dir(settings: BoxSettings) -> None:
    """Check `ssh_dir` can hold our files; create it 0700 (as OpenSSH users expect) if missing."""
    ssh_dir = settings.ssh_dir
    if ssh_dir.is_dir():
        _check_writable(ssh_dir, "directory")
        return
    if ssh_dir.exists() or ssh_dir.is_symlink():
        raise SshConfigError(
            f"{ssh_dir} is not a directory: move it away or set box.ssh_dir to a directory."
        )
    if not ssh_dir.parent.is_dir():
        raise SshConfigError(
            f"{ssh_dir} cannot be created because {ssh_dir.parent} is not a directory: "
            "set box.ssh_dir to a directory that exists or can be created."
        )
    _check_writable(ssh_dir.parent, "directory")
    make_private_dir(ssh_dir)


def _check_writable(path: Path, what: str) -> None:
    # Root passes every permission check, so the owner's write bit is also honoured:
    # a user who made their ssh config read-only meant "do not touch it".
    mode = path.stat().st_mode
    if not (mode & stat.S_IWUSR) or not os.access(path, os.W_OK, effective_ids=True):
        raise SshConfigError(
            f"The {what} {path} is not writable: make it writable (chmod u+w) and run again."
        )


def _read_own_entry(path: Path) -> bytes | None:
    """The entry file's bytes, None if absent; SshConfigError if the file is not ours."""
    if not path.exists() and not path.is_symlink():
        return None
    not_ours = SshConfigError(
        f"{path} exists but was not written by mlops-box: move it away (or rename the box) "
        "and run again."
    )
    if path.is_symlink() or not path.is_file():
        raise not_ours
    data = wrap_os(path, "read", path.read_bytes)
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise not_ours from None
    if not text.startswith(HEADER) or "\0" in text:
        raise not_ours
    _check_writable(path, "file")
    return data


def _config_target(link: Path) -> Path:
    """The file to rewrite for `config`: itself, or where its symlink chain ends.

    Dotfile managers symlink ~/.ssh/config; replacing the link with a file would detach
    it from their repository, so the link stays and its target is rewritten instead.
    """
    if not link.is_symlink():
        target = link
    else:
        target = Path(os.path.realpath(link))
        if not target.exists():
            raise SshConfigError(
                f"{link} is a symlink to {target}, which does not exist: create that file "
                "or remove the link."
            )
    if target.exists():
        if not target.is_file():
            raise SshConfigError(
                f"{target} is not a regular file: move it away so ssh config can be written."
            )
        _check_writable(target, "file")
        _check_writable(target.parent, "directory")
    return target


def _read_config(path: Path) -> bytes | None:
    if not path.exists():
        return None
    return wrap_os(path, "read", path.read_bytes)


def make_private_dir(path: Path) -> None:
    if path.is_dir():
        return
    if path.exists() or path.is_symlink():
        raise SshConfigError(f"{path} is not a directory: move it away and run again.")
    wrap_os(path, "create", lambda: path.mkdir(mode=0o700))
    os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask


def atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` with `data`, so readers see the old file or the new one, never a mix."""
    wrap_os(path, "write", lambda: local_files.write_atomically(path, data, mode))


@contextlib.contextmanager
def locked(settings: BoxSettings) -> Iterator[None]:
    """Serialise writers (two `fab` runs at once) on a lock file in ssh_dir."""
    lock = settings.ssh_dir / LOCK_NAME
    with contextlib.ExitStack() as stack:
        wrap_os(lock, "open", lambda: stack.enter_context(local_files.locked(lock)))
        yield


def wrap_os(path: Path, verb: str, action: Callable[[], T]) -> T:
    try:
        return action()
    except OSError as exc:
        raise SshConfigError(
            f"Cannot {verb} {path} ({exc.strerror}): fix its permissions and run again."
        ) from None
