"""What makes a copied tree one particular box: identity, user, keys, sshd, CA, DNS.

Every step probes first and changes only what differs, so configuring a configured box
changes nothing and says so. Writes refuse to follow a symlink out of the rootfs: the
box's user owns parts of that tree.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from remote.errors import ProviderError
from remote.local_files import write_atomically
from remote.providers.local.nspawn import BOX_PACKAGE_CACHE
from remote.providers.local.run import run

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BOX_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Extra CAs of this machine (e.g. a TLS-inspecting proxy's) go here, one file each.
BOX_EXTRA_CA_DIR = "usr/local/share/ca-certificates/mlops-box"
SUDOERS_FILE = "etc/sudoers.d/90-mlops-box"
SSHD_DROP_IN = "etc/ssh/sshd_config.d/10-mlops-box.conf"
# Where `ssh-keygen -A` writes the box's host keys (sshd's default HostKey paths).
HOST_KEY_DIR = "etc/ssh"
# The host configures the box's interface from outside (see netns): networkd must not.
MASKED_UNITS = (
    "systemd-networkd.service",
    "systemd-networkd.socket",
    "systemd-networkd-wait-online.service",
)
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----\s+(.*?)\s+-----END CERTIFICATE-----", re.S)


@dataclass(frozen=True)
class BoxIdentity:
    name: str
    user: str
    public_key: str


def render_hosts(name: str) -> str:
    return f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def render_sudoers(user: str) -> str:
    return f"{user} ALL=(ALL) NOPASSWD:ALL\n"


def render_sshd_drop_in() -> str:
    # Debian's sshd_config reads sshd_config.d first, and the first value set wins.
    return "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n"


def render_pip_conf() -> str:
    """pip trusts the CAs the box trusts, and keeps its cache in the host's shared one
    (bind-mounted at every start)."""
    return f"[global]\ncert = {BOX_CA_BUNDLE}\ncache-dir = {BOX_PACKAGE_CACHE}/pip\n"


def render_environment() -> str:
    # requests (MLflow's client) ships its own CA list; point it at the box's bundle.
    return f"REQUESTS_CA_BUNDLE={BOX_CA_BUNDLE}\nSSL_CERT_FILE={BOX_CA_BUNDLE}\n"


def render_resolv_conf(nameservers: list[str]) -> str:
    return "".join(f"nameserver {ns}\n" for ns in nameservers)


def pem_certificates(text: str) -> dict[str, str]:
    """Certificates in a PEM bundle, keyed by a digest of their DER bytes."""
    certs: dict[str, str] = {}
    for body in _PEM.findall(text):
        der = base64.b64decode("".join(body.split()))
        b64 = base64.b64encode(der).decode()
        pem = "-----BEGIN CERTIFICATE-----\n"
        pem += "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
        pem += "\n-----END CERTIFICATE-----\n"
        certs[hashlib.sha256(der).hexdigest()[:16]] = pem
    return certs


def extra_certificates(host_bundle: str, box_roots: list[str]) -> dict[str, str]:
    """The host's CAs that the box's own ca-certificates package does not ship."""
    known: set[str] = set()
    for text in box_roots:
        known.update(pem_certificates(text))
    return {d: pem for d, pem in pem_certificates(host_bundle).items() if d not in known}


def configure(rootfs: Path, box: BoxIdentity) -> bool:
    """Make `rootfs` the box `box`; return whether anything changed."""
    changed = write(rootfs, "etc/hostname", box.name + "\n")
    changed |= write(rootfs, "etc/hosts", render_hosts(box.name))
    if not _read(rootfs, "etc/machine-id").strip():
        changed |= write(rootfs, "etc/machine-id", uuid.uuid4().hex + "\n", mode=0o444)
    if not (rootfs / HOST_KEY_DIR / "ssh_host_ed25519_key").exists():
        # Fresh host keys per box: the cache never holds any.
        _chroot(rootfs, ["ssh-keygen", "-A"])
        changed = True
    changed |= write(rootfs, SSHD_DROP_IN, render_sshd_drop_in())
    for unit in MASKED_UNITS:
        changed |= _mask(rootfs, unit)
    changed |= write(rootfs, "etc/pip.conf", render_pip_conf())
    changed |= write(rootfs, "etc/environment", render_environment())
    changed |= _trust_host_cas(rootfs)
    changed |= _ensure_user(rootfs, box.user)
    changed |= write(rootfs, SUDOERS_FILE, render_sudoers(box.user), mode=0o440)
    uid, gid, home = _passwd_entry(rootfs, box.user)
    ssh_dir = home.lstrip("/") + "/.ssh"
    changed |= make_dir(rootfs, ssh_dir, mode=0o700, uid=uid, gid=gid)
    key_text = box.public_key.strip() + "\n"
    changed |= write(rootfs, f"{ssh_dir}/authorized_keys", key_text, mode=0o600, uid=uid, gid=gid)
    return changed


def host_public_keys(rootfs: Path) -> frozenset[tuple[str, str]]:
    """The (type, base64) public host keys `ssh-keygen -A` made in the box's tree."""
    directory = _inside(rootfs, HOST_KEY_DIR + "/x").parent
    found = set()
    for path in sorted(directory.glob("ssh_host_*_key.pub")):
        fields = _read(rootfs, f"{HOST_KEY_DIR}/{path.name}").split()
        if len(fields) >= 2:
            found.add((fields[0], fields[1]))
    return frozenset(found)


