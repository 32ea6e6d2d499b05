"""Settings from fabric.yaml's `box` section and the Pulumi files: the key follows the box's
name unless the stack file names one; bad files and values are one sentence."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from remote.errors import ConfigError
from remote.fabric_config import check_fabric_config
from remote.settings import expand_home, load_settings
from tests.remote.fab_cli import NAME, fab

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Pulumi.yaml as in the repository: its schema default is ~/.ssh/mlops-zoomcamp.pub."""
    path = tmp_path / "project"
    path.mkdir()
    shutil.copy(REPO_ROOT / "Pulumi.yaml", path / "Pulumi.yaml")
    return path


def test_the_key_follows_the_box_name(project: Path) -> None:
    settings = load_settings({"name": "x"}, project_dir=project)

    assert settings.key == expand_home("~/.ssh/x")
    assert settings.public_key == expand_home("~/.ssh/x.pub")


def test_the_default_box_has_the_default_key(project: Path) -> None:
    assert load_settings({}, project_dir=project).key == expand_home("~/.ssh/mlops-zoomcamp")


def test_a_key_the_stack_file_sets_wins_over_the_name(project: Path) -> None:
    (project / "Pulumi.dev.yaml").write_text(
        "config:\n  mlops-box:sshPublicKeyPath: /keys/work.pub\n  mlops-box:boxName: y\n"
    )

    settings = load_settings({}, project_dir=project)

    assert (settings.name, settings.key) == ("y", Path("/keys/work"))
    assert load_settings({"key": "/other/k"}, project_dir=project).key == Path("/other/k")


def test_the_name_in_the_stack_file_names_the_key(project: Path) -> None:
    (project / "Pulumi.dev.yaml").write_text("config:\n  mlops-box:boxName: from-stack\n")

    assert load_settings({}, project_dir=project).key == expand_home("~/.ssh/from-stack")


def test_fab_uses_the_name_derived_key(
    fab_env: dict[str, str], box: Any, fab_ssh_dir: Path
) -> None:
    # `fab box.keygen` would write into the real ~/.ssh; the entry names the same key.
    env = {k: v for k, v in fab_env.items() if k != "FABRIC_BOX_KEY"}

    result = fab(env, "box.ssh-config")

    assert result.returncode == 0, result.stderr
    entry = (fab_ssh_dir / "mlops-box" / f"{NAME}.conf").read_text()
    assert f"    IdentityFile {expand_home(f'~/.ssh/{NAME}')}\n" in entry


@pytest.mark.parametrize(
    ("box", "stack_file", "message"),
    [
        ({"user": "a b"}, "", "box.user (fabric.yaml or FABRIC_BOX_USER) is 'a b'"),
        ({}, "config:\n  mlops-box:sshUser: '-oProxyCommand=x'\n", "sshUser in Pulumi.dev.yaml"),
    ],
)
def test_a_bad_login_name_is_refused_naming_where_it_came_from(
    project: Path, box: dict[str, str], stack_file: str, message: str
) -> None:
    if stack_file:
        (project / "Pulumi.dev.yaml").write_text(stack_file)

    with pytest.raises(ConfigError, match="use a plain login name") as caught:
        load_settings(box, project_dir=project)

    assert str(caught.value).startswith(message)


def test_a_malformed_stack_file_is_one_sentence(project: Path) -> None:
    (project / "Pulumi.dev.yaml").write_text("config:\n  mlops-box:boxName: [x\n")

    with pytest.raises(ConfigError) as caught:
        load_settings({}, project_dir=project)

    assert str(caught.value) == (
        f"{project / 'Pulumi.dev.yaml'} is not valid YAML (expected ',' or ']', but got "
        "'<stream end>' at line 3, column 1): fix it."
    )


def test_a_stack_config_that_is_not_a_mapping_is_refused(project: Path) -> None:
    (project / "Pulumi.dev.yaml").write_text("config:\n  - boxName\n")

    with pytest.raises(ConfigError, match=r"config in .*Pulumi.dev.yaml is a list"):
        load_settings({}, project_dir=project)


def test_the_repository_fabric_yaml_passes_the_check() -> None:
    check_fabric_config(REPO_ROOT)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("fabric.yml", "box:\n  local:\n    subnet: {a: 1}\n", "box.local.subnet in"),
        ("fabric.json", '{"box": ', "is not valid JSON (Expecting value at line 1"),
        ("fabric.json", '{"box": []}', "box in"),
    ],
)
def test_the_other_file_names_invoke_reads_are_checked(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    (tmp_path / name).write_text(text)

    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        check_fabric_config(tmp_path)


def test_no_fabric_config_is_fine(tmp_path: Path) -> None:
    check_fabric_config(tmp_path)
