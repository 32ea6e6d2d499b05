"""The ssh Host entry and the Include line, on temporary directories and real `ssh -G`."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from remote.errors import SshConfigError
from remote.settings import BoxSettings
from remote.ssh import config_entry as ssh
from tests.remote.factories import NAME, PROJECT_DIR
from tests.remote.factories import settings_in as make_settings

needs_ssh = pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")


@pytest.fixture
def settings(tmp_path: Path) -> BoxSettings:
    result = make_settings(tmp_path)
    result.ssh_dir.mkdir(parents=True, mode=0o700)
    return result


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything a user could notice about a tree: names, kinds, bytes, modes, mtimes."""
    found: dict[str, tuple[object, ...]] = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        if path.is_symlink():
            body: object = os.readlink(path)
        elif path.is_file():
            body = path.read_bytes()
        else:
            body = None
        found[str(path.relative_to(root))] = (
            stat.S_IFMT(st.st_mode),
            st.st_mode,
            body,
            st.st_mtime_ns,
        )
    return found


def ssh_g(
    config: Path, host: str, *extra: str, env: dict[str, str] | None = None
) -> dict[str, str]:
    """`ssh -G`'s resolved options; for a repeated option (IdentityFile) the first value."""
    found: dict[str, str] = {}
    for line in ssh_g_lines(config, host, *extra, env=env):
        key, _, value = line.partition(" ")
        found.setdefault(key, value)
    return found


