"""nginx on the box: installed once with nothing public, and one safe way to change a site.

nginx serves everything that faces a client (the router on 127.0.0.1:8000, the TLS front
door): each piece is one file under /etc/nginx/conf.d/ that its owner renders and hands to
`ensure_site`, with the files it includes (the front door's token). Only when one of them
differs (or nginx is down), the agent's `nginx-site` takes over on the box: under the one
nginx lock the router's deploys also take, it writes the files, runs `nginx -t`, reloads
(graceful: no connection is dropped) and waits for nginx to run the new config. A config
nginx refuses, or a reload it cannot apply (a port another process holds: `nginx -t`
does not bind), puts every old file back and raises with nginx's own message.

`ensure_nginx` installs the package with nginx.service masked, so it never starts on its
default site (a welcome page on 0.0.0.0:80 and [::]:80), removes that site, then enables
and starts nginx: nothing listens until a caller adds a site.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Callable, Sequence

from remote import contract
from remote.agent.system import commands as system_cmds
from remote.changes import Changed
from remote.errors import MlopsBoxError
from remote.system import files
from remote.system.agent import run_agent
from remote.system.bootstrap import ensure_packages
from remote.system.files import RemoteFile
from remote.system.run import Connection, check, key_values, run, sh, sudo, tail

UNIT = "nginx.service"
PACKAGES = ("nginx",)
SITES_DIR = contract.NGINX_SITES_DIR
DEFAULT_SITE = contract.NGINX_DEFAULT_SITE
# Where the new files wait (root-only) for the agent to put them in place.
STAGING_DIR = contract.NGINX_STAGING_DIR
SITE_MODE = 0o644
_SITE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


class NginxError(MlopsBoxError):
    """nginx could not be installed, or refused or could not load a config."""


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
        run(conn, sudo(sh(" && ".join(steps))), what="set up nginx", error=NginxError)
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
    all files already match and nginx runs.

    When nginx refuses the change (`nginx -t`, or the reload itself), every previous file
    is put back (new ones removed) and `error` is raised with nginx's own message: nginx
    keeps serving what it served before.
    """
    wanted = [RemoteFile(site_path(name), content.encode(), SITE_MODE), *companions]
    found = files.probe(conn, [f.path for f in wanted])
    if all(f.matches(found[f.path]) for f in wanted) and _running(conn):
        return Changed()
    run(conn, sudo(f"install -d -m 700 {STAGING_DIR}"), what="stage nginx files", error=error)
    # Names of this run's own: two runs at once (two `deploy.expose`, or one and
    # `mlflow.install --public`) never write or remove each other's staged files; the
    # agent then applies each whole, under its nginx lock.
    run_id = secrets.token_hex(6)
    staged = [f"{STAGING_DIR}/{name}.{run_id}.{i}" for i in range(len(wanted))]
    args = [name, staged[0]]
    for item, source in zip(companions, staged[1:], strict=True):
        args += ["--file", item.path, source, f"{item.mode:o}"]
    try:
        for item, source in zip(wanted, staged, strict=True):
            files.write(conn, RemoteFile(source, item.content, 0o600))
        answer = run_agent(conn, system_cmds.NGINX_SITE, *args, error=error)
    finally:
        check(conn, sudo("rm -f " + " ".join(shlex.quote(p) for p in staged)))
    return Changed([str(path) for path in answer["changed"]])


def remove_site(
    conn: Connection,
    name: str,
    *,
    companions: Sequence[str] = (),
    error: type[MlopsBoxError] = NginxError,
) -> Changed:
    """Remove the site `name` (and files only it used) and reload; nothing if all absent."""
    paths = [site_path(name), *companions]
    if all(state is None for state in files.probe(conn, paths).values()):
        return Changed()
    args = [name, *(arg for path in companions for arg in ("--drop", path))]
    return Changed(
        [str(p) for p in run_agent(conn, system_cmds.NGINX_SITE, *args, error=error)["changed"]]
    )


def reload(conn: Connection, *, error: type[MlopsBoxError] = NginxError) -> None:
    """Load the configuration on disk again (a file it reads changed, e.g. a certificate):
    checked, under the nginx lock, and confirmed; `error` with nginx's reason if refused."""
    run_agent(conn, system_cmds.NGINX_RELOAD, error=error)


def _running(conn: Connection) -> bool:
    return bool(check(conn, f"systemctl is-active --quiet {UNIT}").ok)
