"""Files on this machine (the controller): atomic writes and one lock, used everywhere.

The ssh entry, known_hosts, keys, the local box's run record and the files written
into its root file system all go through `write_atomically`; every writer that two
`fab` runs could race on holds `locked`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from remote.errors import ConfigError


def write_atomically(
    path: Path,
    data: bytes,
    mode: int,
    *,
    replace: bool = True,
    owner: tuple[int, int] | None = None,
) -> None:
    """Put `data` at `path` with `mode` (and `owner` as uid, gid), complete or not at all.

    The data goes to a temp file in the same directory, is fsync'd, then renamed over
    `path` (replace=True), or hard-linked to it (replace=False), which fails with
    FileExistsError when `path` exists, so two runs never both create it. The directory
    is fsync'd too, so the rename itself survives a crash. Raises OSError.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            if owner is not None:
                os.fchown(handle.fileno(), *owner)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created 0600, with its directory, if needed)
    so writers take turns."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def read_or_make_secret(path: Path, make: Callable[[], str]) -> str:
    """The secret kept 0600 in `path`: made once by `make` (two racing runs keep the
    first), then read. ConfigError if others may read the file."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            write_atomically(path, (make() + "\n").encode(), 0o600, replace=False)
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path} is readable by others: `chmod 600 {path}` and run again.")
    return path.read_text().strip()


def output_folder(text: str, flag: str = "--out") -> Path:
    """The folder a download goes into, checked before anything runs: a folder, or a path
    whose nearest existing parent is a folder this user can write in."""
    path = Path(text).expanduser().absolute()
    if not text.strip() or "\x00" in text:
        raise ConfigError(f"{flag} is {text!r}: give a folder for the downloaded files.")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file, not a folder: give a folder (or a new path).")
    existing = next(parent for parent in (path, *path.parents) if parent.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: {existing} is not a folder you can write in.")
    return path
