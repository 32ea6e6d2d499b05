"""The box's ssh Host entry and the one Include line that loads it.

Layout under `settings.ssh_dir` (normally ~/.ssh):

    config                  the user's file; we only ever add one Include line at its top
    mlops-box/<name>.conf   one Host entry per box, rendered from sshconfig.template
    mlops-box/known_hosts   host keys of all boxes, each under its alias (see known_hosts.py)
    .mlops-box.lock         flock'd while any of the above is rewritten

Every write is atomic (ssh_dir.py: temp file in the same directory, fsync, os.replace),
so a crash leaves either the old or the new file, never half of one, and a rewritten file
keeps its owner and group. `preflight` runs every check the writes would make, writing
nothing, so a task can refuse bad input before it changes anything else (such as starting
a billed instance). Reading the user's own config (is the Include there, what else names
the box) is user_config.py.
"""

from __future__ import annotations

import os
import pwd
import re
import stat
from pathlib import Path

import jinja2

from remote.errors import SshConfigError
from remote.settings import BoxSettings, is_login_name
from remote.ssh import user_config
from remote.ssh.ssh_dir import (
    LOCK_NAME,
    atomic_write,
    check_ssh_dir,
    check_writable,
    config_target,
    locked,
    make_private_dir,
    prepare_ssh_dir,
    wrap_os,
)
from remote.system import templates

TEMPLATE_NAME = "sshconfig.template"
ENTRY_DIR = "mlops-box"
KNOWN_HOSTS_NAME = "known_hosts"
# The template's first line starts with this; an entry file without it is not ours.
HEADER = "# Written by mlops-box"
# The box's address is known only once it runs; `preflight` renders the entry with this
# stand-in (TEST-NET-1, never a real host) to prove the template and the user render.
PREFLIGHT_ADDRESS = "192.0.2.1"

# An address ends up on a HostName line: refuse anything that could add config lines.
_ADDRESS = re.compile(r"[A-Za-z0-9._:-]+")


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
    return f"Include {_ssh_path(_include_target(settings), tokens=False)}"


def _include_target(settings: BoxSettings) -> Path:
    return entry_dir(settings).absolute() / "*.conf"


def render_entry(settings: BoxSettings, address: str) -> str:
    """Render the box's Host entry from sshconfig.template for `address`."""
    if not _ADDRESS.fullmatch(address):
        raise SshConfigError(
            f"The box address {address!r} is not a host name or IP address: "
            "check what the provider reports (`fab box.status`)."
        )
    if not is_login_name(settings.user):
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


def preflight(settings: BoxSettings) -> None:
    """Run every check that writing the entry, the Include and a pinned key makes, and
    write nothing: SshConfigError for the first that fails.

    The ssh dir (or its parent) must be writable, the entry ours, the config and
    known_hosts regular writable files where they exist, and the entry must render.
    """
    render_entry(settings, PREFLIGHT_ADDRESS)
    check_ssh_dir(settings)
    directory = entry_dir(settings)
    if directory.exists() or directory.is_symlink():
        if not directory.is_dir():
            raise SshConfigError(f"{directory} is not a directory: move it away and run again.")
        check_writable(directory, "directory")
    _read_own_entry(entry_path(settings))
    config_target(config_path(settings))
    for path in (known_hosts_path(settings), settings.ssh_dir / LOCK_NAME):
        if path.exists() or path.is_symlink():
            if path.is_symlink() or not path.is_file():
                raise SshConfigError(f"{path} is not a regular file: move it away and run again.")
            check_writable(path, "file")


def shadowing_warnings(settings: BoxSettings) -> list[str]:
    """One line for each `Host` block of the user's that the box's entry overrides."""
    config = config_path(settings)
    blocks = user_config.shadowing_blocks(
        config,
        settings.name,
        ssh_dir=settings.ssh_dir,
        home=openssh_home(),
        ours=entry_dir(settings),
    )
    return [
        f"Warning: {block.path} line {block.line}, `{block.text}`, also matches "
        f"{settings.name}; the mlops-box entry, included at the top of {config}, comes "
        "first and wins: rename or remove that block."
        for block in blocks
    ]


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
    target = config_target(link)
    line = include_line(settings)
    with locked(settings):
        current = _read_config(target)
        if current is not None and user_config.include_at_top(
            target, current, str(_include_target(settings))
        ):
            return False
        if current is None:
            atomic_write(target, f"{line}\n".encode(), 0o600)
            return True
        newline = b"\r\n" if current.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
        mode = stat.S_IMODE(target.stat().st_mode)
        atomic_write(target, line.encode() + newline + current, mode)
    return True


def update(settings: BoxSettings, address: str) -> bool:
    """Write the entry for `address` and the Include line; return whether anything changed.

    Everything is checked first, so a refusal leaves both files as they were.
    """
    preflight(settings)
    changed = write_entry(settings, address)
    return ensure_include(settings) or changed


def _ssh_path(path: Path, *, tokens: bool) -> str:
    """Spell `path` for ssh config: `%` escaped where ssh expands tokens, quoted if spaced."""
    text = str(path)
    if '"' in text or "\n" in text:
        raise SshConfigError(f"{text!r} cannot be written to ssh config: use a simpler path.")
    if tokens:
        text = text.replace("%", "%%")
    return f'"{text}"' if any(ch.isspace() for ch in text) else text


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
    check_writable(path, "file")
    return data


def _read_config(path: Path) -> bytes | None:
    if not path.exists():
        return None
    return wrap_os(path, "read", path.read_bytes)
