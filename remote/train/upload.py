"""How a job reaches the box: a private staging directory, its description, missing blobs.

The staging directory is made over SFTP (0700, the login user's, a fresh name that
`mkdir` refuses if anything is there). The job's description goes into it as a root-only
file written through `files.write` (it holds the --env values, which may be secrets: never
argv, and never a file the login user could read, which a dropped connection would leave
behind); the blobs the box's store lacks go in as ONE tar streamed over SFTP. The agent,
as root, takes them from there and removes the directory once the job started; on a
refusal we remove it.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from typing import Any

from remote.agent.train.start import BLOBS_TAR, SPEC
from remote.system import files
from remote.system.files import RemoteFile
from remote.system.run import Connection, check
from remote.train.project import ProjectError, ProjectFile, Snapshot


@dataclass(frozen=True)
class Uploaded:
    blobs: int  # project files sent (each distinct content once)
    bytes: int  # what went over SFTP for them (tar included)


def stage(conn: Connection, job_id: str, spec: dict[str, Any]) -> str:
    """Make the staging directory with the job's description in it; return its path."""
    path = f"/tmp/mlops-box-train-{job_id}"
    conn.sftp().mkdir(path, 0o700)
    files.write(conn, RemoteFile(f"{path}/{SPEC}", json.dumps(spec).encode(), 0o600))
    return path


def discard(conn: Connection, staging: str) -> None:
    check(conn, f"rm -rf {staging}")


def upload_blobs(conn: Connection, staging: str, snapshot: Snapshot, keys: list[str]) -> Uploaded:
    """Stream the blobs named by `keys` as one tar into the staging directory."""
    if not keys:
        return Uploaded(0, 0)
    by_key: dict[str, ProjectFile] = {}
    for item in snapshot.files:
        by_key.setdefault(item.key, item)
    with conn.sftp().open(f"{staging}/{BLOBS_TAR}", "wb") as remote:
        remote.set_pipelined(True)
        counted = _Counting(remote)
        with tarfile.open(fileobj=counted, mode="w|") as archive:
            for key in keys:
                item = by_key[key]
                data = (snapshot.root / item.path).read_bytes()
                if hashlib.sha256(data).hexdigest() != item.sha256:
                    raise ProjectError(
                        f"{item.path} changed while the project was being shipped: run again."
                    )
                info = tarfile.TarInfo(key)
                info.size = len(data)
                info.mode = 0o600
                archive.addfile(info, io.BytesIO(data))
    return Uploaded(len(keys), counted.written)


class _Counting(io.RawIOBase):
    """A write-only file that counts what passes through it."""

    def __init__(self, target: Any) -> None:
        super().__init__()
        self._target = target
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._target.write(bytes(data))
        self.written += len(data)
        return len(data)
