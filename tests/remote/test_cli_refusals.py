"""Bad input to the real `fab` CLI: one line on stderr, exit 1, and nothing changed.

Each case runs `fab` in a subprocess against a moto server holding a STOPPED box, then
compares the state a user would notice before and after: the instance (still stopped:
starting it is billed), the ssh dir and the key directory byte for byte, with modes and
owners. Cases that need their own fabric.yaml, stack file or template run `fab -r` on a
copy of the project.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from remote.deploy.plan import DEFAULT_BAKE_S, DEFAULT_TERMINATION_WAIT_S
from remote.tasks.box import SSH_TIMEOUT_S
from tests.remote.fab_cli import NAME, REPO_ROOT, STACK, fab, refused, tree

Describe = Callable[[Any, str], dict[str, Any]]


class State:
    """What a refused command must leave as it was."""

    def __init__(self, ec2: Any, instance_id: str, *dirs: Path) -> None:
        self.ec2, self.instance_id, self.dirs = ec2, instance_id, dirs

    def snapshot(self) -> tuple[object, ...]:
        reservations = self.ec2.describe_instances(InstanceIds=[self.instance_id])
        instance = reservations["Reservations"][0]["Instances"][0]
        return (instance["State"]["Name"], *(tree(d) for d in self.dirs))


@pytest.fixture
def stopped(server_ec2: Any, box: Any, fab_ssh_dir: Path, home: Path) -> State:
    """The box stopped, an ssh dir with the user's own config, and a proper key pair."""
    server_ec2.stop_instances(InstanceIds=[box.instance_id])
    fab_ssh_dir.mkdir(mode=0o700)
    (fab_ssh_dir / "config").write_text("Host work\n    HostName 192.0.2.8\n")
    keys = home / "keys"
    keys.mkdir(mode=0o700)
    (keys / NAME).write_text("not parsed before the box runs\n")
    (keys / NAME).chmod(0o600)
    (keys / f"{NAME}.pub").write_text("ssh-ed25519 AAAA mlops-box@mlops-ci\n")
    return State(server_ec2, box.instance_id, fab_ssh_dir, keys)


def refused_unchanged(state: State, env: dict[str, str], *args: str, root: Path = REPO_ROOT) -> str:
    """Run `fab`; it must refuse in one line and leave `state` as it was. The line."""
    before = state.snapshot()
    line = refused(fab(env, *args, root=root))
    assert state.snapshot() == before, "a refused command changed something"
    return line


# --- box.start: everything the ssh entry needs is checked before the start --------------


def test_a_read_only_ssh_config_refuses_before_the_start(
    fab_env: dict[str, str], stopped: State, fab_ssh_dir: Path
) -> None:
    (fab_ssh_dir / "config").chmod(0o400)

    line = refused_unchanged(stopped, fab_env, "box.start", "--ssh-timeout", "0")

    assert line == (
        f"The file {fab_ssh_dir / 'config'} is not writable: make it writable (chmod u+w) "
        "and run again."
    )


def test_a_read_only_ssh_dir_refuses_before_the_start(
    fab_env: dict[str, str], stopped: State, fab_ssh_dir: Path
) -> None:
    fab_ssh_dir.chmod(0o500)
    try:
        line = refused_unchanged(stopped, fab_env, "box.start", "--ssh-timeout", "0")
    finally:
        fab_ssh_dir.chmod(0o700)

    assert line == (
        f"The directory {fab_ssh_dir} is not writable: make it writable (chmod u+w) and run again."
    )


def test_a_foreign_entry_file_refuses_before_the_start(
    fab_env: dict[str, str], stopped: State, fab_ssh_dir: Path
) -> None:
    entry = fab_ssh_dir / "mlops-box" / f"{NAME}.conf"
    entry.parent.mkdir(mode=0o700)
    entry.write_text(f"Host {NAME}\n    HostName my-own-server\n")

    line = refused_unchanged(stopped, fab_env, "box.start", "--ssh-timeout", "0")

    assert line == (
        f"{entry} exists but was not written by mlops-box: move it away (or rename the box) "
        "and run again."
    )


