"""Project files on the box: a content-addressed blob store and per-job snapshots.

A blob is a project file's bytes, named by their sha256 (with `.x` when the file is
executable): /var/lib/mlops-box/train/blobs/<sha256>[.x]. The controller uploads only the
blobs the store lacks, as one tar; every blob is checked against its name before it
enters the store. A job's snapshot is a tree of hard links to blobs, built in a temp
directory and renamed into place: immutable (root-owned, read-only to the job, which is
also what keeps the shared blobs intact) and free in space and time.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from ..system.failure import AgentFailure
from ..system.layout import (
    ENV_READY,
    TRAIN_BLOBS_DIR,
    TRAIN_DIR,
    TRAIN_ENVS_DIR,
    TRAIN_JOBS_DIR,
    TRAIN_USER,
)

BLOB_KEY = re.compile(r"[0-9a-f]{64}(\.x)?")
KIND_BAD_UPLOAD = "bad-upload"
_CHUNK = 1 << 20


def ensure_layout() -> None:
    """The system user the jobs run as and the store's directories (idempotent)."""
    try:
        pwd.getpwnam(TRAIN_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--home-dir",
                f"{TRAIN_DIR}/home",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                TRAIN_USER,
            ],
            check=True,
            capture_output=True,
        )
    user = pwd.getpwnam(TRAIN_USER)
    for path, mode, gid in (
        (TRAIN_DIR, 0o755, 0),
        (TRAIN_ENVS_DIR, 0o755, 0),
        (TRAIN_BLOBS_DIR, 0o750, user.pw_gid),
        (TRAIN_JOBS_DIR, 0o750, user.pw_gid),
    ):
        os.makedirs(path, exist_ok=True)
        os.chown(path, 0, gid)
        os.chmod(path, mode)
    home = f"{TRAIN_DIR}/home"  # the job user's own, for the steps it runs outside a job
    os.makedirs(home, exist_ok=True)
    os.chown(home, user.pw_uid, user.pw_gid)
    os.chmod(home, 0o700)


def missing(keys: list[str]) -> list[str]:
    """The blob keys the store does not have, each once, in the given order."""
    for key in keys:
        check_key(key)
    return [key for key in dict.fromkeys(keys) if not os.path.exists(f"{TRAIN_BLOBS_DIR}/{key}")]


def take_blobs(tar_path: Path) -> int:
    """Move the uploaded tar's blobs into the store, each checked against its name."""
    gid = pwd.getpwnam(TRAIN_USER).pw_gid
    taken = 0
    with tarfile.open(tar_path, "r|") as archive:
        for member in archive:
            if not member.isfile() or not BLOB_KEY.fullmatch(member.name):
                raise AgentFailure(KIND_BAD_UPLOAD, f"The upload holds {member.name!r}, no blob.")
            source = archive.extractfile(member)
            assert source is not None  # a regular file always has content
            fd, tmp = tempfile.mkstemp(prefix=".in.", dir=TRAIN_BLOBS_DIR)
            digest = hashlib.sha256()
            try:
                with os.fdopen(fd, "wb") as out:
                    while chunk := source.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                if digest.hexdigest() != member.name[:64]:
                    raise AgentFailure(
                        KIND_BAD_UPLOAD,
                        f"A project file changed while it was uploaded (blob {member.name[:12]} "
                        "does not match its content): run again.",
                    )
                os.chown(tmp, 0, gid)
                os.chmod(tmp, 0o750 if member.name.endswith(".x") else 0o640)
                os.replace(tmp, f"{TRAIN_BLOBS_DIR}/{member.name}")
                taken += 1
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
    return taken


def materialise(files: list[list[str]], dest: Path) -> None:
    """Build the snapshot `dest` from (relative path, blob key) pairs: hard links to blobs."""
    gid = pwd.getpwnam(TRAIN_USER).pw_gid
    building = Path(tempfile.mkdtemp(prefix=".snapshot.", dir=dest.parent))
    try:
        for rel, key in files:
            target = building / check_relative(rel)
            blob = f"{TRAIN_BLOBS_DIR}/{check_key(key)}"
            _make_dirs(target.parent, building, gid)
            try:
                os.link(blob, target)
            except FileNotFoundError:
                raise AgentFailure(
                    KIND_BAD_UPLOAD, f"The store lacks the blob of {rel}: run again."
                ) from None
            except OSError as exc:
                if exc.errno != errno.EMLINK:  # a blob shared by very many snapshots
                    raise
                shutil.copy2(blob, target)
        os.chown(building, 0, gid)
        os.chmod(building, 0o750)
        os.rename(building, dest)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def env_ready(env_key: str) -> bool:
    return os.path.exists(f"{TRAIN_ENVS_DIR}/{env_key}/{ENV_READY}")


def check_key(key: str) -> str:
    if not BLOB_KEY.fullmatch(key):
        raise AgentFailure(KIND_BAD_UPLOAD, f"{key!r} is not a blob name.")
    return key


def check_relative(rel: str) -> str:
    """A path inside the snapshot: relative, normalised, no `..`."""
    path = PurePosixPath(rel)
    if path.is_absolute() or not path.parts or ".." in path.parts or str(path) != rel:
        raise AgentFailure(KIND_BAD_UPLOAD, f"{rel!r} is not a plain relative path.")
    return rel


def _make_dirs(folder: Path, top: Path, gid: int) -> None:
    missing_dirs = []
    while folder != top and not folder.exists():
        missing_dirs.append(folder)
        folder = folder.parent
    for made in reversed(missing_dirs):
        made.mkdir(mode=0o750)
        os.chown(made, 0, gid)
        os.chmod(made, 0o750)
