"""nginx on the box: installed once, then one `ensure_site` per configuration file.

nginx serves everything that faces a client (the router on 127.0.0.1:8000, the TLS front
door): each piece is one file under /etc/nginx/conf.d/ that its owner renders and hands to
`ensure_site`. A file is written only when it differs, then `nginx -t` checks the whole
configuration and nginx reloads (graceful: no connection is dropped). A configuration
that fails the check is never loaded: the previous files are put back, and the error
says what nginx said.

The package's default site (a welcome page on 0.0.0.0:80 and [::]:80) is removed, and
nginx.service is masked while the package installs, so nothing listens until a caller
asks for it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from remote.changes import Changed
from remote.errors import MlopsBoxError, WaitTimeout
from remote.system import files, systemd
from remote.system.bootstrap import ensure_packages
from remote.system.files import RemoteFile
from remote.system.run import Connection, Result, check, key_values, run, sh, sudo, tail
from remote.waiting import wait_for

UNIT = "nginx.service"
PACKAGES = ("nginx",)
SITES_DIR = "/etc/nginx/conf.d"
DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
PID_FILE = "/run/nginx.pid"
ERROR_LOG = "/var/log/nginx/error.log"
# A reload makes new workers within milliseconds; a refused one makes none.
RELOAD_TIMEOUT_S = 10
# Suffix of a file's previous version while a new configuration is checked.
PREVIOUS = ".mlops-box-prev"
_SITE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
# "2026/01/02 03:04:05 [emerg] 596#596: " before nginx's message: the time and pid go.
_EMERG = re.compile(r"^.*?\[(?:emerg|crit)\] (?:\d+#\d+: )?")


class NginxError(MlopsBoxError):
    """nginx could not be installed, configured or reloaded on the box."""


def site_path(name: str) -> str:
    """Where the site `name` lives: /etc/nginx/conf.d/<name>.conf."""
    if not _SITE_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a site name (lowercase letters, digits, '-')")
    return f"{SITES_DIR}/{name}.conf"


def ensure_nginx(conn: Connection, *, say: Callable[[str], None] = print) -> Changed:
    """Install nginx if needed, without its default site, enabled and running."""
    changed = ensure_packages(conn, PACKAGES, say=say, masked_units=(UNIT,), error=NginxError)
    probe = check(
        conn,
        sh(
            f"if [ -e {DEFAULT_SITE} ]; then echo default=yes; else echo default=no; fi; "
            f'echo "enabled=$(systemctl is-enabled {UNIT} 2>/dev/null)"; '
            f'echo "active=$(systemctl is-active {UNIT} 2>/dev/null)"'
        ),
    )
    facts = key_values(probe.stdout)
    if "active" not in facts:
        raise NginxError(f"Cannot inspect nginx on the box ({tail(probe)}).")
    steps = []
    if facts["default"] == "yes":
        steps.append(f"rm -f {DEFAULT_SITE}")
        changed.add("removed nginx's default site")
    if facts["enabled"] == "masked":  # masked by the install, or by one that was cut short
        steps.append(f"systemctl unmask {UNIT}")
    if facts["enabled"] != "enabled":
        steps.append(f"systemctl enable {UNIT}")
        changed.add("nginx enabled at boot")
    if facts["active"] != "active":
        steps.append(f"systemctl start {UNIT}")
        changed.add("nginx started")
    elif facts["default"] == "yes":
        steps.append(f"systemctl reload {UNIT}")
    if steps:
        _sudo(conn, sh(" && ".join(steps)), "set up nginx")
    return changed


def ensure_site(
    conn: Connection,
    name: str,
    content: str,
    *,
    companions: Sequence[RemoteFile] = (),
    error: type[MlopsBoxError] = NginxError,
) -> Changed:
    """Make /etc/nginx/conf.d/<name>.conf (and the files it includes) as given, checked
    and loaded (nginx installed by `ensure_nginx`). Returns what changed; nothing when
    all files already match.

    When nginx refuses the change (`nginx -t`, or the reload itself), the previous files
    are restored (new ones removed) and `error` is raised with nginx's own message: nginx
    keeps serving what it served before.
    """
    wanted = [RemoteFile(site_path(name), content.encode(), 0o644), *companions]
    found = files.probe(conn, [f.path for f in wanted])
    stale = [f for f in wanted if not f.matches(found[f.path])]
    if not stale:
        return Changed()
    kept = [f.path for f in stale if found[f.path] is not None]
    new = [f.path for f in stale if found[f.path] is None]
    if kept:
        _sudo(conn, sh("; ".join(f"cp -p {_q(p)} {_q(p + PREVIOUS)}" for p in kept)), "keep files")
    try:
        for item in stale:
            files.write(conn, item)
        check_config(conn, error=error)
        reload(conn, error=error)
    except MlopsBoxError:
        restore = [f"mv -f {_q(p + PREVIOUS)} {_q(p)}" for p in kept]
        restore += [f"rm -f {_q(p)}" for p in new]
        _sudo(conn, sh("; ".join(restore)), "restore the previous nginx configuration")
        raise
    if kept:
        _sudo(conn, "rm -f " + " ".join(_q(p + PREVIOUS) for p in kept), "remove old copies")
    return Changed([f.path for f in stale])


def remove_site(
    conn: Connection,
    name: str,
    *,
    companions: Sequence[str] = (),
    error: type[MlopsBoxError] = NginxError,
) -> Changed:
    """Remove the site `name` (and files only it used) and reload; nothing if absent."""
    paths = [site_path(name), *companions]
    present = [p for p, state in files.probe(conn, paths).items() if state is not None]
    if not present:
        return Changed()
    _sudo(conn, "rm -f " + " ".join(_q(p) for p in present), f"remove the {name} site")
    check_config(conn, error=error)
    reload(conn, error=error)
    return Changed(present)


def check_config(conn: Connection, *, error: type[MlopsBoxError] = NginxError) -> None:
    """`nginx -t` on the whole configuration; `error` with nginx's message if it fails."""
    result = check(conn, sudo("nginx -t -q"))
    if not result.ok:
        raise error(f"nginx refused the configuration: {_nginx_message(result)}.")