def ssh_g_lines(
    config: Path, host: str, *extra: str, env: dict[str, str] | None = None
) -> list[str]:
    return subprocess.run(
        ["ssh", "-G", "-F", str(config), *extra, host],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.splitlines()


def test_include_goes_above_host_and_match_blocks_and_keeps_every_byte(
    settings: BoxSettings,
) -> None:
    config = ssh.config_path(settings)
    original = (
        b"# my own settings\r\n"
        b"Host *\r\n"
        b"    User someone-else\r\n"
        b"Match host *.example.com\r\n"
        b"    Port 2222\r\n"
        b"  # a comment and no newline at the end"
    )
    config.write_bytes(original)
    config.chmod(0o644)

    assert ssh.ensure_include(settings) is True

    line = ssh.include_line(settings).encode()
    # The file's own line ending is reused, so CRLF files stay CRLF throughout.
    assert config.read_bytes() == line + b"\r\n" + original
    assert stat.S_IMODE(config.stat().st_mode) == 0o644


def test_include_is_added_once(settings: BoxSettings) -> None:
    config = ssh.config_path(settings)
    config.write_bytes(b"Host work\n    HostName 10.1.1.1")
    assert ssh.ensure_include(settings) is True
    after_first = config.read_bytes()
    mtime = config.stat().st_mtime_ns

    assert ssh.ensure_include(settings) is False
    assert config.read_bytes() == after_first
    assert config.stat().st_mtime_ns == mtime
    assert after_first.count(b"Include") == 1


def test_include_below_other_directives_is_added_again_at_the_top(settings: BoxSettings) -> None:
    # Below a Host line the Include would only apply inside that block.
    config = ssh.config_path(settings)
    original = f"Host *\n    {ssh.include_line(settings)}\n".encode()
    config.write_bytes(original)

    assert ssh.ensure_include(settings) is True
    assert config.read_bytes() == ssh.include_line(settings).encode() + b"\n" + original


def test_missing_config_and_ssh_dir_are_created_private(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.ssh_dir.parent.mkdir()

    assert ssh.update(settings, "203.0.113.10") is True

    assert stat.S_IMODE(settings.ssh_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(ssh.entry_dir(settings).stat().st_mode) == 0o700
    config = ssh.config_path(settings)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert config.read_text() == ssh.include_line(settings) + "\n"
    assert stat.S_IMODE(ssh.entry_path(settings).stat().st_mode) == 0o600


def test_entry_is_rendered_from_the_template(settings: BoxSettings) -> None:
    text = ssh.render_entry(settings, "203.0.113.10")

    assert text.startswith(ssh.HEADER)
    assert f"Host {NAME}\n" in text
    assert "    HostName 203.0.113.10\n" in text
    assert f"    IdentityFile {settings.key}\n" in text
    assert f"    UserKnownHostsFile {ssh.known_hosts_path(settings)}\n" in text
    assert text.endswith("StrictHostKeyChecking yes\n")


def test_same_address_rewrites_nothing(settings: BoxSettings) -> None:
    assert ssh.write_entry(settings, "203.0.113.10") is True
    entry = ssh.entry_path(settings)
    before = entry.read_bytes()
    mtime = entry.stat().st_mtime_ns

    assert ssh.write_entry(settings, "203.0.113.10") is False
    assert entry.read_bytes() == before
    assert entry.stat().st_mtime_ns == mtime

    assert ssh.write_entry(settings, "203.0.113.11") is True
    assert b"HostName 203.0.113.11\n" in entry.read_bytes()


@needs_ssh
def test_ssh_resolves_the_new_address_with_the_pinned_settings(settings: BoxSettings) -> None:
    config = ssh.config_path(settings)
    config.write_text("Host *\n    User intruder\n    StrictHostKeyChecking no\n")
    ssh.update(settings, "203.0.113.10")

    first = ssh_g(config, NAME)
    assert first["hostname"] == "203.0.113.10"

    assert ssh.update(settings, "198.51.100.7") is True
    second = ssh_g(config, NAME)
    assert second["hostname"] == "198.51.100.7"
    # The entry comes before the user's `Host *`, so its values win.
    assert second["user"] == "ubuntu"
    assert second["stricthostkeychecking"] == "true"
    assert second["hostkeyalias"] == NAME
    assert second["userknownhostsfile"] == str(ssh.known_hosts_path(settings))
    assert second["identityfile"] == str(settings.key)
    assert second["identitiesonly"] == "yes"
    # Other hosts are untouched by the entry.
    assert ssh_g(config, "elsewhere")["user"] == "intruder"


@needs_ssh
def test_openssh_expands_tilde_from_the_password_database_not_home(
    settings: BoxSettings, tmp_path: Path
) -> None:
    # Why the Include and the entry use absolute paths: with a fake $HOME, `~` still
    # means the passwd home to OpenSSH, so `~/.ssh/...` would miss settings.ssh_dir.
    fake_home = tmp_path / "fake-home"
    fake_home.mkdir()
    ssh.update(settings, "203.0.113.10")
    env = dict(os.environ, HOME=str(fake_home))

    resolved = ssh_g(ssh.config_path(settings), NAME, "-o", "UserKnownHostsFile=~/probe", env=env)

    assert resolved["userknownhostsfile"] == str(ssh.openssh_home() / "probe")
    assert resolved["hostname"] == "203.0.113.10"  # the absolute Include still works


def test_symlinked_config_stays_a_symlink(settings: BoxSettings, tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "ssh_config"
    original = b"Host work\n    User me\n"
    target.write_bytes(original)
    target.chmod(0o640)
    link = ssh.config_path(settings)
    link.symlink_to(target)

    assert ssh.ensure_include(settings) is True

    assert link.is_symlink()
    assert os.readlink(link) == str(target)
    assert target.read_bytes() == ssh.include_line(settings).encode() + b"\n" + original
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert ssh.ensure_include(settings) is False


def test_remove_entry(settings: BoxSettings) -> None:
    ssh.write_entry(settings, "203.0.113.10")
    assert ssh.remove_entry(settings) is True
    assert not ssh.entry_path(settings).exists()
    assert ssh.remove_entry(settings) is False


# --- bad input: one clear sentence, nothing changed ---------------------------------


def assert_refused(root: Path, action: object, match: str) -> None:
    before = snapshot(root)
    with pytest.raises(SshConfigError, match=match) as info:
        action()  # type: ignore[operator]
    assert snapshot(root) == before
    assert "\n" not in str(info.value)


def test_foreign_entry_file_is_not_overwritten(settings: BoxSettings, tmp_path: Path) -> None:
    entry = ssh.entry_path(settings)
    entry.parent.mkdir(mode=0o700)
    entry.write_text("Host mlops-test\n    HostName my-own-server\n")

    assert_refused(tmp_path, lambda: ssh.write_entry(settings, "203.0.113.10"), "not written by")
    assert_refused(tmp_path, lambda: ssh.remove_entry(settings), "move it away")


def test_binary_entry_file_is_not_overwritten(settings: BoxSettings, tmp_path: Path) -> None:
    entry = ssh.entry_path(settings)
    entry.parent.mkdir(mode=0o700)
    entry.write_bytes(b"# Written by mlops-box\xff\xfe\x00garbage")

    assert_refused(tmp_path, lambda: ssh.write_entry(settings, "203.0.113.10"), "not written by")


def test_entry_path_that_is_a_directory_is_refused(settings: BoxSettings, tmp_path: Path) -> None:
    ssh.entry_path(settings).mkdir(parents=True)

    assert_refused(tmp_path, lambda: ssh.write_entry(settings, "203.0.113.10"), "not written by")


def test_ssh_dir_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "home"
    blocker.write_text("a file where a directory should be\n")
    settings = make_settings(tmp_path, ssh_dir=blocker / ".ssh")

    assert_refused(tmp_path, lambda: ssh.update(settings, "203.0.113.10"), "not a directory")


def test_ssh_dir_that_is_a_file(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.ssh_dir.parent.mkdir()
    settings.ssh_dir.write_text("not a directory\n")

    assert_refused(tmp_path, lambda: ssh.update(settings, "203.0.113.10"), "not a directory")


def test_read_only_ssh_dir(settings: BoxSettings, tmp_path: Path) -> None:
    # Mode bits rather than a failing syscall: the tests run as root, which ignores them,
    # and the code honours the owner's write bit for that reason.
    ssh.config_path(settings).write_text("Host work\n")
    settings.ssh_dir.chmod(0o500)
    try:
        assert_refused(tmp_path, lambda: ssh.write_entry(settings, "203.0.113.10"), "not writable")
        assert_refused(tmp_path, lambda: ssh.ensure_include(settings), "not writable")
    finally:
        settings.ssh_dir.chmod(0o700)


def test_read_only_config(settings: BoxSettings, tmp_path: Path) -> None:
    config = ssh.config_path(settings)
    config.write_text("Host work\n")
    config.chmod(0o400)

    assert_refused(tmp_path, lambda: ssh.ensure_include(settings), "chmod u\\+w")


def test_config_that_is_a_directory(settings: BoxSettings, tmp_path: Path) -> None:
    ssh.config_path(settings).mkdir()

    assert_refused(tmp_path, lambda: ssh.ensure_include(settings), "not a regular file")


def test_dangling_config_symlink(settings: BoxSettings, tmp_path: Path) -> None:
    ssh.config_path(settings).symlink_to(tmp_path / "dotfiles" / "missing")

    assert_refused(tmp_path, lambda: ssh.ensure_include(settings), "does not exist")


@pytest.mark.parametrize("address", ["203.0.113.10\nHost *", "", "a b", "x;rm"])
def test_address_that_could_inject_config_is_refused(
    settings: BoxSettings, tmp_path: Path, address: str
) -> None:
    assert_refused(tmp_path, lambda: ssh.update(settings, address), "not a host name")


@pytest.mark.skipif(os.geteuid() != 0, reason="switches to an unprivileged user")
def test_permission_denied_by_the_os_is_a_clear_error() -> None:
    # A genuine EACCES: `nobody` on a root-owned 0755 tree (pytest's tmp_path is 0700).
    base = Path(tempfile.mkdtemp(prefix="mlops-box-test-"))
    try:
        base.chmod(0o755)
        # `nobody` must read the template: a copy here, wherever the clone itself lives.
        project = base / "project"
        project.mkdir(mode=0o755)
        shutil.copy(PROJECT_DIR / "sshconfig.template", project / "sshconfig.template")
        settings = make_settings(base, project_dir=project)
        settings.ssh_dir.mkdir(parents=True, mode=0o755)
        settings.ssh_dir.parent.chmod(0o755)
        ssh.config_path(settings).write_text("Host work\n")
        before = snapshot(base)
        os.setegid(65534)
        os.seteuid(65534)
        try:
            with pytest.raises(SshConfigError, match="writable"):
                ssh.update(settings, "203.0.113.10")
        finally:
            os.seteuid(0)
            os.setegid(0)
        assert snapshot(base) == before
    finally:
        shutil.rmtree(base)
