"""Files the agent keeps on the box: written whole or not at all, and one lock per writer.

A reader (the controller's `cat`, a crash, a power-off) sees the old file or the new
one, never a part: a temp file next to it is fsync'd, renamed over it, and the directory
fsync'd, so the rename itself survives a power-off that follows at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any


def write_json(path: str, data: Any, mode: int = 0o644) -> None:
    """Write `data` as JSON to `path` atomically and durably."""
    write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n", mode)


def write_text(path: str, text: str, mode: int = 0o644, dir_mode: int = 0o755) -> None:
    """Write `text` to `path` atomically and durably, mode `mode` from its first byte (the
    temp file is made 0600); its directory is made with `dir_mode` if it is missing."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=dir_mode, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_json(path: str) -> Any:
    """The JSON in `path`, None when there is no such file; ValueError when it is not JSON."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def flocked(path: str, *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive flock on `path` (made if absent) so writers take turns; with
    blocking=False, yield False at once when another holds it."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
