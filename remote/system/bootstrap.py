"""`bootstrap(conn)`: the box's idempotent base set-up, before anything is installed on it.

Three things, each probed first and changed only when needed:
  - the apt package index, refreshed when packages are missing or it is over a day old;
  - the base packages the later steps need (a Python venv, curl for health checks,
    sqlite3 for looking at the MLflow database by hand, CA certificates);
  - a swap file, because a small instance without swap loses sshd to the OOM killer
    when a training run or `pip install` takes all the memory.
Nothing else: no upgrades of installed packages, no users, no services.
`ensure_packages` installs what a later step needs (nginx, say) the same way.
Works on Debian bookworm (the local box) and Ubuntu 24.04 (the AWS box).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass

from remote.changes import Changed
from remote.errors import MlopsBoxError
from remote.system.run import Connection, check, key_values, run, sh, sudo, tail

BASE_PACKAGES = ("ca-certificates", "curl", "python3-venv", "sqlite3")
SWAP_FILE = "/swapfile"
SWAP_MAX_MB = 4096
SWAP_MIN_MB = 1024
# Free space the root file system keeps after the swap file is made.
SWAP_DISK_MARGIN_MB = 2048
APT_INDEX_MAX_AGE_MIN = 24 * 60
# cloud-init and unattended-upgrades hold dpkg's lock on a fresh EC2 box for minutes.
APT_LOCK_TIMEOUT_S = 600
APT_TIMEOUT_S = 1200
APT = (
    f"sudo -n env DEBIAN_FRONTEND=noninteractive apt-get -q "
    f"-o DPkg::Lock::Timeout={APT_LOCK_TIMEOUT_S}"
)


class BootstrapError(MlopsBoxError):
    """The base set-up of the box failed."""


@dataclass(frozen=True)
class BoxFacts:
    """What the probe found on the box."""

    missing_packages: tuple[str, ...]
    index_fresh: bool
    container: str | None  # systemd-detect-virt --container, None on a VM or metal
    swap_active: bool
    memory_mb: int
    free_disk_mb: int


def swap_size_mb(memory_mb: int) -> int:
    """The swap file's size: as much as the RAM, between 1 and 4 GiB."""
    return max(SWAP_MIN_MB, min(memory_mb, SWAP_MAX_MB))


def parse_facts(text: str) -> BoxFacts:
    """Read the probe's `key=value` lines."""
    values = key_values(text)
    try:
        return BoxFacts(
            missing_packages=tuple(values.get("missing", "").split()),
            index_fresh=values["index_fresh"] == "yes",
            container=values["container"] or None,
            swap_active=values["swap"] != "",
            memory_mb=int(values["mem_kb"]) // 1024,
            free_disk_mb=int(values["free_kb"]) // 1024,
        )
    except (KeyError, ValueError) as exc:
        raise BootstrapError(f"The box answered the probe oddly ({exc}): {text!r}") from None


def packages_probe(packages: tuple[str, ...]) -> str:
    """A script printing `missing=<names not installed>` and `index_fresh=yes|no`."""
    quoted = " ".join(shlex.quote(p) for p in packages)
    return (
        "missing=''; "
        f"for p in {quoted}; do "
        "dpkg-query -W -f='${Status}' \"$p\" 2>/dev/null | grep -q 'install ok installed' "
        '|| missing="$missing $p"; done; '
        'echo "missing=$missing"; '
        "if [ -n \"$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' "
        f'-mmin -{APT_INDEX_MAX_AGE_MIN} 2>/dev/null | head -n 1)" ]; '
        "then echo index_fresh=yes; else echo index_fresh=no; fi; "
    )


def probe_script(packages: tuple[str, ...] = BASE_PACKAGES) -> str:
    return packages_probe(packages) + (
        # Exit status 1 with "none" on a VM: only the text matters.
        'c=$(systemd-detect-virt --container 2>/dev/null); [ "$c" = none ] && c=; '
        'echo "container=$c"; '
        # /proc/swaps, not swapon: /usr/sbin is not on a Debian login user's PATH.
        "echo \"swap=$(awk 'NR > 1 {print $1; exit}' /proc/swaps)\"; "
        "echo \"mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)\"; "
        "echo \"free_kb=$(df -Pk / | awk 'NR == 2 {print $4}')\""
    )


