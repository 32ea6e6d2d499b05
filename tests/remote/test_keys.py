"""keygen: an Ed25519 pair in OpenSSH's formats, made once, on temporary directories."""

from __future__ import annotations

import dataclasses
import multiprocessing
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import paramiko
import pytest

from remote.errors import SshConfigError
from remote.settings import BoxSettings
from remote.ssh.keys import check_private_key, keygen
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


# --- a key ssh would refuse, and keys that are not there ---------------------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660])
def test_a_private_key_open_to_others_is_refused_with_the_chmod(tmp_path: Path, mode: int) -> None:
    settings = make_settings(tmp_path)
    keygen(settings)
    settings.key.chmod(mode)
    before = settings.key.read_bytes(), settings.public_key.read_bytes()

    for action in (lambda: check_private_key(settings.key), lambda: keygen(settings)):
        with pytest.raises(SshConfigError) as caught:
            action()
        assert str(caught.value) == (
            f"The private key {settings.key} is open to other users (mode {mode:04o}) and "
            f"ssh refuses such a key: run `chmod 600 {settings.key}` and run again."
        )
    assert (settings.key.read_bytes(), settings.public_key.read_bytes()) == before
    assert stat.S_IMODE(settings.key.stat().st_mode) == mode


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")
def test_openssh_refuses_what_check_private_key_refuses(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    keygen(settings)
    settings.key.chmod(0o644)

    # As the key's owner (OpenSSH only checks the modes of a key its user owns).
    refused = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(settings.key)], capture_output=True, text=True
    )

    assert refused.returncode != 0
    assert "UNPROTECTED PRIVATE KEY FILE" in refused.stderr
    settings.key.chmod(0o600)
    check_private_key(settings.key)


def test_a_private_only_its_owner_can_read_is_accepted(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    keygen(settings)
    settings.key.chmod(0o400)

    check_private_key(settings.key)


def test_a_missing_private_key_says_how_to_get_one(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)

    with pytest.raises(SshConfigError, match=r"does not exist: run `fab box.keygen`, or set"):
        check_private_key(settings.key)


@pytest.mark.parametrize("which", ["private", "public"])
def test_a_dangling_key_symlink_is_named_not_taken_for_another_run(
    tmp_path: Path, which: str
) -> None:
    settings = make_settings(tmp_path)
    link = settings.key if which == "private" else settings.public_key
    link.parent.mkdir(parents=True)
    link.symlink_to(tmp_path / "dotfiles" / "gone")

    with pytest.raises(SshConfigError) as caught:
        keygen(settings)

    assert str(caught.value) == (
        f"{link} is a symlink to {tmp_path / 'dotfiles' / 'gone'}, which does not exist: "
        "restore that file, or remove the link, and run again."
    )
    assert sorted(p.name for p in link.parent.iterdir()) == [link.name]


# --- many keygens at once: exactly one makes the pair ------------------------------

WORKERS = 8
ROUNDS = 15
JOIN_TIMEOUT_S = 120


def keygen_worker(key: str, start: Any, results: Any) -> None:
    settings = dataclasses.replace(settings_in(Path(key).parent), key=Path(key))
    start.wait()
    try:
        results.put("created" if keygen(settings) else "kept")
    except SshConfigError as exc:
        results.put(f"refused: {exc}")


def test_concurrent_keygens_make_one_pair(tmp_path: Path) -> None:
    # Each round, WORKERS processes released together race to create the same key. The
    # exclusive create (a hard link that fails if the name exists) lets exactly one win;
    # the others keep what is there, or are told that another run is making it.
    context = multiprocessing.get_context("fork")
    for round_ in range(ROUNDS):
        key = tmp_path / f"round-{round_}" / "id_ed25519"
        key.parent.mkdir(mode=0o700)
        start, results = context.Barrier(WORKERS), context.Queue()
        processes = [
            context.Process(target=keygen_worker, args=(str(key), start, results))
            for _ in range(WORKERS)
        ]
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=JOIN_TIMEOUT_S) for _ in processes]
        for process in processes:
            process.join(JOIN_TIMEOUT_S)

        assert outcomes.count("created") == 1, (round_, outcomes)
        for outcome in outcomes:
            assert (
                outcome in ("created", "kept")
                or "another run" in outcome
                or (
                    "does not" in outcome  # the private half is there, the public not yet
                )
            ), outcome
        derived = paramiko.Ed25519Key.from_private_key_file(str(key))
        public = (key.parent / "id_ed25519.pub").read_text().split()
        assert public[:2] == [derived.get_name(), derived.get_base64()], round_
