"""The one way to fill a virtualenv on the box: through a wheelhouse.

`pip download` puts every wheel the requirements need into WHEELHOUSE, fetching only the
files not there yet; `pip install --no-index` then installs from it alone. On the local
box the wheelhouse is the host's, bind-mounted into every box, so a package crosses the
network once per machine. (pip's own HTTP cache cannot do this: the package index here
answers without cache headers, so pip stores nothing.) On EC2 it is a directory on the box.
"""

from __future__ import annotations

import hashlib
import secrets
import shlex
from collections.abc import Callable, Sequence

from invoke.exceptions import CommandTimedOut

from remote.changes import Changed
from remote.contract import ENVS_DIR
from remote.errors import MlopsBoxError
from remote.system.run import Connection, check, sh, sudo, tail

WHEELHOUSE = "/var/cache/mlops-box-pip/wheels"
# Written into a finished environment: its requirements, one per line.
READY_MARKER = ".mlops-box-ready"
PIP_TIMEOUT_S = 1800
# pip's lines worth showing while it works (its full output is hundreds of lines).
_PROGRESS = "'^(Collecting|Installing collected|Successfully|ERROR)'"
# What building an sdist needs, kept in the wheelhouse so an offline install can.
_BUILD_TOOLS = ("setuptools", "wheel")


class PipError(MlopsBoxError):
    """pip could not fill a virtualenv on the box."""


def pip_install(
    conn: Connection,
    venv: str,
    requirements: Sequence[str],
    *,
    say: Callable[[str], None],
    user: str = "root",
    timeout_s: float = PIP_TIMEOUT_S,
    error: type[MlopsBoxError] = PipError,
) -> None:
    """Install `requirements` into the existing venv `venv` (as `user`), via the wheelhouse.

    Raises `error` with pip's last lines when a requirement cannot be had. Shows pip's
    progress lines as it goes: a first download can take minutes.
    """
    pip = f"{shlex.quote(venv)}/bin/pip"
    reqs = " ".join(shlex.quote(r) for r in requirements)
    common = "--disable-pip-version-check --progress-bar off --no-input"
    prepare = check(conn, sudo(sh(f"install -d -m 755 {WHEELHOUSE} && chmod a+rX {WHEELHOUSE}")))
    if not prepare.ok:
        raise error(f"Could not prepare {WHEELHOUSE} on the box: {tail(prepare)}.")
    steps = [
        # As root: the wheelhouse is shared by every environment on the box.
        f"sudo -n -H {pip} download {common} --dest {WHEELHOUSE} --find-links {WHEELHOUSE} "
        f"{reqs} {' '.join(_BUILD_TOOLS)}",
        f"sudo -n -H -u {shlex.quote(user)} {pip} install {common} --no-index "
        f"--find-links {WHEELHOUSE} {reqs}",
    ]
    for step in steps:
        try:
            result = conn.run(
                f"{step} 2>&1 | grep --line-buffered -E {_PROGRESS} | cut -c1-160"
                "; exit ${PIPESTATUS[0]}",
                warn=True,
                timeout=timeout_s,
                shell="/bin/bash",
                out_stream=_Lines(say),
            )
        except CommandTimedOut:
            raise error(
                f"pip did not finish within {timeout_s:.0f}s: check the box's network to PyPI."
            ) from None
        if not result.ok:
            raise error(f"pip could not install {' '.join(requirements)}: {tail(result)}.")


def env_path(name: str, requirements: Sequence[str]) -> str:
    """Where the environment `name` with exactly these requirements lives: one per set."""
    key = hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()[:16]
    return f"{ENVS_DIR}/{name}-{key}"


def ensure_venv(
    conn: Connection,
    path: str,
    requirements: Sequence[str],
    *,
    say: Callable[[str], None],
    error: type[MlopsBoxError] = PipError,
) -> Changed:
    """Make the virtualenv `path` with `requirements` unless it is there, finished.

    It is built beside its place and renamed into it with its ready marker, so an
    environment that exists is always whole (an interrupted or failed build leaves only
    its own directory, removed on failure); a concurrent build of the same one is dropped.
    """
    changed = Changed()
    listing = "\n".join(sorted(requirements))
    found = check(conn, f"cat {shlex.quote(f'{path}/{READY_MARKER}')}")
    if found.ok and found.stdout.strip() == listing:
        return changed
    building = f"{path}.building-{secrets.token_hex(4)}"
    say(f"Building {path} (once): {' '.join(requirements)}")
    made = check(conn, sudo(sh(f"install -d -m 755 {ENVS_DIR} && python3 -m venv {building}")))
    if not made.ok:
        raise error(f"Could not make a virtualenv on the box: {tail(made)}.")
    try:
        pip_install(conn, building, requirements, say=say, error=error)
        marker = f"{building}/{READY_MARKER}"
        # `python -m venv` scripts name the build directory; nothing runs them, only
        # <env>/bin/python (a symlink), so the rename needs no rewriting.
        finish = (
            f"printf '%s' {shlex.quote(listing)} > {marker} && "
            f"{{ mv -T {building} {path} 2>/dev/null || rm -rf {building}; }}"
        )
        result = check(conn, sudo(sh(finish)))
        if not result.ok:
            raise error(f"Could not finish {path} on the box: {tail(result)}.")
    except BaseException:
        check(conn, sudo(f"rm -rf {shlex.quote(building)}"))
        raise
    changed.add(path)
    return changed


class _Lines:
    """A stream for Fabric's output that hands each complete line to `say`."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self._partial = ""

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            if line.strip():
                self._say(f"  {line.strip()}")
        return len(text)

    def flush(self) -> None:
        return None