def bootstrap(conn: Connection, *, say: Callable[[str], None] = print) -> Changed:
    """Bring the box's base set-up up to date; return what changed."""
    result = check(conn, probe_script())
    if not result.ok:
        raise BootstrapError(f"Cannot inspect the box ({tail(result)}).")
    facts = parse_facts(result.stdout)
    changed = Changed()
    if facts.missing_packages or not facts.index_fresh:
        _apt(conn, "update", "refresh the package index")
        say("Refreshed the package index")
        changed.add("package index")
    if facts.missing_packages:
        names = " ".join(facts.missing_packages)
        _apt(conn, f"install -y --no-install-recommends {names}", f"install {names}")
        say(f"Installed {names}")
        changed.add(names)
    else:
        say(f"Base packages present: {' '.join(BASE_PACKAGES)}")
    return changed.merge(_ensure_swap(conn, facts, say))


def _ensure_swap(conn: Connection, facts: BoxFacts, say: Callable[[str], None]) -> Changed:
    if facts.container:
        # A container shares the host's kernel and memory; swapon needs CAP_SYS_ADMIN on
        # the host, which systemd-nspawn (like Docker) never grants. The host's own swap,
        # if any, already backs the container.
        say(f"No swap file: the box is a {facts.container} container, which cannot swapon")
        return Changed()
    if facts.swap_active:
        say("Swap is already on")
        return Changed()
    size = swap_size_mb(facts.memory_mb)
    if facts.free_disk_mb < size + SWAP_DISK_MARGIN_MB:
        raise BootstrapError(
            f"No room for a {size} MiB swap file: the root file system has "
            f"{facts.free_disk_mb} MiB free. Grow the volume (volumeSizeGb) and run "
            "`fab box.bootstrap` again."
        )
    script = (
        "set -e; "
        f"if [ ! -f {SWAP_FILE} ]; then "
        f"fallocate -l {size}M {SWAP_FILE} || dd if=/dev/zero of={SWAP_FILE} bs=1M count={size}; "
        f"chmod 600 {SWAP_FILE}; mkswap {SWAP_FILE} >/dev/null; fi; "
        f"chmod 600 {SWAP_FILE}; swapon {SWAP_FILE}; "
        f"grep -qE '^{SWAP_FILE}[[:space:]]' /etc/fstab || "
        f"echo '{SWAP_FILE} none swap sw 0 0' >> /etc/fstab"
    )
    run(conn, sudo(sh(script)), what="turn on the swap file", error=BootstrapError)
    say(f"Made and turned on {SWAP_FILE} ({size} MiB), also at boot (/etc/fstab)")
    return Changed([SWAP_FILE])


def ensure_packages(
    conn: Connection,
    packages: tuple[str, ...],
    *,
    say: Callable[[str], None],
    masked_units: tuple[str, ...] = (),
    error: type[MlopsBoxError] = BootstrapError,
) -> Changed:
    """Install those of `packages` the box lacks (refreshing a stale package index first).

    `masked_units` are masked before the install and left masked: a package whose
    maintainer script starts its service at once (nginx, with a default site on
    0.0.0.0:80) finds it masked and skips the start. The caller unmasks each unit once
    its own configuration is in place, and treats a masked unit as not yet set up.
    """
    result = check(conn, packages_probe(packages))
    values = key_values(result.stdout)
    if not result.ok or "index_fresh" not in values:
        raise error(f"Cannot inspect the box's packages ({tail(result)}).")
    missing = tuple(values["missing"].split())
    if not missing:
        return Changed()
    if values["index_fresh"] != "yes":
        _apt(conn, "update", "refresh the package index", error)
    names = " ".join(missing)
    mask = "".join(f"systemctl mask {shlex.quote(u)} >/dev/null 2>&1 && " for u in masked_units)
    install = (
        f"{mask}env DEBIAN_FRONTEND=noninteractive apt-get -q "
        f"-o DPkg::Lock::Timeout={APT_LOCK_TIMEOUT_S} install -y --no-install-recommends {names}"
    )
    run(
        conn,
        sudo(sh(install)),
        what=f"install {names}",
        timeout_s=APT_TIMEOUT_S,
        error=error,
        hint="Check its network and apt sources, then run the command again.",
    )
    say(f"Installed {names}")
    return Changed([names])


def _apt(
    conn: Connection, args: str, what: str, error: type[MlopsBoxError] = BootstrapError
) -> None:
    run(
        conn,
        f"{APT} {args}",
        what=what,
        timeout_s=APT_TIMEOUT_S,
        error=error,
        hint="Check its network and apt sources, then run `fab box.bootstrap` again.",
    )
