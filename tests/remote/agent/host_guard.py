"""Keep the agent, run on this machine by the tests, from changing what runs here.

The agent is made for the box: its idle check powers the machine off, its deploy and
training steps start and stop units. Tests run its code on the machine that runs the
tests, as root, so a regressed guard (a dry run that is not dry) would act on this
machine. `install(folder)` puts stand-ins first on PATH for every command that could:
`systemctl` passes read-only verbs to the real one (or answers `list-units` with a
given listing) and refuses every other verb; `systemd-run`, `poweroff`, `reboot`,
`halt` and `shutdown` always refuse. Each refused call is appended to the log file,
so a test can see what the agent asked for.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

READ_ONLY_VERBS = ("list-units", "is-active", "is-enabled", "is-failed", "show", "status", "cat")
ALWAYS_REFUSED = ("systemd-run", "poweroff", "reboot", "halt", "shutdown")
LOG_ENV = "MLOPS_TEST_REFUSED_LOG"
LISTING_ENV = "MLOPS_TEST_UNITS_LISTING"  # a file: what `systemctl list-units` prints


def install(folder: Path) -> Path:
    """Write the stand-ins into `folder`; returns it (put it first on PATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    real = shutil.which("systemctl") or "/nonexistent/systemctl"
    refuse = (
        f'echo "$(basename "$0") $*" >> "${{{LOG_ENV}:-/dev/null}}"\n'
        'echo "$(basename "$0") is refused in tests: it would act on the test machine" >&2\n'
        "exit 1\n"
    )
    systemctl = (
        "#!/bin/sh\n"
        f'if [ "$1" = list-units ] && [ -n "${{{LISTING_ENV}:-}}" ]; then\n'
        f'  cat "${LISTING_ENV}"; exit 0\n'
        "fi\n"
        f'case "$1" in {"|".join(READ_ONLY_VERBS)}) exec {shlex.quote(real)} "$@";; esac\n' + refuse
    )
    _write(folder / "systemctl", systemctl)
    for name in ALWAYS_REFUSED:
        _write(folder / name, "#!/bin/sh\n" + refuse)
    return folder


def path_with(folder: Path) -> str:
    return f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)