def write(
    rootfs: Path, rel: str, content: str, *, mode: int = 0o644, uid: int = 0, gid: int = 0
) -> bool:
    """Write `content` to rootfs/rel with this mode and owner, unless it is so already."""
    path = _inside(rootfs, rel)
    if path.is_symlink():
        path.unlink()
    elif path.is_file():
        st = path.stat()
        same_meta = (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (mode, uid, gid)
        if same_meta and path.read_text() == content:
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, content.encode(), mode, owner=(uid, gid))
    return True


def make_dir(rootfs: Path, rel: str, *, mode: int, uid: int, gid: int) -> bool:
    path = _inside(rootfs, rel)
    if path.is_symlink():
        path.unlink()
    if path.is_dir():
        st = path.stat()
        if (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (mode, uid, gid):
            return False
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return True


def _inside(rootfs: Path, rel: str) -> Path:
    """rootfs/rel, refused if a symlink on the way leads out of the rootfs."""
    root = rootfs.resolve()
    path = root / rel
    if not path.parent.resolve().is_relative_to(root):
        raise ProviderError(
            f"{path.parent} in the local box leads outside its rootfs (a symlink): "
            "remove that symlink inside the box, or destroy and re-create the box."
        )
    return path


def _read(rootfs: Path, rel: str) -> str:
    path = _inside(rootfs, rel)
    return path.read_text() if path.is_file() and not path.is_symlink() else ""


def _mask(rootfs: Path, unit: str) -> bool:
    path = _inside(rootfs, f"etc/systemd/system/{unit}")
    if path.is_symlink() and os.readlink(path) == "/dev/null":
        return False
    if path.exists() or path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to("/dev/null")
    return True


def _trust_host_cas(rootfs: Path) -> bool:
    if not HOST_CA_BUNDLE.is_file():
        return False
    mozilla = sorted((rootfs / "usr/share/ca-certificates").rglob("*.crt"))
    extras = extra_certificates(HOST_CA_BUNDLE.read_text(), [p.read_text() for p in mozilla])
    wanted = {f"host-{digest}.crt": pem for digest, pem in extras.items()}
    directory = _inside(rootfs, BOX_EXTRA_CA_DIR + "/x").parent
    changed = False
    if directory.is_dir():
        for stale in directory.glob("*.crt"):
            if stale.name not in wanted:
                stale.unlink()
                changed = True
    for file_name, pem in wanted.items():
        changed |= write(rootfs, f"{BOX_EXTRA_CA_DIR}/{file_name}", pem)
    if changed:
        _chroot(rootfs, ["update-ca-certificates", "--fresh"])
    return changed


def _ensure_user(rootfs: Path, user: str) -> bool:
    if _find_passwd(rootfs, user) is not None:
        return False
    _chroot(rootfs, ["useradd", "--create-home", "--shell", "/bin/bash", "--user-group", user])
    return True


def _passwd_entry(rootfs: Path, user: str) -> tuple[int, int, str]:
    entry = _find_passwd(rootfs, user)
    if entry is None:
        raise ProviderError(
            f"User {user} is missing in the local box after useradd: destroy and re-create the box."
        )
    return entry


def _find_passwd(rootfs: Path, user: str) -> tuple[int, int, str] | None:
    for line in _read(rootfs, "etc/passwd").splitlines():
        fields = line.split(":")
        if len(fields) >= 6 and fields[0] == user:
            return int(fields[2]), int(fields[3]), fields[5]
    return None


def _chroot(rootfs: Path, cmd: list[str]) -> None:
    run(
        ["chroot", str(rootfs), *cmd],
        hint="the local box's tree is damaged: run `fab box.destroy` then `fab box.create`.",
    )
