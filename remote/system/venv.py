"""The one way to fill a virtualenv on the box: exactly what a lock says, installed by uv.

- uv itself lives in a tool virtualenv of its own (UV_HOME): the release uv.lock gives this
  machine, installed by pip with its hashes, once per box.
- `resolve` turns requirements into a lock on the box (`uv pip compile --generate-hashes`,
  for the box's own Python), preferring a base lock's versions where they overlap, and
  keeps it under LOCKS_DIR: the same requirements get the same lock next month, until
  `upgrade` asks for a new one. Locks kept in the repository need no resolving.
- `ensure_env` builds the environment of a lock beside its place (`uv venv`, then `uv pip
  sync --require-hashes`: the environment holds exactly the lock), marks it ready and
  renames it into place; an interrupted or failed build leaves only its own directory,
  which is removed. A concurrent build of the same one is dropped.

Every environment on the box shares one uv cache (UV_CACHE): a package that one
environment unpacked is linked into the next, not downloaded or unpacked again. On the
local box the cache is the host's, bind-mounted into every box; there uv copies from it
(a link cannot cross the bind mount), which is still neither a download nor an unpack.
"""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Callable, Sequence

from invoke.exceptions import CommandTimedOut

from remote import contract
from remote.changes import Changed
from remote.errors import MlopsBoxError
from remote.locks import Lock, uv_requirement
from remote.system import files
from remote.system.files import RemoteFile
from remote.system.run import Connection, Result, check, sh, sudo, tail

UV_HOME = contract.UV_HOME
UV = f"{UV_HOME}/bin/uv"
UV_CACHE = contract.UV_CACHE
LOCKS_DIR = contract.LOCKS_DIR
# pip's download directory, for uv's own wheel only (pip keeps no HTTP cache here: the
# package index answers without cache headers). Shared like UV_CACHE on the local box.
WHEELHOUSE = contract.WHEELHOUSE
# Written into a finished environment: the key of the lock it holds; and that lock.
READY_MARKER = contract.ENV_READY
LOCK_IN_ENV = contract.ENV_LOCK
INSTALL_TIMEOUT_S = 1800
BOX_PYTHON = contract.SYSTEM_PYTHON
# How uv runs on the box: the shared cache, the box's CA store (as pip), never a
# downloaded Python build, no progress bars in a log.
_UV_ENV = (
    f"UV_CACHE_DIR={UV_CACHE} UV_SYSTEM_CERTS=1 UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1 "
    f"UV_PYTHON={BOX_PYTHON}"
)
# uv's lines worth showing while it works.
_PROGRESS = "'^(Resolved|Prepared|Installed|Uninstalled|error|warning|  cause|  hint)'"


class EnvError(MlopsBoxError):
    """uv could not fill a virtualenv on the box."""


def ensure_uv(conn: Connection, *, error: type[MlopsBoxError] = EnvError) -> None:
    """Install uv (uv.lock's release, hash-checked) in its own venv, unless it is there."""
    requirement = uv_requirement()
    version = requirement.split()[0].removeprefix("uv==")
    if check(conn, f"{UV} --version").stdout.split()[1:2] == [version]:
        return
    pinned = f"{LOCKS_DIR}/uv.txt"
    _root(conn, f"install -d -m 755 {LOCKS_DIR} {WHEELHOUSE}", "prepare uv's install", error)
    files.write(conn, RemoteFile(pinned, (requirement + "\n").encode(), 0o644))
    building = f"{UV_HOME}.building-{secrets.token_hex(4)}"
    pip = f"{building}/bin/pip"
    common = "--disable-pip-version-check --no-input --no-deps --require-hashes"
    script = (
        f"set -e; python3 -m venv {building}; "
        # Under a lock: on the local box the wheelhouse is the host's, shared by boxes.
        f"flock {WHEELHOUSE}/.lock {pip} download -q {common} --dest {WHEELHOUSE} -r {pinned}; "
        f"{pip} install -q {common} --no-index --find-links {WHEELHOUSE} -r {pinned}; "
        f"rm -rf {UV_HOME}; mv -T {building} {UV_HOME}"
    )
    result = check(conn, sudo(sh(script)), timeout_s=INSTALL_TIMEOUT_S)
    if not result.ok:
        check(conn, sudo(f"rm -rf {building}"))
        raise error(f"Could not install uv {version} on the box: {tail(result)}.")


