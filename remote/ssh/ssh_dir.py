"""The ssh directory's file primitives: config_entry.py and known_hosts.py write through them.

Checks that the directory and a file in it can be written (done before anything is
written), private directories, atomic writes that keep a file's owner and group, and the
one lock that writers in the directory take turns on.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from remote import local_files
from remote.errors import SshConfigError
from remote.settings import BoxSettings

LOCK_NAME = ".mlops-box.lock"

T = TypeVar("T")


def prepare_ssh_dir(settings: BoxSettings) -> None:
    """Check `ssh_dir` can hold our files; create it 0700 (as OpenSSH users expect) if missing."""
    check_ssh_dir(settings)
    if not settings.ssh_dir.is_dir():
        make_private_dir(settings.ssh_dir)


def check_ssh_dir(settings: BoxSettings) -> None:
    """SshConfigError unless `ssh_dir` is a writable directory or can be created."""
    ssh_dir = settings.ssh_dir
    if ssh_dir.is_dir():
        check_writable(ssh_dir, "directory")
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
    check_writable(ssh_dir.parent, "directory")


def check_writable(path: Path, what: str) -> None:
    """SshConfigError unless `path` (a `what`: file or directory) may be written."""
    # Root passes every permission check, so the owner's write bit is also honoured:
    # a user who made their ssh config read-only meant "do not touch it".
    mode = path.stat().st_mode
    if not (mode & stat.S_IWUSR) or not os.access(path, os.W_OK, effective_ids=True):
        raise SshConfigError(
            f"The {what} {path} is not writable: make it writable (chmod u+w) and run again."
        )


def config_target(link: Path) -> Path:
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
        check_writable(target, "file")
        check_writable(target.parent, "directory")
    return target


def make_private_dir(path: Path) -> None:
    if path.is_dir():
        return
    if path.exists() or path.is_symlink():
        raise SshConfigError(f"{path} is not a directory: move it away and run again.")
    wrap_os(path, "create", lambda: path.mkdir(mode=0o700))
    os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask


def atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` with `data`, so readers see the old file or the new one, never a mix.

    A file that exists keeps its owner and group: root rewriting a user's ~/.ssh/config
    must not leave it owned by root (OpenSSH would then refuse it).
    """
    try:
        st = path.stat()
        owner: tuple[int, int] | None = (st.st_uid, st.st_gid)
    except FileNotFoundError:
        owner = None
    if owner == (os.geteuid(), os.getegid()):
        owner = None  # ours already: no chown needed
    wrap_os(path, "write", lambda: local_files.write_atomically(path, data, mode, owner=owner))


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
