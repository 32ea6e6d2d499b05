"""Change one of nginx's site files safely: write, `nginx -t`, reload, confirm, or undo.

Every change of nginx's config on the box goes through `apply_site` (or `reload`), under
one lock: the router's (from the deploy state) and any other site's (the controller's
`ensure_site`, the front door with the token file it includes). A config that `nginx -t`
refuses is never loaded; a reload nginx could not apply (a port another process holds,
which `nginx -t` does not see) is caught by waiting for the new generation of worker
processes, or at once by the [emerg] line nginx logs for it. Either way the old files go
back, nginx keeps (or returns to) the old config, and the failure carries nginx's own
message.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import subprocess
import time
from collections.abc import Mapping

from . import layout, systemd
from .failure import AgentFailure
from .files import flocked, write_text

KIND_NGINX = "nginx-config"
RELOAD_TIMEOUT_S = 10.0
START_TIMEOUT_S = 20.0
POLL_S = 0.02
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")
# "2026/01/02 03:04:05 [emerg] 596#596: " or "nginx: [emerg] " before nginx's message.
_EMERG = re.compile(r"^.*?\[(?:emerg|crit)\] (?:\d+#\d+: )?")
SITE_MODE = 0o644

# A file as wanted: its content and mode, or None for "absent".
Wanted = tuple[str, int] | None


def site_path(name: str) -> str:
    if not name or not set(name) <= _NAME_CHARS:
        raise AgentFailure(KIND_NGINX, f"{name!r} is not a site name (a-z, 0-9 and -).")
    return f"{layout.NGINX_SITES_DIR}/{name}.conf"


def apply_site(
    name: str, content: str | None, companions: Mapping[str, Wanted] | None = None
) -> list[str]:
    """Make site `name` hold `content` (None: remove it), and each of `companions` (files
    the site includes, or that describe it; path -> (content, mode), None: remove) be as
    given, and nginx run them.

    Returns the paths that changed (none when all matched and nginx runs). Raises
    AgentFailure(nginx-config) with nginx's message, after putting every old file back,
    when nginx refuses or cannot load the new config.
    """
    wanted: dict[str, Wanted] = {site_path(name): None if content is None else (content, SITE_MODE)}
    for path, want in (companions or {}).items():
        if not os.path.isabs(path):
            raise AgentFailure(KIND_NGINX, f"{path!r} is not an absolute path.")
        wanted[path] = want
    with flocked(layout.NGINX_LOCK):
        old = {path: _read(path) for path in wanted}
        changed = [path for path, want in wanted.items() if old[path] != want]
        if not changed and (content is None or _running()):
            return []
        for path in changed:
            _put(path, wanted[path])
        try:
            _load_config()
        except AgentFailure:
            for path in changed:
                _put(path, old[path])
            with contextlib.suppress(AgentFailure):
                _load_config()
            raise
        return changed or ["nginx started"]


def reload() -> dict[str, bool]:
    """Load the config on disk again (a file it reads, such as a certificate, changed)."""
    with flocked(layout.NGINX_LOCK):
        _load_config()
    return {"reloaded": True}


def _read(path: str) -> Wanted:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read(), stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
    except FileNotFoundError:
        return None


def _put(path: str, want: Wanted) -> None:
    if want is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    else:
        write_text(path, *want)


def _load_config() -> None:
    """`nginx -t`, then reload the running nginx (or start a stopped one) and confirm."""
    tested = subprocess.run(["nginx", "-t", "-q"], capture_output=True, text=True, check=False)
    if tested.returncode != 0:
        raise AgentFailure(KIND_NGINX, f"nginx refused the config: {_nginx_says(tested.stderr)}")
    if not _running():
        _start()
        return
    before = _workers()
    log_size = _size(layout.NGINX_ERROR_LOG)
    systemd.systemctl("reload", "nginx")
    deadline = time.monotonic() + RELOAD_TIMEOUT_S
    while time.monotonic() < deadline:
        # A reload that worked starts a new generation of workers; a failed one keeps the
        # old workers and only writes why to the error log.
        if _workers() - before:
            _old_workers_stop_listening(before, deadline)
            return
        # nginx logs why it refused (e.g. "bind() ... failed"): no need to wait it out.
        refused = _emerg(_log_since(log_size))
        if refused:
            raise AgentFailure(
                KIND_NGINX,
                "nginx refused the new config and kept serving the previous one: "
                f"{' | '.join(refused)} ({layout.NGINX_ERROR_LOG} on the box)",
            )
        time.sleep(POLL_S)
    raise AgentFailure(
        KIND_NGINX,
        f"nginx did not load the new config: {_error_log_since(log_size) or 'no reason logged'}",
    )


def _old_workers_stop_listening(old: set[int], deadline: float) -> None:
    """Wait (until `deadline`) for the old workers to close their listening sockets, as
    each does when told to shut down: then a port the new config dropped takes no more
    connections, and one it kept is served by the new workers only."""
    while time.monotonic() < deadline:
        listening = _listening_inodes()
        if not any(_holds(pid, listening) for pid in old):
            return
        time.sleep(POLL_S)


def _listening_inodes() -> set[str]:
    """The inodes of the TCP sockets in LISTEN state (0A) in this network namespace."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as handle:
                rows = [line.split() for line in handle.read().splitlines()[1:]]
        except OSError:
            continue
        inodes |= {row[9] for row in rows if len(row) > 9 and row[3] == "0A"}
    return inodes


def _holds(pid: int, inodes: set[str]) -> bool:
    """Whether process `pid` (gone: no) has one of these sockets open."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return True
    return False


def _start() -> None:
    log_size = _size(layout.NGINX_ERROR_LOG)
    started = systemd.systemctl("start", "nginx")
    if started.returncode != 0:
        reason = _error_log_since(log_size) or _oneline(started.stderr)
        raise AgentFailure(KIND_NGINX, f"nginx could not start: {reason}")


def _running() -> bool:
    master = _master()
    return master is not None and os.path.exists(f"/proc/{master}")


def _master() -> int | None:
    try:
        with open(layout.NGINX_PID_FILE, encoding="ascii") as handle:
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


def _log_since(offset: int) -> str:
    try:
        with open(layout.NGINX_ERROR_LOG, encoding="utf-8", errors="replace") as handle:
            handle.seek(offset)
            return handle.read()
    except OSError:
        return ""


def _error_log_since(offset: int) -> str:
    lines = [line.strip() for line in _log_since(offset).splitlines() if line.strip()]
    return _oneline("\n".join(lines[-3:]))


def _emerg(text: str) -> list[str]:
    """nginx's [emerg] and [crit] messages in `text`, without time and pid, each once."""
    found = [_EMERG.sub("", line).strip() for line in text.splitlines() if _EMERG.search(line)]
    return list(dict.fromkeys(found))


def _nginx_says(text: str) -> str:
    """What is wrong, in which file and line: nginx's [emerg] lines, else its last lines."""
    return " | ".join(_emerg(text)) or _oneline(text)


def _oneline(text: str) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-3:])
