"""The box's Debian tree: debootstrapped once into the shared cache, then copied per box.

The cache holds nothing that must differ between boxes (ssh host keys, machine-id,
hostname, users are all made per box by `boxconfig`), so any number of boxes can be
copied from one cache entry. An entry is keyed by everything that shapes it.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

from remote.local_files import locked
from remote.providers.local.run import run
from remote.settings import LocalBoxSettings

# Bump when the way a cache entry is made changes, so old entries are not reused.
CACHE_FORMAT = 1
DEBOOTSTRAP_VARIANT = "minbase"
# What a box needs on top of minbase: an init that nspawn can boot, sshd, sudo, a
# Python that can make venvs, TLS roots, and the tools the fab tasks probe with.
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "libpam-systemd",
    "openssh-server",
    "sudo",
    "python3",
    "python3-venv",
    "ca-certificates",
    "iproute2",
    "netbase",
    "procps",
    "curl",
    "less",
)
DEBOOTSTRAP_TIMEOUT_S = 1800.0
COPY_TIMEOUT_S = 600.0
# Files debootstrap leaves that would be wrong (or a secret) if boxes shared them.
PER_BOX_FILES = ("etc/hostname", "etc/resolv.conf", "etc/machine-id")


def cache_key(suite: str, mirror: str, packages: tuple[str, ...] = PACKAGES) -> str:
    """A short, stable name for the cache entry that these inputs produce."""
    text = "\n".join([str(CACHE_FORMAT), DEBOOTSTRAP_VARIANT, suite, mirror, *sorted(packages)])
    return f"{suite}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def debootstrap_command(suite: str, mirror: str, target: Path) -> list[str]:
    return [
        "debootstrap",
        f"--variant={DEBOOTSTRAP_VARIANT}",
        f"--include={','.join(PACKAGES)}",
        suite,
        str(target),
        mirror,
    ]


def render_sources_list(suite: str, mirror: str) -> str:
    """apt sources with updates; security only where its location is known (the default mirror)."""
    lines = [f"deb {mirror} {suite} main", f"deb {mirror} {suite}-updates main"]
    if mirror.rstrip("/") in ("http://deb.debian.org/debian", "https://deb.debian.org/debian"):
        security = mirror.rstrip("/") + "-security"
        lines.append(f"deb {security} {suite}-security main")
    return "\n".join(lines) + "\n"


def ensure_cache(local: LocalBoxSettings) -> tuple[Path, bool]:
    """Return the cached tree for these settings, and whether it had to be built now."""
    entry = local.cache / cache_key(local.suite, local.mirror)
    with locked(local.cache / f"{entry.name}.lock"):
        if entry.is_dir():
            return entry, False
        _build(local, entry)
        return entry, True


def _build(local: LocalBoxSettings, entry: Path) -> None:
    partial = entry.with_name(entry.name + ".partial")
    if partial.exists():
        # A build that was interrupted: its tree cannot be trusted.
        shutil.rmtree(partial)
    sys.stderr.write(
        f"Building the Debian {local.suite} image for local boxes with debootstrap "
        f"(a few minutes, once; cached in {entry})...\n"
    )
    sys.stderr.flush()
    run(
        debootstrap_command(local.suite, local.mirror, partial),
        hint=(
            f"check that {local.mirror} is reachable and box.local.suite={local.suite} exists "
            f"(log: {partial}/debootstrap/debootstrap.log), then retry."
        ),
        timeout_s=DEBOOTSTRAP_TIMEOUT_S,
    )
    for key in (partial / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    for rel in PER_BOX_FILES:
        path = partial / rel
        if path.exists() or path.is_symlink():
            path.unlink()
    (partial / "etc/apt/sources.list").write_text(render_sources_list(local.suite, local.mirror))
    run(["chroot", str(partial), "apt-get", "clean"], hint="the cached image is broken: retry.")
    partial.rename(entry)


def copy_tree(source: Path, rootfs: Path) -> None:
    """Copy the cached tree to `rootfs`, atomically: a half copy never looks like a box."""
    partial = rootfs.with_name(rootfs.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    run(
        ["cp", "-a", "--reflink=auto", str(source), str(partial)],
        hint=f"check the free space under {partial.parent} and retry.",
        timeout_s=COPY_TIMEOUT_S,
    )
    partial.rename(rootfs)
