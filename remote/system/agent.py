"""Ship the on-box agent (remote/agent/) and run its commands.

The agent travels as one zip of its packages' modules (and the templates it renders on
the box, *.tmpl), named by the zip's content hash:
/opt/mlops-box/agent/<hash>.zip. It is uploaded only when that name is absent, so a
new version of the code is a new file and an unchanged one costs one probe. It runs as
`python -m mlops_agent <command>` with the zip on PYTHONPATH, under `systemd-run`, so
systemd itself reads the EnvironmentFile a command needs (secrets never pass through
argv or our code) and the command's user is set by systemd, not by sudo.
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import zipfile
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from remote.changes import Changed
from remote.contract import AGENT_DIR, SYSTEM_PYTHON
from remote.errors import MlopsBoxError
from remote.system import files
from remote.system.files import RemoteFile
from remote.system.run import Connection, check, sudo, tail

SOURCE_DIR = Path(__file__).resolve().parents[1] / "agent"
PACKAGE = "mlops_agent"  # the agent's package name on the box
DEFAULT_TIMEOUT_S = 600  # a schema upgrade of a big database can take minutes
# zip entries carry a time stamp; a fixed one keeps the bundle's hash a function of the code.
_EPOCH = (1980, 1, 1, 0, 0, 0)


class AgentError(MlopsBoxError):
    """An agent command failed in a way its caller has no narrower error for."""


def sources() -> list[Path]:
    """What the bundle holds: every module of the agent's packages and the data files
    (*.tmpl) they read, in a fixed order."""
    found = [*SOURCE_DIR.rglob("*.py"), *SOURCE_DIR.rglob("*.tmpl")]
    return sorted(p for p in found if "__pycache__" not in p.parts)


@cache
def bundle() -> tuple[str, bytes]:
    """The agent as (path on the box, zip bytes); the name is the zip's sha256."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for source in sources():
            name = source.relative_to(SOURCE_DIR).as_posix()
            entry = zipfile.ZipInfo(f"{PACKAGE}/{name}", _EPOCH)
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, source.read_bytes(), zipfile.ZIP_DEFLATED)
    data = buffer.getvalue()
    return f"{AGENT_DIR}/{hashlib.sha256(data).hexdigest()[:20]}.zip", data


def ensure_agent(conn: Connection) -> Changed:
    """Upload this version of the agent unless the box has it already."""
    path, data = bundle()
    changed = Changed()
    if check(conn, f"test -f {path}").ok:
        return changed
    check(conn, sudo(f"install -d -m 755 {AGENT_DIR}"))
    files.write(conn, RemoteFile(path, data, 0o644))
    changed.add(path)
    return changed


def unit_command(command: str, *args: str, python: str) -> str:
    """A unit's Exec line for `mlops_agent <command> <args>` from this version's bundle.

    The unit names the bundle by its hash, so it runs exactly the code it was written
    with; `ensure_agent` must have put that bundle on the box before the unit starts.
    """
    path, _ = bundle()
    argv = ["/usr/bin/env", f"PYTHONPATH={path}", python, "-m", PACKAGE, command, *args]
    return shlex.join(argv)


def run_agent(
    conn: Connection,
    command: str,
    *args: str,
    python: str = SYSTEM_PYTHON,
    env_file: str | None = None,
    user: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    errors: Mapping[str, type[MlopsBoxError]] | None = None,
    error: type[MlopsBoxError] = AgentError,
) -> dict[str, Any]:
    """Run `mlops_agent <command> <args>` on the box and return its JSON answer.

    A failure the agent reports raises `errors[kind]` (else `error`) with its sentence;
    an agent that did not answer at all raises `error` with its output's last lines.
    """
    ensure_agent(conn)
    path, _ = bundle()
    properties = [f"Environment=PYTHONPATH={path}"]
    if env_file:
        properties.append(f"EnvironmentFile={env_file}")
    if user:
        properties.append(f"User={user}")
    argv = [
        "systemd-run",
        "--quiet",
        "--wait",
        "--pipe",
        "--collect",
        *(f"--property={p}" for p in properties),
        python,
        "-m",
        PACKAGE,
        command,
        *args,
    ]
    result = check(conn, sudo(shlex.join(argv)), timeout_s=timeout_s)
    answer = _answer(result.stdout)
    if answer is None:
        raise error(
            f"The box's agent did not answer `{command}` ({tail(result)}): check that "
            f"{python} exists on the box."
        )
    if not answer.get("ok"):
        kind = str(answer.get("kind", ""))
        raise (errors or {}).get(kind, error)(str(answer.get("error", "unknown failure")))
    return answer


def _answer(stdout: str) -> dict[str, Any] | None:
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        answer = json.loads(lines[-1])
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None
