"""The user's own ssh config as OpenSSH reads it: our Include found however it is spelt,
Host blocks that our entry shadows, and `preflight`, which checks without writing."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from remote.errors import SshConfigError
from remote.settings import BoxSettings
from remote.ssh import config_entry as ssh
from remote.ssh import known_hosts as host_keys
from tests.remote.fab_cli import tree
from tests.remote.factories import NAME
from tests.remote.factories import settings_in as make_settings


@pytest.fixture
def settings(tmp_path: Path) -> BoxSettings:
    result = make_settings(tmp_path)
    result.ssh_dir.mkdir(parents=True, mode=0o700)
    return result


def target(settings: BoxSettings) -> str:
    return str(ssh.entry_dir(settings) / "*.conf")


@pytest.mark.parametrize(
    "spelling",
    [
        "include {path}",
        "INCLUDE {path}",
        "Include={path}",
        "  include   =   {path}",
        'Include "{path}"',
        "Include /etc/ssh/other.conf {path}",
        "# my settings\n\ninclude {path}",
    ],
)
def test_an_include_spelt_another_way_is_not_added_again(
    settings: BoxSettings, spelling: str
) -> None:
    config = ssh.config_path(settings)
    original = spelling.format(path=target(settings)).encode() + b"\nHost work\n"
    config.write_bytes(original)

    assert ssh.ensure_include(settings) is False
    assert config.read_bytes() == original


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")
def test_openssh_reads_a_lower_case_include_as_ours(settings: BoxSettings) -> None:
    # Why the spellings above count: OpenSSH itself takes them as the same Include.
    config = ssh.config_path(settings)
    config.write_text(f"include {target(settings)}\n")
    ssh.write_entry(settings, "198.51.100.4")

    out = subprocess.run(
        ["ssh", "-G", "-F", str(config), NAME], check=True, capture_output=True, text=True
    ).stdout

    assert "hostname 198.51.100.4\n" in out


def test_an_include_of_something_else_is_not_ours(settings: BoxSettings) -> None:
    config = ssh.config_path(settings)
    config.write_text("include ~/.ssh/work/*.conf\n")

    assert ssh.ensure_include(settings) is True
    assert config.read_text().splitlines()[0] == ssh.include_line(settings)


def warnings_for(settings: BoxSettings, text: str) -> list[str]:
    ssh.config_path(settings).write_text(text)
    return ssh.shadowing_warnings(settings)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (f"Host {NAME}\n", 1),
        (f"Host work\n  User me\nHOST other {NAME}\n", 3),
        ("Host mlops-*\n", 1),
        ("Host mlops-tes?\n", 1),
        (f'Host="{NAME}"\n', 1),
    ],
)
def test_a_host_block_for_the_alias_is_named_with_its_line(
    settings: BoxSettings, text: str, line: int
) -> None:
    config = ssh.config_path(settings)

    warnings = warnings_for(settings, text)

    assert len(warnings) == 1
    assert warnings[0].startswith(f"Warning: {config} line {line}, `")


@pytest.mark.parametrize(
    "text",
    [
        "Host *\n  User me\n",
        "Host other *.example.com\n",
        f"Host mlops-* !{NAME}\n",
        f"Match host {NAME}\n",
        f"# Host {NAME}\n",
        "",
    ],
)
def test_other_blocks_are_not_warned_about(settings: BoxSettings, text: str) -> None:
    assert warnings_for(settings, text) == []


def test_included_files_are_read_but_not_ours(settings: BoxSettings) -> None:
    work = settings.ssh_dir / "work"
    work.mkdir()
    (work / "a.conf").write_text(f"# work hosts\nHost {NAME}\n")
    (work / "loop.conf").write_text("Include work/*.conf\n")  # a cycle: read once
    ssh.write_entry(settings, "198.51.100.4")  # our own entry matches too: skipped

    warnings = warnings_for(settings, f"{ssh.include_line(settings)}\nInclude work/*.conf\n")

    assert warnings == [
        f"Warning: {work / 'a.conf'} line 2, `Host {NAME}`, also matches {NAME}; the "
        f"mlops-box entry, included at the top of {ssh.config_path(settings)}, comes first "
        "and wins: rename or remove that block."
    ]


def test_no_config_no_warning(settings: BoxSettings) -> None:
    assert ssh.shadowing_warnings(settings) == []


# --- preflight: every check, nothing written -------------------------------------------


def test_preflight_writes_nothing_when_all_is_well(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.ssh_dir.parent.mkdir()
    before = tree(tmp_path)

    ssh.preflight(settings)

    assert tree(tmp_path) == before
    assert not settings.ssh_dir.exists()


def refuses(settings: BoxSettings, root: Path, match: str) -> None:
    before = tree(root)
    with pytest.raises(SshConfigError, match=match) as caught:
        ssh.preflight(settings)
    assert "\n" not in str(caught.value)
    assert tree(root) == before


def test_preflight_refuses_a_known_hosts_that_is_a_directory(
    settings: BoxSettings, tmp_path: Path
) -> None:
    ssh.known_hosts_path(settings).mkdir(parents=True)

    refuses(settings, tmp_path, "known_hosts is not a regular file")


def test_preflight_refuses_a_read_only_known_hosts(settings: BoxSettings, tmp_path: Path) -> None:
    host_keys.pin_host_key(settings, "ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIExample")
    ssh.known_hosts_path(settings).chmod(0o400)

    refuses(settings, tmp_path, r"known_hosts is not writable")


def test_preflight_refuses_an_entry_dir_that_is_a_file(
    settings: BoxSettings, tmp_path: Path
) -> None:
    ssh.entry_dir(settings).write_text("not a directory\n")

    refuses(settings, tmp_path, "mlops-box is not a directory")


def test_preflight_refuses_a_missing_template(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    settings = make_settings(tmp_path, project_dir=project)
    settings.ssh_dir.mkdir(parents=True)

    refuses(settings, tmp_path, r"Cannot read .*sshconfig.template .*restore it")


def test_preflight_refuses_a_user_that_could_add_config_lines(
    settings: BoxSettings, tmp_path: Path
) -> None:
    bad = dataclasses.replace(settings, user="ubuntu\nHost *")

    refuses(bad, tmp_path, "use a plain login name")


@pytest.mark.skipif(os.geteuid() != 0, reason="makes files owned by another user")
def test_a_rewrite_keeps_the_owner_and_group_of_every_file(settings: BoxSettings) -> None:
    config = ssh.config_path(settings)
    config.write_text("Host work\n")
    host_keys.pin_host_key(settings, "ssh-ed25519", "AAAAone")
    for path in (config, ssh.known_hosts_path(settings)):
        os.chown(path, 65534, 65534)

    ssh.ensure_include(settings)
    host_keys.pin_host_key(settings, "ssh-ed25519", "AAAAtwo")

    for path in (config, ssh.known_hosts_path(settings)):
        assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534), path
