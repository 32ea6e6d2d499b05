"""Run host commands as argument lists; a failure becomes one ProviderError that says what to do."""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import subprocess
from collections.abc import Sequence

from remote.errors import ProviderError, UnsupportedPlatform

# How much of a failing command's stderr goes into the error message.
STDERR_TAIL_CHARS = 600
# The host tools the local box needs, and the Debian package that ships each one.
HOST_TOOLS = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "ip": "iproute2",
    "iptables": "iptables",
    "chroot": "coreutils",
}


def run(
    cmd: Sequence[str],
    *,
    hint: str,
    check: bool = True,
    input_text: str | None = None,
    timeout_s: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `cmd` and return it; if it fails (and `check`), raise ProviderError with `hint`."""
    try:
        proc = subprocess.run(
            list(cmd),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError:
        raise ProviderError(
            f"`{cmd[0]}` is not installed: install it (apt-get install "
            f"{HOST_TOOLS.get(cmd[0], cmd[0])}) and retry."
        ) from None
    except subprocess.TimeoutExpired:
        raise ProviderError(
            f"`{shlex.join(cmd)}` did not finish within {timeout_s:.0f}s: {hint}"
        ) from None
    if check and proc.returncode != 0:
        raise ProviderError(command_failed(cmd, proc.returncode, proc.stderr, hint))
    return proc


def command_failed(cmd: Sequence[str], code: int, stderr: str, hint: str) -> str:
    """The one-sentence message for a failed command: which, how, and what to do."""
    tail = " ".join(stderr.strip().split())[-STDERR_TAIL_CHARS:]
    detail = f" ({tail})" if tail else ""
    return f"`{shlex.join(cmd)}` failed with exit status {code}{detail}: {hint}"


def require_host() -> None:
    """Refuse early, with what to do, where a local box cannot run."""
    if platform.system() != "Linux":
        raise UnsupportedPlatform(
            f"The local box needs Linux (this is {platform.system()}): "
            "use box.provider=aws, or run on a Linux machine."
        )
    if os.geteuid() != 0:
        raise UnsupportedPlatform(
            "The local box needs root (network namespaces, iptables, systemd-nspawn): "
            "run the command with sudo."
        )
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None})
    if missing:
        raise UnsupportedPlatform(
            f"The local box needs host tools that are missing: apt-get install {' '.join(missing)}."
        )