def test_a_bad_ssh_user_in_the_stack_file_refuses_before_the_start(
    fab_env: dict[str, str], stopped: State, project: Path
) -> None:
    (project / f"Pulumi.{STACK}.yaml").write_text(
        'config:\n  mlops-box:sshUser: "ubuntu\\nHost *"\n'
    )

    line = refused_unchanged(stopped, fab_env, "box.start", "--ssh-timeout", "0", root=project)

    assert line == (
        f"sshUser in Pulumi.{STACK}.yaml is 'ubuntu\\nHost *': use a plain login name "
        "(letters, digits, '.', '_', '-'), such as ubuntu."
    )


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("# Written by mlops-box\nHost {{ name\n", "does not render"),
        ("Host {{ name }}\n    HostName {{ address }}\n", "must start with"),
    ],
)
def test_an_unrenderable_entry_refuses_before_the_start(
    fab_env: dict[str, str], stopped: State, project: Path, template: str, message: str
) -> None:
    (project / "sshconfig.template").write_text(template)

    line = refused_unchanged(stopped, fab_env, "box.start", "--ssh-timeout", "0", root=project)

    assert line.startswith(f"{project / 'sshconfig.template'} ")
    assert message in line and line.endswith("restore it from the repository.")


def test_a_key_open_to_others_refuses_before_the_start(
    fab_env: dict[str, str], stopped: State, home: Path
) -> None:
    key = home / "keys" / NAME
    key.chmod(0o644)

    line = refused_unchanged(stopped, fab_env, "box.start")

    assert line == (
        f"The private key {key} is open to other users (mode 0644) and ssh refuses such a "
        f"key: run `chmod 600 {key}` and run again."
    )


def test_a_dangling_key_symlink_refuses_before_the_start(
    fab_env: dict[str, str], stopped: State, home: Path
) -> None:
    key = home / "keys" / NAME
    key.unlink()
    key.symlink_to(home / "gone" / "id_ed25519")

    line = refused_unchanged(stopped, fab_env, "box.start")

    assert line == (
        f"{key} is a symlink to {home / 'gone' / 'id_ed25519'}, which does not exist: "
        "restore that file, or remove the link, and run again."
    )


def test_ssh_config_checks_everything_before_writing_the_entry(
    fab_env: dict[str, str], server_ec2: Any, box: Any, fab_ssh_dir: Path
) -> None:
    # The box runs: before, the entry was written and then the Include refused.
    fab_ssh_dir.mkdir(mode=0o700)
    (fab_ssh_dir / "config").write_text("Host work\n")
    (fab_ssh_dir / "config").chmod(0o400)
    before = tree(fab_ssh_dir)

    line = refused(fab(fab_env, "box.ssh-config"))

    assert "is not writable" in line
    assert tree(fab_ssh_dir) == before


# --- arguments and settings files ---------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "1.5", ""])
def test_a_non_integer_ssh_timeout_is_one_line(
    fab_env: dict[str, str], stopped: State, value: str
) -> None:
    line = refused_unchanged(stopped, fab_env, "box.start", "--ssh-timeout", value)

    assert line == (
        f"--ssh-timeout is {value!r}: give a whole number, such as the default "
        f"(--ssh-timeout {SSH_TIMEOUT_S})."
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["deploy.blue-green", "--model", "models:/m/1", "--bake", "abc"],
            f"--bake is 'abc': give a number, such as the default (--bake {DEFAULT_BAKE_S}).",
        ),
        (
            ["deploy.rollback", "--termination-wait", "soon"],
            "--termination-wait is 'soon': give a number, such as the default "
            f"(--termination-wait {DEFAULT_TERMINATION_WAIT_S}).",
        ),
    ],
    ids=["bake", "termination-wait"],
)
def test_a_float_argument_that_is_not_a_number_is_one_line(
    fab_env: dict[str, str], stopped: State, args: list[str], message: str
) -> None:
    assert refused_unchanged(stopped, fab_env, *args) == message


