"""keygen: an Ed25519 pair in OpenSSH's formats, made once, on temporary directories."""

from __future__ import annotations

import dataclasses
import shutil
import stat
import subprocess
from pathlib import Path

import paramiko
import pytest

from remote.errors import SshConfigError
from remote.settings import BoxSettings
from remote.ssh.keys import keygen
from tests.remote.factories import settings_in


def make_settings(tmp_path: Path) -> BoxSettings:
    # The key's directories do not exist yet: keygen makes them.
    return settings_in(
        tmp_path, key=tmp_path / "new" / "dir" / "mlops-test", ssh_dir=tmp_path / ".ssh"
    )


def test_keygen_creates_a_loadable_ed25519_pair(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)

    assert keygen(settings) is True

    key = paramiko.Ed25519Key.from_private_key_file(str(settings.key))
    public = settings.public_key.read_text()
    key_type, blob, comment = public.split()
    assert (key_type, blob) == (key.get_name(), key.get_base64())
    assert comment == "mlops-box@mlops-test"
    assert stat.S_IMODE(settings.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.public_key.stat().st_mode) == 0o644
    for directory in (settings.key.parent, settings.key.parent.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert sorted(p.name for p in settings.key.parent.iterdir()) == [
        "mlops-test",
        "mlops-test.pub",
    ]


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")
def test_openssh_reads_the_private_key(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    keygen(settings)

    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(settings.key)], check=True, capture_output=True, text=True
    ).stdout.split()

    assert derived[:2] == settings.public_key.read_text().split()[:2]


def test_second_keygen_changes_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    keygen(settings)
    before = settings.key.read_bytes(), settings.public_key.read_bytes()

    assert keygen(settings) is False
    assert (settings.key.read_bytes(), settings.public_key.read_bytes()) == before


@pytest.mark.parametrize("present", ["private", "public"])
def test_half_a_pair_is_refused(tmp_path: Path, present: str) -> None:
    settings = make_settings(tmp_path)
    keygen(settings)
    (settings.public_key if present == "private" else settings.key).unlink()
    kept = settings.key if present == "private" else settings.public_key
    before = kept.read_bytes()

    with pytest.raises(SshConfigError, match="does not"):
        keygen(settings)
    assert kept.read_bytes() == before
    assert sorted(p.name for p in kept.parent.iterdir()) == [kept.name]


def test_unwritable_key_directory_is_a_clear_error(tmp_path: Path) -> None:
    settings = dataclasses.replace(make_settings(tmp_path), key=tmp_path / "file" / "key")
    (tmp_path / "file").write_text("a file where a directory should be\n")

    with pytest.raises(SshConfigError, match="Cannot create the key"):
        keygen(settings)
