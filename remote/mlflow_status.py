"""Looking at the MLflow server on the box: `status(conn)` and `backup(conn, dest_dir)`.

Both read the backend store through the mlflow user's environment file (systemd-run, as
the service itself does), so the URI is never in argv and the counts come straight from
the database, whatever the server's auth settings.
"""

from __future__ import annotations

import shlex
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remote.errors import MlopsBoxError
from remote.mlflow_config import ENV_FILE, SQLITE_DB, UNIT_FILE, UNIT_NAME, VENV_ROOT
from remote.mlflow_server import run_with_store_env

Connection = Any  # fabric.Connection

# Prints the backend's kind and where it is (never the password), then the counts.
_DESCRIBE = """
import os
from urllib.parse import urlsplit
import sqlalchemy as sa
uri = os.environ["MLFLOW_BACKEND_STORE_URI"]
url = urlsplit(uri)
if url.scheme.startswith("sqlite"):
    where = uri.split(":///", 1)[1]
else:
    where = f"{url.hostname}:{url.port or 5432}"
print("backend", url.scheme.split("+")[0], where)
try:
    engine = sa.create_engine(os.environ["MLFLOW_BACKEND_STORE_URI"])
    with engine.connect() as db:
        q = "select count(*) from {} where lifecycle_stage = 'active'"
        print("counts", db.execute(sa.text(q.format("experiments"))).scalar(),
              db.execute(sa.text(q.format("runs"))).scalar())
except Exception as exc:
    print("counts ? ?", type(exc).__name__)
"""


class MlflowStatusError(MlopsBoxError):
    """MLflow's state on the box could not be read, or its data not backed up."""


@dataclass(frozen=True)
class MlflowStatus:
    installed: bool
    state: str  # systemd's ActiveState
    enabled: bool
    since: str
    version: str | None
    backend: str
    backend_where: str
    artifacts: str
    listen: str
    experiments: str
    runs: str

    def describe(self, name: str) -> str:
        if not self.installed:
            return f"MLflow is not installed on {name}: run `fab mlflow.install`."
        boot = "starts at boot" if self.enabled else "does not start at boot"
        return "\n".join(
            [
                f"MLflow on {name}: {self.state} since {self.since or '-'} ({boot})",
                f"  version     {self.version or 'unknown'}",
                f"  backend     {self.backend} ({self.backend_where})",
                f"  artifacts   {self.artifacts} (served through the server)",
                f"  listening   {self.listen}",
                f"  data        {self.experiments} experiments, {self.runs} runs",
            ]
        )


def parse_exec_start(unit: str) -> dict[str, str]:
    """The options of `mlflow server` in the unit's ExecStart line."""
    for line in unit.splitlines():
        if line.startswith("ExecStart="):
            words = line.removeprefix("ExecStart=").split()
            return {
                w.lstrip("-"): words[i + 1]
                for i, w in enumerate(words[:-1])
                if w.startswith("--") and not words[i + 1].startswith("--")
            }
    return {}


def status(conn: Connection) -> MlflowStatus:
    unit = conn.run(f"cat {UNIT_FILE}", hide=True, warn=True)
    if not unit.ok:
        return MlflowStatus(False, "absent", False, "", None, "", "", "", "", "", "")
    shown = conn.run(
        f"systemctl show -p ActiveState -p ActiveEnterTimestamp -p UnitFileState {UNIT_NAME}",
        hide=True,
        warn=True,
    )
    props = dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)
    options = parse_exec_start(unit.stdout)
    version = None
    for word in unit.stdout.split():
        if word.startswith(f"ExecStart={VENV_ROOT}/"):
            version = word.removeprefix(f"ExecStart={VENV_ROOT}/").split("/")[0]
    python = f"{VENV_ROOT}/{version}/bin/python"
    fields: dict[str, list[str]] = {}
    for line in run_with_store_env(conn, python, _DESCRIBE, what="read MLflow's data").split("\n"):
        parts = line.split()
        if parts:
            fields[parts[0]] = parts[1:]
    backend = fields.get("backend", ["?", "?"])
    counts = fields.get("counts", ["?", "?"])
    return MlflowStatus(
        installed=True,
        state=props.get("ActiveState", "unknown"),
        enabled=props.get("UnitFileState") == "enabled",
        since=props.get("ActiveEnterTimestamp", ""),
        version=version,
        backend="rds (postgresql)" if backend[0].startswith("postgres") else backend[0],
        backend_where=backend[1] if len(backend) > 1 else "?",
        artifacts=options.get("artifacts-destination", "?"),
        listen=f"{options.get('host', '?')}:{options.get('port', '?')}",
        experiments=counts[0],
        runs=counts[1] if len(counts) > 1 else "?",
    )


@dataclass(frozen=True)
class Backup:
    path: Path
    size: int
    experiments: int
    runs: int


def backup(conn: Connection, dest_dir: Path, name: str) -> Backup:
    """Copy the SQLite database to `dest_dir` on this machine, consistently, and check it.

    sqlite3's backup API copies a consistent snapshot even while the server writes; a
    file copy of a live database can be torn. The copy is made on the box into a 0600
    file of the login user, fetched over SFTP, then removed.
    """
    kind = conn.run(
        f"sudo -n sed -n 's/^MLFLOW_BACKEND_STORE_URI=\"\\([a-z]*\\).*/\\1/p' {ENV_FILE}",
        hide=True,
        warn=True,
    )
    scheme = kind.stdout.strip()
    if not kind.ok or not scheme:
        raise MlflowStatusError(
            f"MLflow is not installed on {name} ({ENV_FILE} is missing): "
            "run `fab mlflow.install` first."
        )
    if scheme != "sqlite":
        raise MlflowStatusError(
            f"MLflow on {name} keeps its data in RDS ({scheme}): back it up with RDS snapshots "
            "(automated daily; `aws rds create-db-snapshot` for one now), not with this task."
        )
    made = conn.run("umask 077 && mktemp", hide=True, warn=True)
    tmp = made.stdout.strip()
    if not made.ok or not tmp.startswith("/"):
        raise MlflowStatusError(f"Cannot make a temp file on {name}: {made.stderr.strip()}")
    code = (
        "import sqlite3, sys\n"
        "src = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n"
        "dst = sqlite3.connect(sys.argv[2])\n"
        "src.backup(dst)\n"
        "dst.close(); src.close()\n"
    )
    dest_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = dest_dir / f"{name}-mlflow-{stamp}.db"
    try:
        copied = conn.run(
            f"sudo -n python3 -c {shlex.quote(code)} {SQLITE_DB} {shlex.quote(tmp)}",
            hide=True,
            warn=True,
        )
        if not copied.ok:
            raise MlflowStatusError(
                f"Could not back up {SQLITE_DB} on {name}: {copied.stderr.strip()}"
            )
        partial = path.with_suffix(".db.partial")
        partial.touch(mode=0o600)
        conn.get(tmp, str(partial))
        partial.chmod(0o600)
        partial.rename(path)
    finally:
        conn.run(f"rm -f {shlex.quote(tmp)}", hide=True, warn=True)
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
