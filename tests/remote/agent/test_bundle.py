"""The on-box agent: what it may import, how it is bundled, and that the bundle runs.

No box here: the bundle is run by this machine's Python exactly as the box runs it
(`python -m mlops_agent ...` with the zip on PYTHONPATH), on a real SQLite database.
"""

from __future__ import annotations

import ast
import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from remote.system import agent
from tests.remote.agent.runs import run_bundle

# What the agent may import inside a function: the packages of the on-box environment
# that runs that command: the MLflow server's venv, the monitor's (remote/monitor/env.py),
# and a model's (whose MLflow brings uvicorn). Nothing else outside the stdlib.
MLFLOW_VENV = {"sqlalchemy", "mlflow", "boto3", "botocore"}
MONITOR_VENV = {"mlflow", "numpy", "scipy", "pandas", "matplotlib", "yaml"}
MODEL_VENV = {"mlflow", "uvicorn"}
ON_BOX_ENVIRONMENT = MLFLOW_VENV | MONITOR_VENV | MODEL_VENV


def _imports(tree: ast.Module) -> list[tuple[str, int, bool]]:
    """(module, relative level, at module level?) for every import in the tree."""
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level, id(node) in top))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.append((str(node.args[0].value), 0, False))
    return found


@pytest.mark.parametrize(
    "source",
    [p for p in agent.sources() if p.suffix == ".py"],
    ids=lambda p: p.relative_to(agent.SOURCE_DIR).as_posix(),
)
def test_the_agent_imports_only_the_stdlib_itself_and_its_environment(source: Path) -> None:
    tree = ast.parse(source.read_text())
    for module, level, top_level in _imports(tree):
        root = module.split(".")[0]
        if level > 0 or root == "__future__" or root in sys.stdlib_module_names:
            continue
        assert not top_level, f"{source.name} imports {module} at module level"
        assert root in ON_BOX_ENVIRONMENT, f"{source.name} imports {module}, not on the box"


def test_the_bundle_is_named_by_its_content_and_the_same_every_time() -> None:
    path, data = agent.bundle()
    agent.bundle.cache_clear()
    again_path, again = agent.bundle()

    assert (path, data) == (again_path, again)
    assert path == f"/opt/mlops-box/agent/{hashlib.sha256(data).hexdigest()[:20]}.zip"


def test_the_bundle_runs_from_the_zip_and_answers_in_json(tmp_path: Path) -> None:
    source = tmp_path / "source.db"
    with sqlite3.connect(source) as db:
        db.execute("create table runs (id text)")
        db.execute("insert into runs values ('r1')")

    status, answer, _ = run_bundle(tmp_path, "sqlite-backup", str(source), str(tmp_path / "c.db"))

    assert (status, answer["ok"]) == (0, True)
    with sqlite3.connect(tmp_path / "c.db") as copy:
        assert copy.execute("select id from runs").fetchall() == [("r1",)]


def test_front_door_cert_runs_from_the_zip_with_this_machines_openssl(tmp_path: Path) -> None:
    status, answer, _ = run_bundle(tmp_path, "front-door-cert", "--dir", str(tmp_path / "tls"))

    assert (status, answer["ok"]) == (0, True), answer
    assert answer["changed"] == ["CA", "server key", "certificate"]
    assert str(answer["key_pin"]).startswith("sha256//")
    assert (tmp_path / "tls" / "server.key").stat().st_mode & 0o777 == 0o600


def test_a_failure_is_one_json_line_with_its_kind_and_exit_1(tmp_path: Path) -> None:
    status, answer, _ = run_bundle(tmp_path, "sqlite-backup", str(tmp_path / "no.db"), "x.db")

    assert status == 1
    assert answer == {
        "ok": False,
        "kind": "missing",
        "error": f"There is no SQLite database at {tmp_path / 'no.db'}.",
    }


def test_fab_l_loads_no_cloud_sdk_and_no_ssh_library_of_its_own() -> None:
    fab = Path(sys.executable).with_name("fab")
    proc = subprocess.run(
        [str(fab), "-l"],
        cwd=Path(__file__).resolve().parents[3],
        env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()]
    assert "box.start" in proc.stdout
    for heavy in ("boto3", "botocore", "pulumi", "pulumi_aws"):
        assert heavy not in imported
    # Fabric's own CLI imports paramiko before it reads the fabfile; ours adds nothing.
    assert imported.index("paramiko") < imported.index("remote")
