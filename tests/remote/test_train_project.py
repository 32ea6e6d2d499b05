"""What `fab train.run` checks and computes on this machine, before it touches the box.

No box and no mocks: real directories (with real ignore files and a real virtualenv
marker), real git, the agent's pure decisions run as the box runs them.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from remote.train.environment import environment_for, requirements_of
from remote.train.jobs import JobRequest, env_lines, prepare
from remote.train.project import ProjectError, entry_script, git_state, parse_entry, scan
from remote.train.records import format_jobs


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_snapshot_honours_ignore_files_and_skips_venvs_and_caches(tmp_path: Path) -> None:
    root = _tree(
        tmp_path / "proj",
        {
            "train.py": "print(1)\n",
            "data/big.csv": "a,b\n",
            "data/keep.csv": "k\n",
            "data/.gitignore": "*.csv\n!keep.csv\n",
            # As in git: a file in an excluded directory cannot be re-included.
            ".mlopsignore": "notes/\n!notes/keep.md\n*.log\n",
            "notes/todo.md": "x\n",
            "notes/keep.md": "x\n",
            "run.log": "x\n",
            "sub/run.log": "x\n",
            "src/model.py": "M = 1\n",
            "myenv/pyvenv.cfg": "home = /usr/bin\n",
            "myenv/lib/site.py": "x\n",
            "src/__pycache__/model.cpython-311.pyc": "x\n",
            ".git/HEAD": "ref\n",
            ".mypy_cache/x.json": "{}\n",
        },
    )

    paths = [f.path for f in scan(root).files]

    assert paths == [
        ".mlopsignore",
        "data/.gitignore",
        "data/keep.csv",
        "src/model.py",
        "train.py",
    ]


def test_files_are_named_by_content_and_mode_and_the_hash_follows_the_listing(
    tmp_path: Path,
) -> None:
    root = _tree(tmp_path / "p", {"a.py": "same\n", "b.py": "same\n", "run.sh": "same\n"})
    os.chmod(root / "run.sh", 0o755)

    snapshot = scan(root)
    keys = {f.path: f.key for f in snapshot.files}

    assert keys["a.py"] == keys["b.py"] and len(keys["a.py"]) == 64
    assert keys["run.sh"] == keys["a.py"] + ".x"  # a hard link shares its mode
    before = snapshot.content_hash
    assert scan(root).content_hash == before
    (root / "b.py").write_text("changed\n")
    assert scan(root).content_hash != before


def test_the_entry_script_is_found_and_checked(tmp_path: Path) -> None:
    assert entry_script(parse_entry("python train.py --model rf")) == "train.py"
    assert entry_script(parse_entry("python3 -u -W ignore src/train.py")) == "src/train.py"
    assert entry_script(parse_entry("./run.sh fast")) == "run.sh"
    assert entry_script(parse_entry("python -m pkg.train")) is None
    assert entry_script(parse_entry("bash -c 'echo hi'")) is None
    for bad in ("python ../up.py", "python /abs/train.py", "python -u", "", "python 'open"):
        with pytest.raises(ProjectError):
            entry_script(parse_entry(bad))

    root = _tree(tmp_path / "p", {"train.py": "", ".mlopsignore": "secret.py\n", "secret.py": ""})
    with pytest.raises(ProjectError, match=r"missing\.py, which is not in"):
        prepare(JobRequest(root, "python missing.py"))
    with pytest.raises(ProjectError, match=r"secret\.py, which is not in"):
        prepare(JobRequest(root, "python secret.py"))
    with pytest.raises(ProjectError, match="is not a directory"):
        prepare(JobRequest(tmp_path / "absent"))


def test_requirements_are_normalised_and_mlflow_added_when_not_named(tmp_path: Path) -> None:
    root = _tree(
        tmp_path / "p",
        {"requirements.txt": "# deps\npandas>=2  # frames\n\nscikit-learn\npandas>=2\n"},
    )
    wanted = requirements_of(scan(root))
    assert wanted == ["pandas>=2", "scikit-learn"]

    env = environment_for(wanted, "3.17.2")
    assert env.requirements == ("pandas>=2", "scikit-learn", "mlflow==3.17.2")
    assert environment_for(["scikit-learn", "pandas>=2"], "3.17.2").key == env.key
    assert environment_for(wanted, "3.18.0").key != env.key
    named = environment_for(["MLflow-Skinny==3.17.2"], "3.17.2")
    assert named.requirements == ("MLflow-Skinny==3.17.2",)

    (root / "requirements.txt").write_text("-r other.txt\n")
    with pytest.raises(ProjectError, match="line 1"):
        requirements_of(scan(root))
    (root / "requirements.txt").write_text("numpy\nnot a requirement!\n")
    with pytest.raises(ProjectError, match="line 2"):
        requirements_of(scan(root))


def unquote_env(value: str) -> str:
    """A value as systemd reads it from an EnvironmentFile (the double-quoted form)."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        out, chars = [], iter(value[1:-1])
        for ch in chars:
            out.append(next(chars, "") if ch == "\\" else ch)
        return "".join(out)
    return value


def test_env_values_become_exact_environment_file_lines() -> None:
    text = env_lines(('TOKEN=a b$c"d', "EMPTY="))
    assert text == 'TOKEN="a b\\$c\\"d"\nEMPTY=""\n'
    parsed = dict(line.split("=", 1) for line in text.splitlines())
    assert unquote_env(parsed["TOKEN"]) == 'a b$c"d'
    for bad, why in (
        ("NOVALUE", "no value"),
        ("MLFLOW_RUN_ID=x", "set by train.run"),
        ("1BAD=x", "not a valid"),
        ("K=a\nb", "newline"),
    ):
        with pytest.raises(ProjectError, match=why):
            env_lines((bad,))


def test_git_state_of_a_project(tmp_path: Path) -> None:
    root = _tree(tmp_path / "repo", {"proj/train.py": "print(1)\n"})
    assert git_state(root / "proj") is None
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    commit, dirty = git_state(root / "proj") or ("", True)
    assert len(commit) == 40 and not dirty
    (root / "proj" / "train.py").write_text("print(2)\n")
    assert git_state(root / "proj") == (commit, True)


def test_an_empty_list_says_how_to_start() -> None:
    assert "fab train.run" in format_jobs([])