def resolve(
    conn: Connection,
    name: str,
    key: str,
    requirements: Sequence[str],
    *,
    prefer: Lock | None = None,
    upgrade: bool = False,
    say: Callable[[str], None],
    error: type[MlopsBoxError] = EnvError,
) -> Lock:
    """The lock of `requirements` on this box, kept as LOCKS_DIR/<name>-<key>.txt.

    A kept lock is returned as it is (the same versions as last time) unless `upgrade`.
    A new one prefers `prefer`'s versions where they overlap. Raises `error` with uv's
    last lines when the requirements cannot be had; nothing is kept then.
    """
    path = f"{LOCKS_DIR}/{name}-{key}.txt"
    if not upgrade:
        kept = check(conn, f"cat {shlex.quote(path)}")
        if kept.ok and kept.stdout.strip():
            return Lock(kept.stdout)
    ensure_uv(conn, error=error)
    say(f"Resolving {' '.join(requirements)} for the box (once: the lock is kept)")
    work = f"{LOCKS_DIR}/.resolving-{secrets.token_hex(4)}"
    wanted = RemoteFile(f"{work}.in", ("\n".join(requirements) + "\n").encode(), 0o644)
    files.write(conn, wanted)
    # uv prefers the versions of an existing output file: start from the base lock.
    seed = f"cp {put_lock(conn, prefer)} {work}.txt; " if prefer and not upgrade else ""
    script = (
        f"{seed}{_UV_ENV} {UV} pip compile --quiet --generate-hashes --no-header "
        f"{'--upgrade ' if upgrade else ''}--output-file {work}.txt {work}.in "
        f"&& mv -f {work}.txt {shlex.quote(path)}"
    )
    result = _uv(conn, script, say)
    check(conn, sudo(f"rm -f {work}.in {work}.txt"))
    if not result.ok:
        raise error(f"Cannot resolve {' '.join(requirements)} on the box: {tail(result)}.")
    return Lock(check(conn, f"cat {shlex.quote(path)}").stdout)


def ensure_env(
    conn: Connection,
    path: str,
    lock: Lock,
    *,
    say: Callable[[str], None],
    error: type[MlopsBoxError] = EnvError,
) -> Changed:
    """Make the virtualenv `path` hold exactly `lock`, unless it does already."""
    changed = Changed()
    found = check(conn, f"cat {shlex.quote(f'{path}/{READY_MARKER}')}")
    if found.ok and found.stdout.strip() == lock.key:
        return changed
    ensure_uv(conn, error=error)
    parent = path.rsplit("/", 1)[0]
    building = f"{path}.building-{secrets.token_hex(4)}"
    say(f"Building {path} from its lock ({len(lock.pins())} packages)")
    made = check(conn, sudo(sh(f"install -d -m 755 {parent} {LOCKS_DIR}")))
    if not made.ok:
        raise error(f"Could not prepare {parent} on the box: {tail(made)}.")
    try:
        # --relocatable: entry points find their Python next to them, so the rename
        # into place needs no rewriting.
        script = (
            f"{_UV_ENV} {UV} venv --quiet --relocatable {building} && "
            f"{_UV_ENV} {UV} pip sync --require-hashes --python {building}/bin/python "
            f"{put_lock(conn, lock)}"
        )
        result = _uv(conn, script, say)
        if not result.ok:
            raise error(f"uv could not install the lock into {path}: {tail(result)}.")
        finish = (
            f"cp {LOCKS_DIR}/{lock.key}.txt {building}/{LOCK_IN_ENV} && "
            f"printf '%s' {lock.key} > {building}/{READY_MARKER} && "
            f"{{ rm -rf {path}.old; {{ [ ! -e {path} ] || mv -T {path} {path}.old; }}; "
            f"mv -T {building} {path}; rm -rf {path}.old; }}"
        )
        result = check(conn, sudo(sh(finish)))
        if not result.ok:
            raise error(f"Could not finish {path} on the box: {tail(result)}.")
    except BaseException:
        check(conn, sudo(f"rm -rf {shlex.quote(building)}"))
        raise
    changed.add(path)
    return changed


def put_lock(conn: Connection, lock: Lock) -> str:
    """Where the box keeps `lock` (LOCKS_DIR/<key>.txt), written there now."""
    path = f"{LOCKS_DIR}/{lock.key}.txt"
    files.write(conn, RemoteFile(path, lock.text.encode(), 0o644))
    return path


def frozen(conn: Connection, path: str) -> dict[str, str]:
    """What the environment `path` holds: normalised name -> version (`uv pip freeze`)."""
    listing = check(conn, sudo(sh(f"{_UV_ENV} {UV} pip freeze --python {path}/bin/python")))
    return Lock(listing.stdout).pins() if listing.ok else {}


def _uv(conn: Connection, script: str, say: Callable[[str], None]) -> Result:
    try:
        return conn.run(
            f"sudo -n -H bash -c {shlex.quote(script)} 2>&1 "
            f"| grep --line-buffered -E {_PROGRESS} | cut -c1-160; exit ${{PIPESTATUS[0]}}",
            warn=True,
            timeout=INSTALL_TIMEOUT_S,
            shell="/bin/bash",
            out_stream=_Lines(say),
        )
    except CommandTimedOut:
        raise EnvError(
            f"uv did not finish within {INSTALL_TIMEOUT_S}s: check the box's network to PyPI."
        ) from None


def _root(conn: Connection, script: str, what: str, error: type[MlopsBoxError]) -> None:
    result = check(conn, sudo(sh(script)))
    if not result.ok:
        raise error(f"Could not {what} on the box: {tail(result)}.")


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
