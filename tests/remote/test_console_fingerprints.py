"""cloud-init's host key fingerprints in EC2 console output: a pure parser, no mocks.

The fixtures (tests/fixtures/cloud_init_console, see its README for where each shape
comes from) hold real keys and the real `ssh-keygen -l` lines for them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from remote.providers.aws.console import ConsoleFingerprints, parse_host_key_fingerprints
from remote.providers.base import HostKeyEvidence, sha256_fingerprint

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cloud_init_console"
JAMMY = "ubuntu-22.04-cloud-init-24.1.txt"
BIONIC = "ubuntu-18.04-cloud-init-20.1.txt"
CENTOS = "centos-7-cloud-init-19.4.txt"
TRUSTY_MD5 = "ubuntu-14.04-cloud-init-0.7.5-md5.txt"

ECDSA = "SHA256:ZKDxaUa3tACOAVVoiFXhOs+Uk0gfdFpEQiZjsKBy8Fk"
ED25519 = "SHA256:d1R+H3AYJdn9B62VJ3YOZ17UFQ/mSz35TJiaC4c834c"
RSA = "SHA256:Im440TQoFlyALx7T5JYqInui6glh+S6wjRsr9E3ygu0"
DSA = "SHA256:fdQUfyvGVxobVilDf4zEi9meshb8mIjVEvRlUEjwKCQ"


def console(name: str) -> str:
    # Bytes, decoded as the provider decodes GetConsoleOutput: line endings kept as sent.
    return (FIXTURES / name).read_bytes().decode()


def keys_block(text: str) -> list[tuple[str, str]]:
    """The (type, base64) keys of the `BEGIN SSH HOST KEY KEYS` block that follows."""
    lines = text.splitlines()
    start = lines.index("-----BEGIN SSH HOST KEY KEYS-----")
    end = lines.index("-----END SSH HOST KEY KEYS-----")
    return [(ln.split()[0], ln.split()[1]) for ln in lines[start + 1 : end]]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (JAMMY, {ECDSA, ED25519, RSA}),  # `<14>May 14 09:12:35 cloud-init: ` prefix, CRLF
        (BIONIC, {DSA, ECDSA, ED25519, RSA}),  # `<14>Oct 28 17:47:00 ec2: ` prefix
        (CENTOS, {ECDSA, ED25519, RSA}),  # bare `ec2: ` prefix
    ],
)
def test_real_console_outputs_give_every_listed_fingerprint(name: str, expected: set[str]) -> None:
    text = console(name)

    parsed = parse_host_key_fingerprints(text)

    assert parsed == ConsoleFingerprints(frozenset(expected), complete=True)
    # Each listed fingerprint is the one of a key the instance printed in full after it.
    assert {sha256_fingerprint(blob) for _, blob in keys_block(text)} <= parsed.fingerprints


def test_the_fixture_is_crlf_and_line_endings_do_not_matter() -> None:
    crlf = console(JAMMY)
    assert "\r\n" in crlf

    as_lf = parse_host_key_fingerprints(crlf.replace("\r\n", "\n"))
    as_cr = parse_host_key_fingerprints(crlf.replace("\r\n", "\r"))

    assert as_lf == as_cr == parse_host_key_fingerprints(crlf)


def test_fingerprints_outside_the_block_are_not_listed() -> None:
    # The fixture already has ssh-keygen's own `SHA256:...` lines from key generation and
    # the authorized key table before the block; add a decoy after it and junk around.
    decoy = "SHA256:" + "A" * 43
    text = (
        "\x00\x1b[H\x1b[2J\x1b[3J garbage \udcff before\r\n"
        + f"<14>May 14 09:12:30 cloud-init: 256 {decoy} root@elsewhere (ED25519)\r\n"
        + console(JAMMY)
        + f"\r\nec2: 256 {decoy} root@elsewhere (ED25519)\r\n\x1b[?25h trailing junk"
    )

    parsed = parse_host_key_fingerprints(text)

    assert decoy not in parsed.fingerprints
    assert parsed.fingerprints == {ECDSA, ED25519, RSA}


def test_the_host_keys_block_alone_lists_no_fingerprint() -> None:
    text = console(CENTOS)
    keys_only = text[text.index("-----BEGIN SSH HOST KEY KEYS-----") :]

    assert parse_host_key_fingerprints(keys_only) == ConsoleFingerprints(frozenset(), False)


def test_a_block_cut_before_its_end_line_gives_what_it_listed_and_says_so() -> None:
    text = console(JAMMY)
    cut = text[: text.index("(ED25519)") + len("(ED25519)")]

    parsed = parse_host_key_fingerprints(cut)

    assert parsed == ConsoleFingerprints(frozenset({ECDSA, ED25519}), complete=False)


def test_a_getty_reset_that_swallows_the_end_line_leaves_the_block_open() -> None:
    text = console(CENTOS).replace(
        "ec2: -----END SSH HOST KEY FINGERPRINTS-----", "ec2: -----END SSH HO\x1bc\x1b[H\x1b[J"
    )

    parsed = parse_host_key_fingerprints(text)

    assert parsed.fingerprints == {ECDSA, ED25519, RSA}
    assert parsed.complete is False


def test_a_fingerprint_run_together_with_other_text_is_not_one() -> None:
    block = [
        "ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----",
        f"ec2: 256 {ED25519}Q root@x (ED25519)",  # 44 base64 characters
        f"ec2: 256 X{ED25519} root@x (ED25519)",
        f"ec2: 256 {ED25519[:-1]} root@x (ED25519)",  # 42
        "ec2: -----END SSH HOST KEY FINGERPRINTS-----",
    ]

    assert parse_host_key_fingerprints("\n".join(block)).fingerprints == frozenset()


def test_md5_fingerprints_of_old_images_are_no_evidence() -> None:
    parsed = parse_host_key_fingerprints(console(TRUSTY_MD5))

    assert parsed == ConsoleFingerprints(frozenset(), complete=True)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[    0.000000] Linux version 6.5.0-1020-aws\r\n[  OK  ] Reached target Cloud-init target.",
        "-----END SSH HOST KEY FINGERPRINTS-----\n256 " + ED25519 + " root@x (ED25519)\n",
    ],
)
def test_no_block_lists_nothing(text: str) -> None:
    assert parse_host_key_fingerprints(text) == ConsoleFingerprints(frozenset(), complete=False)


def test_two_boots_in_one_output_list_both_blocks() -> None:
    text = console(CENTOS) + "\n" + console(BIONIC)

    assert parse_host_key_fingerprints(text).fingerprints == {DSA, ECDSA, ED25519, RSA}


# --- the evidence record -------------------------------------------------------------


def test_sha256_fingerprint_is_what_ssh_keygen_prints(tmp_path: Path) -> None:
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    printed = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{key}.pub"], capture_output=True, text=True, check=True
    ).stdout.split()[1]

    assert sha256_fingerprint(Path(f"{key}.pub").read_text().split()[1]) == printed


def test_evidence_vouches_only_for_what_it_names() -> None:
    keys = keys_block(console(JAMMY))
    ed25519 = next(k for k in keys if k[0] == "ssh-ed25519")
    rsa = next(k for k in keys if k[0] == "ssh-rsa")
    by_fingerprint = HostKeyEvidence("console", fingerprints=frozenset({ED25519}))
    by_key = HostKeyEvidence("tree", keys=frozenset({rsa}))

    assert by_fingerprint.vouches_for(*ed25519)
    assert not by_fingerprint.vouches_for(*rsa)
    assert by_key.vouches_for(*rsa)
    assert not by_key.vouches_for(*ed25519)
    # The same blob under another type name is not the pinned key.
    assert not by_key.vouches_for("ssh-ed25519", rsa[1])
    assert not by_fingerprint.vouches_for("ssh-ed25519", "not base64!")
    assert not HostKeyEvidence("nothing")
    assert by_fingerprint and by_key
