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

from remote.agent import cli
from remote.agent.cli import Command, Env
from remote.system import agent
from tests.remote.agent.runs import run_bundle

# What a command's modules may import (inside a function) beyond the standard library:
# the packages of the environment it runs in (cli.Env): the MLflow server's venv, the
# monitor's (remote/monitor/env.py), and a model's or a training job's (whose MLflow
# brings uvicorn). The box's own Python has the standard library only.
ENVIRONMENT = {
    Env.SYSTEM: set(),
    Env.MLFLOW: {"sqlalchemy", "mlflow", "boto3", "botocore"},
    Env.MONITOR: {"mlflow", "numpy", "scipy", "pandas", "matplotlib", "yaml"},
    Env.MODEL: {"mlflow", "uvicorn"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(agent.SOURCE_DIR).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in agent.sources() if p.suffix == ".py"}
COMMANDS = [record for records in cli.commands().values() for record in records]


def _imports(tree: ast.AST) -> list[tuple[str, int, bool, list[str]]]:
    """(module, relative level, at module level?, names) for every import in the tree."""
    top = {id(node) for node in getattr(tree, "body", [])}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0, id(node) in top, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names]
            found.append((node.module or "", node.level, id(node) in top, names))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.append((str(node.args[0].value), 0, False, []))
    return found


def _edges(module: str, tree: ast.AST) -> tuple[set[str], set[str]]:
    """The agent modules `tree` (of `module`) imports, and the other packages' roots."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    package = [part for part in package if part]
    agent_modules, outside = set(), set()
    for name, level, _, names in _imports(tree):
        if level == 0:
            root = name.split(".")[0]
            if root != "__future__" and root not in sys.stdlib_module_names:
                outside.add(root)
            continue
        base = ".".join(package[: len(package) - level + 1] + ([name] if name else []))
        candidates = [base, *(f"{base}.{n}".lstrip(".") for n in names)]
        agent_modules |= {m for m in candidates if m in MODULES}
    return agent_modules, outside


def _part(module: str, function: str | None) -> ast.AST:
    """What of `module` a command loads: all of it, but of a commands module only its
    top level and `function` (its other handlers are other commands', checked as such)."""
    tree = ast.parse(MODULES[module].read_text())
    if module.split(".")[-1] != "commands" and function is None:
        return tree
    body = [
        node
        for node in tree.body
        if not isinstance(node, ast.FunctionDef | ast.ClassDef) or node.name == function
    ]
    return ast.Module(body=body, type_ignores=[])


def _reached(record: Command) -> dict[str, set[str]]:
    """Every agent module the command may load, with the packages each imports: the
    handler's module at its top level and inside the handler itself, then the whole of
    every module that reaches (but a commands module's top level only)."""
    module, _, function = record.handler.partition(":")
    todo: list[tuple[str, str | None]] = [(module, function)]
    reached: dict[str, set[str]] = {}
    while todo:
        name, handler = todo.pop()
        if name in reached and handler is None:
            continue
        agent_modules, outside = _edges(name, _part(name, handler))
        reached[name] = reached.get(name, set()) | outside
        todo += [(m, None) for m in agent_modules if m not in reached]
    return reached


@pytest.mark.parametrize("source", list(MODULES.values()), ids=_module_name)
def test_no_agent_module_imports_outside_the_stdlib_at_its_top_level(source: Path) -> None:
    for module, level, top_level, _ in _imports(ast.parse(source.read_text())):
        root = module.split(".")[0]
        if level > 0 or root == "__future__" or root in sys.stdlib_module_names:
            continue
        assert not top_level, f"{source.name} imports {module} at module level"


@pytest.mark.parametrize("record", COMMANDS, ids=lambda r: r.name)
def test_each_command_imports_only_what_its_own_environment_has(record: Command) -> None:
    allowed = ENVIRONMENT[record.env]
    for module, packages in _reached(record).items():
        assert packages <= allowed, (
            f"{record.name} runs in the {record.env.value} environment, but {module} imports "
            f"{sorted(packages - allowed)}"
        )


def test_the_system_commands_load_from_the_zip_with_the_standard_library_alone(
    tmp_path: Path,
) -> None:
    """The box's own Python has none of our packages: `-I -S` leaves out this machine's
    site-packages, so only the zip and the standard library are there to import."""
    zipped = tmp_path / "agent.zip"
    zipped.write_bytes(agent.bundle()[1])
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        f"from {agent.PACKAGE} import cli\n"
        "names = set(sys.argv[2:])\n"
        "for records in cli.commands().values():\n"
        "    [cli.resolve(r) for r in records if r.name in names]\n"
        "stdlib = {*sys.stdlib_module_names, '__main__'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} - stdlib))"
    )
    system = [r.name for r in COMMANDS if r.env is Env.SYSTEM]
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script, str(zipped), *system],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"[{agent.PACKAGE!r}]"


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
