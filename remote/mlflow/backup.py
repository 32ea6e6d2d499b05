"""`backup(conn, dest_dir, name)`: a consistent copy of MLflow's SQLite database, here.

The agent copies the database with SQLite's backup API on the box (consistent even while
the server writes) into a 0600 file of the login user; it is fetched over SFTP, checked
with SQLite's integrity check, and removed from the box.
"""

from __future__ import annotations

import shlex
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from remote.agent.mlflow import commands as mlflow_cmds
from remote.mlflow.spec import SQLITE_DB
from remote.mlflow.status import MlflowStatusError, read_state
from remote.system.agent import run_agent
from remote.system.run import Connection, check


@dataclass(frozen=True)
class Backup:
    path: Path
    size: int
    experiments: int
    runs: int


def backup(conn: Connection, dest_dir: Path, name: str) -> Backup:
    """Copy the SQLite database to `dest_dir` on this machine, consistently, and check it."""
    state = read_state(conn)
    if state is None:
        raise MlflowStatusError(
            f"MLflow is not installed on {name}: run `fab mlflow.install` first."
        )
    if state.get("backend") != "sqlite":
        raise MlflowStatusError(
            f"MLflow on {name} keeps its data in RDS: back it up with RDS snapshots "
            "(automated daily; `aws rds create-db-snapshot` for one now), not with this task."
        )
    made = check(conn, "umask 077 && mktemp")
    tmp = made.stdout.strip()
    if not made.ok or not tmp.startswith("/"):
        raise MlflowStatusError(f"Cannot make a temp file on {name}: {made.stderr.strip()}")
    dest_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = dest_dir / f"{name}-mlflow-{stamp}.db"
    try:
        run_agent(conn, mlflow_cmds.SQLITE_BACKUP, SQLITE_DB, tmp, error=MlflowStatusError)
        partial = path.with_suffix(".db.partial")
        partial.touch(mode=0o600)
        conn.get(tmp, str(partial))
        partial.chmod(0o600)
        partial.rename(path)
    finally:
        check(conn, f"rm -f {shlex.quote(tmp)}")
    return _check_copy(path)


def _check_copy(path: Path) -> Backup:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        check = db.execute("pragma integrity_check").fetchone()[0]
        if check != "ok":
            raise MlflowStatusError(f"The backup {path} fails SQLite's integrity check: {check}")
        experiments = db.execute(
            "select count(*) from experiments where lifecycle_stage = 'active'"
        ).fetchone()[0]
        runs = db.execute("select count(*) from runs where lifecycle_stage = 'active'").fetchone()[
            0
        ]
    except sqlite3.DatabaseError as exc:
        raise MlflowStatusError(f"The backup {path} is not an MLflow database ({exc}).") from None
    finally:
        db.close()
    return Backup(path, path.stat().st_size, int(experiments), int(runs))
