"""Change one of nginx's site files safely: write, `nginx -t`, reload, confirm, or undo.

Every change of nginx's config on the box goes through `apply_site`, under one lock: the
router's (from the deploy state) and any other site's (the controller's `ensure_site`).
A config that `nginx -t` refuses is never loaded; a reload nginx could not apply (a port
another process holds, which `nginx -t` does not see) is caught by waiting for the new
generation of worker processes. Either way the old file goes back, nginx keeps (or
returns to) the old config, and the failure carries nginx's own message.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time

from . import paths
from .failure import AgentFailure
from .files import flocked, write_text

KIND_NGINX = "nginx-config"
RELOAD_TIMEOUT_S = 10.0
START_TIMEOUT_S = 20.0
POLL_S = 0.02
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")


def site_path(name: str) -> str:
    if not name or not set(name) <= _NAME_CHARS:
        raise AgentFailure(KIND_NGINX, f"{name!r} is not a site name (a-z, 0-9 and -).")
    return f"{paths.NGINX_SITES_DIR}/{name}.conf"


def apply_site(name: str, content: str | None) -> bool:
    """Make site `name` hold `content` (None: remove it) and nginx run it.

    Returns whether anything changed. Raises AgentFailure(nginx-config) with nginx's
    message, after putting the old file back, when nginx refuses or cannot load it.
    """
    path = site_path(name)
    with flocked(paths.NGINX_LOCK):
        old = _read(path)
        if old == content and (content is None or _running()):
            return False
        _put(path, content)
        try:
            _load_config()
        except AgentFailure:
            _put(path, old)
            with contextlib.suppress(AgentFailure):
                _load_config()
            raise
        return True


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _put(path: str, content: str | None) -> None:
    if content is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    else:
        write_text(path, content)


def _load_config() -> None:
    """`nginx -t`, then reload the running nginx (or start a stopped one) and confirm."""
    tested = subprocess.run(["nginx", "-t", "-q"], capture_output=True, text=True, check=False)
    if tested.returncode != 0:
        raise AgentFailure(KIND_NGINX, f"nginx refused the config: {_oneline(tested.stderr)}")
    if not _running():
        _start()
        return
    before = _workers()
    log_size = _size(paths.NGINX_ERROR_LOG)
    subprocess.run(["systemctl", "reload", "nginx"], capture_output=True, check=False)
    deadline = time.monotonic() + RELOAD_TIMEOUT_S
    while time.monotonic() < deadline:
        # A reload that worked starts a new generation of workers; a failed one keeps the
        # old workers and only writes why to the error log.
        if _workers() - before:
            return
        time.sleep(POLL_S)
    raise AgentFailure(
        KIND_NGINX,
        f"nginx did not load the new config: {_error_log_since(log_size) or 'no reason logged'}",
    )


def _start() -> None:
    log_size = _size(paths.NGINX_ERROR_LOG)
    started = subprocess.run(
        ["systemctl", "start", "nginx"], capture_output=True, text=True, check=False
    )
    if started.returncode != 0:
        reason = _error_log_since(log_size) or _oneline(started.stderr)
        raise AgentFailure(KIND_NGINX, f"nginx could not start: {reason}")


def _running() -> bool:
    master = _master()
    return master is not None and os.path.exists(f"/proc/{master}")


def _master() -> int | None:
    try:
        with open(paths.NGINX_PID_FILE, encoding="ascii") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def _workers() -> set[int]:
    """The pids of the nginx master's children (its workers)."""
    master = _master()
    if master is None:
        return set()
    try:
        with open(f"/proc/{master}/task/{master}/children", encoding="ascii") as handle:
            return {int(pid) for pid in handle.read().split()}
    except OSError:
        return set()


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _error_log_since(offset: int) -> str:
    try:
        with open(paths.NGINX_ERROR_LOG, encoding="utf-8", errors="replace") as handle:
            handle.seek(offset)
            lines = [line.strip() for line in handle.read().splitlines() if line.strip()]
    except OSError:
        return ""
    return _oneline("\n".join(lines[-3:]))


def _oneline(text: str) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-3:])
