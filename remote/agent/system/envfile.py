"""systemd EnvironmentFiles: `KEY="value"` lines that systemd reads back exactly.

The one env-file writer of both halves: the controller renders the MLflow server's and a
job's --env values (remote.mlflow.spec and remote.train.jobs import this); the agent
writes the database's, a slot's and a training job's. The agent never imports controller
code; the controller may import this.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

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


def env_file(values: Mapping[str, str], *, comment: str = "", lines: str = "") -> str:
    """A whole EnvironmentFile: a `# comment`, ready-made `lines`, then one line per value
    (later lines win, so `values` override `lines`)."""
    head = [f"# {comment}"] if comment else []
    body = [line for line in lines.splitlines() if line]
    return "\n".join([*head, *body, *(env_file_line(k, v) for k, v in values.items())]) + "\n"
