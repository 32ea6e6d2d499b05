"""Reading the user's own ssh config: is our Include at the top, and what else names the box.

OpenSSH keywords are case-insensitive and may be separated from their arguments by `=`;
arguments may be quoted. OpenSSH takes the first value it sees for each option, so the
entry our Include loads at the top of the file beats any later `Host <name>` block the
user wrote for the same alias: `shadowing_blocks` finds those, so the task can say so.
"""

from __future__ import annotations

import fnmatch
import glob
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# OpenSSH's own limit on nested Include.
MAX_INCLUDE_DEPTH = 16
# A keyword, then whitespace or one `=` (with optional whitespace around it), then args.
_LINE = re.compile(r"([^\s=]+)\s*(?:=\s*)?(.*)")


@dataclass(frozen=True)
class Directive:
    """One keyword line of an ssh config file (1-based line number)."""

    path: Path
    line: int
    keyword: str  # lower case
    args: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class HostBlock:
    """A `Host` line, other than ours, whose patterns match the box's alias."""

    path: Path
    line: int
    text: str


def directives(path: Path, data: bytes) -> Iterator[Directive]:
    """The keyword lines of `data` (the bytes of `path`); comments and blanks skipped."""
    for number, raw in enumerate(data.decode(errors="replace").splitlines(), start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        match = _LINE.fullmatch(text)
        if match is None:
            continue
        keyword, rest = match.groups()
        try:
            args = tuple(shlex.split(rest, comments=True))
        except ValueError:  # an unbalanced quote: OpenSSH refuses the line too
            args = ()
        yield Directive(path, number, keyword.lower(), args, text)


def include_at_top(path: Path, data: bytes, target: str) -> bool:
    """True if an `Include` naming `target` comes before every other keyword line."""
    for directive in directives(path, data):
        return directive.keyword == "include" and target in directive.args
    return False


def shadowing_blocks(
    config: Path, alias: str, *, ssh_dir: Path, home: Path, ours: Path
) -> list[HostBlock]:
    """The user's `Host` lines in `config`, and the files it includes, that match `alias`.

    A bare `Host *` is left out: it is meant for every host, and that our entry wins over
    it is the point. Files under `ours` (our entries) are skipped. Relative Include paths
    are taken from `ssh_dir` and `~` from `home`, as OpenSSH does for a user config.
    """
    found: list[HostBlock] = []
    _scan(config, alias, ssh_dir, home, ours.resolve(), found, seen=set(), depth=0)
    return found


def _scan(
    path: Path,
    alias: str,
    ssh_dir: Path,
    home: Path,
    ours: Path,
    found: list[HostBlock],
    *,
    seen: set[Path],
    depth: int,
) -> None:
    real = path.resolve()
    if depth > MAX_INCLUDE_DEPTH or real in seen or real.is_relative_to(ours):
        return
    seen.add(real)
    try:
        data = path.read_bytes()
    except OSError:
        return  # OpenSSH skips an include it cannot read; so does this warning
    for directive in directives(path, data):
        if directive.keyword == "host" and _matches(directive.args, alias):
            found.append(HostBlock(path, directive.line, directive.text))
        elif directive.keyword == "include":
            for pattern in directive.args:
                for included in _expand(pattern, ssh_dir, home):
                    _scan(included, alias, ssh_dir, home, ours, found, seen=seen, depth=depth + 1)


def _matches(patterns: tuple[str, ...], alias: str) -> bool:
    """OpenSSH's Host matching, less the bare `*`: no negated pattern may match."""
    positive = False
    for pattern in patterns:
        if pattern.startswith("!"):
            if fnmatch.fnmatchcase(alias, pattern[1:]):
                return False
        elif pattern != "*" and fnmatch.fnmatchcase(alias, pattern):
            positive = True
    return positive


def _expand(pattern: str, ssh_dir: Path, home: Path) -> list[Path]:
    if pattern == "~" or pattern.startswith("~/"):
        pattern = str(home / pattern[2:])
    elif not pattern.startswith("/"):
        pattern = str(ssh_dir / pattern)
    return [Path(p) for p in sorted(glob.glob(pattern)) if Path(p).is_file()]
