"""A project directory as the box gets it: its files by content, its entry, its git state.

`scan` walks the directory the way git would see it: it honours every `.gitignore` and
`.mlopsignore` inside the project (each applying below its own directory, deeper files
overriding shallower ones, `!` re-including), and always skips `.git`, virtualenvs (any
directory holding a `pyvenv.cfg`) and tool caches. Each file is hashed (sha256), which
names its blob on the box; the project's content hash is the hash of its file list.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pathspec

from remote.errors import ConfigError

IGNORE_FILES = (".gitignore", ".mlopsignore")
SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".ipynb_checkpoints",
        ".tox",
        ".nox",
    }
)
_PYTHON = re.compile(r"python(3(\.\d+)?)?")
# python's options that take a value as the next word.
_PYTHON_OPTIONS_WITH_VALUE = ("-W", "-X", "--check-hash-based-pycs")
_CHUNK = 1 << 20
# The ignore files met so far: (the directory they are in, their patterns).
Rules = list[tuple[PurePosixPath, pathspec.GitIgnoreSpec]]


class ProjectError(ConfigError):
    """The project directory, its entry or its requirements cannot be used."""


@dataclass(frozen=True)
class ProjectFile:
    path: str  # relative, POSIX separators
    sha256: str
    size: int
    executable: bool

    @property
    def key(self) -> str:
        """The blob's name on the box: content and mode (hard links share the mode)."""
        return f"{self.sha256}.x" if self.executable else self.sha256


@dataclass(frozen=True)
class Snapshot:
    root: Path
    files: tuple[ProjectFile, ...]

    @property
    def content_hash(self) -> str:
        listing = "".join(f"{f.path}\0{f.key}\n" for f in self.files)
        return hashlib.sha256(listing.encode()).hexdigest()

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def has(self, path: str) -> bool:
        return any(f.path == path for f in self.files)


def scan(root: Path) -> Snapshot:
    """Every file of the project the box should get, hashed, in path order."""
    if not root.is_dir():
        raise ProjectError(f"--project {root} is not a directory: give the project's folder.")
    rules: Rules = []
    found: list[ProjectFile] = []
    for folder, dirs, names in os.walk(root):
        here = PurePosixPath(Path(folder).relative_to(root).as_posix())
        rules += _rules_in(Path(folder), here)
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in SKIPPED_DIRS
            and not os.path.islink(os.path.join(folder, d))
            and not os.path.exists(os.path.join(folder, d, "pyvenv.cfg"))
            and not ignored(rules, here / d, is_dir=True)
        )
        for name in sorted(names):
            rel = here / name
            full = os.path.join(folder, name)
            if ignored(rules, rel, is_dir=False) or not os.path.isfile(full):
                continue  # ignored, a broken link, a socket or a fifo
            found.append(_hashed(full, rel.as_posix()))
    return Snapshot(root, tuple(sorted(found, key=lambda f: f.path)))


def _rules_in(folder: Path, here: PurePosixPath) -> Rules:
    rules = []
    for name in IGNORE_FILES:
        path = folder / name
        if path.is_file():
            lines = path.read_text(errors="replace").splitlines()
            rules.append((here, pathspec.GitIgnoreSpec.from_lines(lines)))
    return rules


def ignored(rules: Rules, rel: PurePosixPath, *, is_dir: bool) -> bool:
    """Whether the ignore files exclude `rel`: the deepest file with a verdict decides."""
    verdict = False
    for base, spec in rules:
        if base != PurePosixPath(".") and base not in rel.parents:
            continue
        inside = rel.relative_to(base).as_posix() + ("/" if is_dir else "")
        result = spec.check_file(inside)
        if result.include is not None:
            verdict = result.include
    return verdict


def _hashed(full: str, rel: str) -> ProjectFile:
    digest = hashlib.sha256()
    with open(full, "rb") as handle:
        info = os.fstat(handle.fileno())
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return ProjectFile(rel, digest.hexdigest(), info.st_size, bool(info.st_mode & stat.S_IXUSR))


def parse_entry(entry: str) -> list[str]:
    try:
        argv = shlex.split(entry)
    except ValueError as exc:
        raise ProjectError(
            f"--entry {entry!r} cannot be parsed ({exc}): check its quotes."
        ) from None
    if not argv:
        raise ProjectError('--entry is empty: give the command, e.g. "python train.py".')
    return argv


def entry_script(argv: list[str]) -> str | None:
    """The project file the entry runs (`python X.py`, `./run.sh`), or None if it names none."""
    program = argv[0]
    if _PYTHON.fullmatch(program):
        words = iter(argv[1:])
        for word in words:
            if word in ("-m", "-c") or word.startswith(("-m", "-c")):
                return None  # a module or inline code: nothing in the project to check
            if word in _PYTHON_OPTIONS_WITH_VALUE:
                next(words, None)
            elif not word.startswith("-"):
                return _inside(word)
        raise ProjectError(f"--entry {shlex.join(argv)!r} runs no script: add one, e.g. train.py.")
    return _inside(program) if "/" in program else None


def _inside(path: str) -> str:
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts:
        raise ProjectError(
            f"The entry runs {path}, outside the project: give its path inside the project."
        )
    return pure.as_posix()


def git_state(root: Path) -> tuple[str, bool] | None:
    """(commit, dirty) when the project is in a git work tree with a commit, else None."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True
        )
        if head.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
        )
    except OSError:  # no git on this machine
        return None
    return head.stdout.strip(), bool(status.stdout.strip())