FABRIC_YAML_CASES = [
    (
        "box:\n  provider: [aws\n",
        "is not valid YAML (expected ',' or ']', but got '<stream end>' at line 3, column 1): "
        "fix it.",
    ),
    (
        "box:\n  - provider: aws\n",
        "box in {path} is a list: it must hold settings as `key: value` lines under `box:` "
        "(or be removed).",
    ),
    (
        "box: aws\n",
        "box in {path} is the single value 'aws': it must hold settings as `key: value` "
        "lines under `box:` (or be removed).",
    ),
    (
        "box:\n",
        "box in {path} is empty: it must hold settings as `key: value` lines under `box:` "
        "(or be removed).",
    ),
    (
        "box:\n  local: /srv/boxes\n",
        "box.local in {path} is the single value '/srv/boxes': it must hold settings as "
        "`key: value` lines under `local:` (or be removed).",
    ),
    (
        "box:\n  name:\n    first: a\n",
        "box.name in {path} is a mapping: give one value, e.g. `name: <value>`.",
    ),
    (
        "box:\n  provder: aws\n",
        "box.provder in {path} is not a setting: use one of provider, name, stack, region, "
        "user, key, ssh_dir, secrets_dir, local.",
    ),
    (
        "- box\n",
        "{path} holds a list, not settings: write `box:` and its settings under it as "
        "`key: value` lines (see the repository's fabric.yaml).",
    ),
]


@pytest.mark.parametrize(("text", "message"), FABRIC_YAML_CASES)
def test_a_bad_fabric_yaml_is_one_line(
    fab_env: dict[str, str], stopped: State, project: Path, text: str, message: str
) -> None:
    path = project / "fabric.yaml"
    path.write_text(text)

    for task in (["box.start", "--ssh-timeout", "0"], ["box.status"], ["-l"]):
        line = refused_unchanged(stopped, fab_env, *task, root=project)

        if message.startswith("is not"):
            assert line == f"{path} {message}"
        else:
            assert line == message.format(path=path)


def test_the_fabric_yaml_checks_accept_the_repository_file(
    fab_env: dict[str, str], project: Path, box: Any
) -> None:
    result = fab(fab_env, "box.status", root=project)

    assert result.returncode == 0, result.stderr
    assert "state:     running" in result.stdout


def test_an_empty_fabric_yaml_means_the_defaults(
    fab_env: dict[str, str], project: Path, box: Any
) -> None:
    (project / "fabric.yaml").write_text("# nothing set here\n")

    result = fab(fab_env, "box.status", root=project)

    assert result.returncode == 0, result.stderr


def test_every_task_parses_its_arguments_with_the_checked_task_class() -> None:
    # A task declared with fabric's own @task would let `--port abc` end in a traceback.
    from remote.tasks import ns
    from remote.tasks._common import CheckedTask

    for name in ns.task_names:
        assert isinstance(ns[name], CheckedTask), f"{name}: use remote.tasks._common.task"


def test_no_endpoint_is_contacted_before_the_checks(
    fab_env: dict[str, str], stopped: State, fab_ssh_dir: Path
) -> None:
    # With nothing listening at the endpoint, a refusal that came after an AWS call would
    # name the connection failure instead of the bad file.
    (fab_ssh_dir / "config").chmod(0o400)
    env = dict(fab_env, AWS_ENDPOINT_URL="http://127.0.0.1:9")

    line = refused_unchanged(stopped, env, "box.start", "--ssh-timeout", "0")

    assert "is not writable" in line


@pytest.mark.skipif(os.geteuid() != 0, reason="makes a file owned by another user")
def test_the_user_config_keeps_its_owner_group_and_mode(
    fab_env: dict[str, str], box: Any, fab_ssh_dir: Path
) -> None:
    fab_ssh_dir.mkdir(mode=0o755)
    config = fab_ssh_dir / "config"
    config.write_text("Host work\n")
    config.chmod(0o640)
    os.chown(config, 65534, 65534)

    result = fab(fab_env, "box.ssh-config")

    assert result.returncode == 0, result.stderr
    st = config.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (65534, 65534, 0o640)
    assert config.read_text().endswith("\nHost work\n")
    assert config.read_text().startswith("Include ")


def _tasks_with_positionals() -> list[str]:
    from remote.tasks import ns

    return sorted(name for name in ns.task_names if ns[name].positional)


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("name", _tasks_with_positionals())
def test_help_of_a_task_with_a_positional_argument_is_its_help(name: str, flag: str) -> None:
    # Invoke hands the word after the task to its missing positional first: `--help`
    # became the project folder or the labels file.
    result = fab(dict(os.environ), name, flag)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"Usage: fab [--core-opts] {name} "), result.stdout
    assert "Options:" in result.stdout and result.stderr == ""
