"""Files on the box written only when they differ, without their content in any argv.

A file that only its owner may read (mode 0600 or 0400: tokens, database URIs, env
files) travels over the stdin of one root command (`run.feed`), which writes it next
to the destination with its mode, owner and group and `mv`s it into place: it never
passes through a file of the login user, which a dropped connection could leave behind.
Any other file travels over SFTP into a fresh 0600 temp file of the login user, then
`sudo install` gives it its mode, owner and group next to the destination and a `mv`
puts it in place atomically; the temp file is removed. Either way nothing of the content
ever appears in a command line, a process listing or a log.

Before writing, `probe` asks the box (as root, in one command for any number of files)
for each file's sha256, mode, owner and group, so an unchanged file is not touched.
"""

from __future__ import annotations

import hashlib
import io
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from remote.changes import Changed
from remote.errors import MlopsBoxError
from remote.system.run import Connection, check, feed, run, sh, sudo, tail

_NAME = re.compile(r"[a-z_][a-z0-9_-]*")
_PATH = re.compile(r"/[A-Za-z0-9._/@+-]+")


class RemoteFileError(MlopsBoxError):
    """A file on the box could not be read or written."""


@dataclass(frozen=True)
class FileState:
    """What `probe` found: the content's sha256 and the file's mode, owner and group."""

    sha256: str
    mode: int
    owner: str
    group: str


@dataclass(frozen=True)
class RemoteFile:
    """The desired state of one file on the box."""

    path: str
    content: bytes
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"

    def __post_init__(self) -> None:
        _check_path(self.path)
        for name in (self.owner, self.group):
            if not _NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a plain user or group name")

    def matches(self, state: FileState | None) -> bool:
        return state == FileState(
            hashlib.sha256(self.content).hexdigest(), self.mode, self.owner, self.group
        )


def probe(conn: Connection, paths: Iterable[str]) -> dict[str, FileState | None]:
    """Each file's state on the box (None when absent), read as root in one command."""
    paths = list(paths)
    if not paths:
        return {}
    for path in paths:
        _check_path(path)
    script = "".join(
        f"if [ -f {shlex.quote(p)} ]; then "
        f"printf '%s %s\\n' \"$(sha256sum < {shlex.quote(p)} | cut -d' ' -f1)\" "
        f"\"$(stat -c '%a %U %G' {shlex.quote(p)})\"; else echo missing; fi; "
        for p in paths
    )
    result = check(conn, sudo(sh(script)))
    lines = result.stdout.splitlines()
    if not result.ok or len(lines) != len(paths):
        raise RemoteFileError(
            f"Cannot read {', '.join(paths)} on the box ({tail(result)}): "
            "check that the login user may run sudo without a password."
        )
    states: dict[str, FileState | None] = {}
    for path, line in zip(paths, lines, strict=True):
        fields = line.split()
        if fields == ["missing"]:
            states[path] = None
        else:
            sha, mode, owner, group = fields
            states[path] = FileState(sha, int(mode, 8), owner, group)
    return states


def ensure(conn: Connection, *wanted: RemoteFile) -> Changed:
    """Make the files on the box match `wanted` (one probe for all); say which changed."""
    found = probe(conn, [f.path for f in wanted])
    changed = Changed()
    for item in wanted:
        if not item.matches(found[item.path]):
            write(conn, item)
            changed.add(item.path)
    return changed


def write(conn: Connection, wanted: RemoteFile) -> None:
    """Write the file unconditionally (see the module's docstring for how)."""
    if not wanted.mode & 0o077:
        _write_private(conn, wanted)
        return
    made = check(conn, "umask 077 && mktemp")
    tmp = made.stdout.strip()
    if not made.ok or not tmp.startswith("/"):
        raise RemoteFileError(
            f"Cannot make a temp file on the box for {wanted.path} ({tail(made)})."
        )
    staged = f"{wanted.path}.mlops-box-new"
    try:
        conn.put(io.BytesIO(wanted.content), tmp)
        command = (
            f"install -m {wanted.mode:o} -o {wanted.owner} -g {wanted.group} "
            f"{shlex.quote(tmp)} {shlex.quote(staged)} && "
            f"mv -f {shlex.quote(staged)} {shlex.quote(wanted.path)}"
        )
        run(
            conn,
            sudo(sh(command)),
            what=f"write {wanted.path}",
            error=RemoteFileError,
            hint="Check that its directory exists and that the login user may run sudo.",
        )
    finally:
        check(conn, f"rm -f {shlex.quote(tmp)}")


def _check_path(path: str) -> None:
    if not _PATH.fullmatch(path) or "/../" in f"{path}/":
        raise ValueError(f"{path!r} is not a plain absolute path")


def _write_private(conn: Connection, wanted: RemoteFile) -> None:
    """Write a file only its owner may read from the stdin of one root command."""
    staged = shlex.quote(f"{wanted.path}.mlops-box-new")
    command = (
        f"umask 077 && cat > {staged} && chown {wanted.owner}:{wanted.group} {staged} "
        f"&& chmod {wanted.mode:o} {staged} && mv -f {staged} {shlex.quote(wanted.path)}"
    )
    status, stderr = feed(conn, sudo(sh(command)), wanted.content)
    if status != 0:
        check(conn, sudo(f"rm -f {staged}"))
        why = " ".join(stderr.split())[-300:] or f"exit status {status}"
        raise RemoteFileError(
            f"Could not write {wanted.path} on the box: {why}. Check that its directory "
            "exists and that the login user may run sudo."
        )
