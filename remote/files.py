"""Writing controller-side files so that no reader ever sees half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, mode: int, *, replace: bool = True) -> None:
    """Put `data` at `path` with `mode`, complete or not at all.

    The data goes to a temp file in the same directory, is fsync'd, then renamed over
    `path` (replace=True), or hard-linked to it (replace=False), which fails with
    FileExistsError when `path` exists, so two runs never both create it. The directory
    is fsync'd too, so the rename itself survives a crash. Raises OSError.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
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