def reload(conn: Connection, *, error: type[MlopsBoxError] = NginxError) -> None:
    """Load the configuration on disk: a graceful reload (or a start if nginx is down).

    A reload that nginx refuses (a port another process holds: `nginx -t` does not bind)
    leaves it serving the old configuration, makes no new workers and logs why; that is
    how a refusal is told from a success, and it raises `error` with nginx's reason.
    """
    before = _reload_probe(conn)
    if not before.workers:
        systemd.systemctl(conn, "restart", UNIT, error=error)
        return
    systemd.systemctl(conn, "reload", UNIT, error=error)

    def loaded() -> bool | None:
        now = _reload_probe(conn, log_from=before.log_size)
        if now.emerg:
            raise error(
                f"nginx refused the new configuration and kept serving the previous one: "
                f"{' | '.join(now.emerg)} ({ERROR_LOG} on the box)."
            )
        return True if now.workers - before.workers else None

    try:
        wait_for(loaded, what="nginx to load its configuration", timeout_s=RELOAD_TIMEOUT_S)
    except WaitTimeout as exc:
        raise error(f"{exc} See {ERROR_LOG} on the box.") from None


@dataclass(frozen=True)
class _ReloadFacts:
    workers: set[str]  # pids of the master's children; empty when nginx is down
    log_size: int
    emerg: list[str]  # nginx's [emerg] messages logged from `log_from` on, without repeats


def _reload_probe(conn: Connection, log_from: int | None = None) -> _ReloadFacts:
    script = (
        f"pid=$(cat {PID_FILE} 2>/dev/null); "
        '[ -n "$pid" ] && echo "workers=$(ps -o pid= --ppid "$pid" | tr -s \' \\n\' \' \')"; '
        f'echo "size=$(stat -c %s {ERROR_LOG} 2>/dev/null || echo 0)"'
    )
    if log_from is not None:
        script += f"; tail -c +{log_from + 1} {ERROR_LOG} | grep -F '[emerg]' | tail -n 20; true"
    result = check(conn, sudo(sh(script)))
    values = key_values(result.stdout)
    lines = result.stdout.splitlines()
    emerg = [_EMERG.sub("", line).strip() for line in lines if _EMERG.search(line)]
    size = values.get("size", "0")
    return _ReloadFacts(
        workers=set(values.get("workers", "").split()),
        log_size=int(size) if size.isdigit() else 0,
        emerg=list(dict.fromkeys(emerg)),
    )


def _nginx_message(result: Result) -> str:
    """nginx's [emerg] lines (what is wrong, in which file and line), else the tail."""
    text = str(result.stderr or "")
    lines = [_EMERG.sub("", line).strip() for line in text.splitlines() if _EMERG.search(line)]
    return " | ".join(lines) if lines else tail(result)


def _q(path: str) -> str:
    return shlex.quote(path)


def _sudo(conn: Connection, command: str, what: str) -> None:
    run(conn, sudo(command), what=what, error=NginxError)
