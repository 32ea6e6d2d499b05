"""systemd EnvironmentFile lines: `KEY="value"` that systemd reads back exactly.

Here, in the agent, because both sides write env files: the controller renders the
server's own (remote.mlflow.spec imports this), and the box's start step writes the
database's. The agent never imports controller code; the controller may import this.
"""

from __future__ import annotations

import re

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
