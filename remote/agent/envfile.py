"""systemd EnvironmentFile lines, and writing a root-only file atomically.

Here, in the agent, because both sides write env files: the controller renders the
server's own (remote.mlflow.spec imports this), and the box's start step writes the
database's. The agent never imports controller code; the controller may import this.
"""

from __future__ import annotations

import os
import re
import tempfile

# Inside double quotes systemd's EnvironmentFile= takes a backslash only before these.
_NEED_ESCAPE = '"\\`$'
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def env_file_line(key: str, value: str) -> str:
    """One systemd EnvironmentFile line, `KEY="value"`, that reads back as exactly `value`.

    Double quotes keep spaces, `#`, `;`, `'` and `%` literal (an EnvironmentFile has no
    specifiers and no variable expansion); inside them a backslash is needed, and used,
    only before `"`, `\\`, `` ` `` and `$`. Newlines, carriage returns and NULs are refused:
    the file is line-oriented and no store URI needs them. No trailing newline.
    """
    if not _ENV_NAME.fullmatch(key):
        raise ValueError(f"{key!r} is not a valid environment variable name")
    if any(ch in value for ch in "\n\r\0"):
        raise ValueError(f"the value of {key} contains a newline, carriage return or NUL")
    escaped = "".join("\\" + ch if ch in _NEED_ESCAPE else ch for ch in value)
    return f'{key}="{escaped}"'


def write_private(path: str, text: str) -> None:
    """Replace `path` with `text`, mode 0600, owned by whoever runs this (root on the box).

    The content goes into a fresh 0600 file beside `path` (never a readable moment, never
    a half-written file in place), is synced, then renamed over it. The directory is made
    0700 if it is missing.
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, staged = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=directory)  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staged, path)
    except BaseException:
        if os.path.exists(staged):
            os.unlink(staged)
        raise
