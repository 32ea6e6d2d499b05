"""nginx on the box: installed once with nothing public, and one safe way to change a site.

`ensure_nginx` installs the package without letting it start on its default site (which
listens on 0.0.0.0:80), removes that site and enables the service. `ensure_site` puts one
server file in /etc/nginx/conf.d/<name>.conf only when it differs, through the agent's
`nginx-site`: under the one nginx lock the router's deploys also take, it writes the
file, runs `nginx -t`, reloads and waits for nginx to run it; a config nginx refuses or
cannot load puts the old file back and raises with nginx's own message.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Callable

from remote.changes import Changed
from remote.errors import MlopsBoxError
from remote.system import files
from remote.system.agent import run_agent
from remote.system.bootstrap import APT, APT_TIMEOUT_S
from remote.system.files import RemoteFile
from remote.system.run import Connection, check, key_values, run, sh, sudo

PACKAGE = "nginx"
SITES_DIR = "/etc/nginx/conf.d"
DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
# Debian's way to keep a package's service from starting during its installation.
POLICY_RC = "/usr/sbin/policy-rc.d"
STAGING_DIR = "/etc/nginx/mlops-box-staged"


class NginxError(MlopsBoxError):
    """nginx could not be installed, or refused or could not load a config."""


def site_path(name: str) -> str:
    return f"{SITES_DIR}/{name}.conf"


def _probe(conn: Connection) -> dict[str, str]:
    script = (
        f"dpkg-query -W -f='${{Status}}' {PACKAGE} 2>/dev/null | grep -q 'install ok installed' "
        "&& echo installed=yes || echo installed=no; "
        f"[ -e {DEFAULT_SITE} ] && echo default=yes || echo default=no; "
        f'echo "enabled=$(systemctl is-enabled nginx 2>/dev/null)"'
    )
    return key_values(check(conn, script).stdout)


def ensure_nginx(conn: Connection, *, say: Callable[[str], None] = print) -> Changed:
    """nginx installed and enabled at boot, its default public site gone; idempotent."""
    facts = _probe(conn)
    changed = Changed()
    if facts.get("installed") != "yes":
        say(f"Installing {PACKAGE} (it will listen on 127.0.0.1 only)")
        # policy-rc.d answers 101 ("not allowed") while apt runs, so nginx never starts
        # on its default site; it is removed again whatever happens.
        script = (
            f"set -e; printf '#!/bin/sh\\nexit 101\\n' > {POLICY_RC}; chmod 755 {POLICY_RC}; "
            f"trap 'rm -f {POLICY_RC}' EXIT; "
            f"{APT.removeprefix('sudo -n ')} update; "
            f"{APT.removeprefix('sudo -n ')} install -y --no-install-recommends {PACKAGE}"
        )
        run(
            conn,
            sudo(sh(script)),
            what=f"install {PACKAGE}",
            timeout_s=APT_TIMEOUT_S,
            error=NginxError,
            hint="Check the box's network and apt sources, then run the deploy again.",
        )
        changed.add(PACKAGE)
    if facts.get("default") == "yes" or PACKAGE in changed.changes:
        run(
            conn,
            sudo(f"rm -f {DEFAULT_SITE}"),
            what="remove nginx's default site",
            error=NginxError,
        )
        check(conn, sudo("systemctl try-reload-or-restart nginx"))
        changed.add("nginx default site removed")
    if facts.get("enabled") != "enabled":
        run(conn, sudo("systemctl enable --quiet nginx"), what="enable nginx", error=NginxError)
        changed.add("nginx enabled at boot")
    return changed


def ensure_site(conn: Connection, name: str, content: str) -> Changed:
    """Make /etc/nginx/conf.d/<name>.conf hold `content` and nginx run it (see module doc)."""
    if files.probe(conn, [site_path(name)])[site_path(name)] == files.FileState(
        hashlib.sha256(content.encode()).hexdigest(), 0o644, "root", "root"
    ) and _running(conn):
        return Changed()
    staged = f"{STAGING_DIR}/{name}.conf"
    check(conn, sudo(f"install -d -m 700 {STAGING_DIR}"))
    files.write(conn, RemoteFile(staged, content.encode(), 0o600))
    try:
        answer = run_agent(conn, "nginx-site", name, staged, error=NginxError)
    finally:
        check(conn, sudo(f"rm -f {shlex.quote(staged)}"))
    return Changed([site_path(name)]) if answer.get("changed") else Changed()


def remove_site(conn: Connection, name: str) -> Changed:
    """Remove the site (nginx reloaded without it); nothing if it is not there."""
    if files.probe(conn, [site_path(name)])[site_path(name)] is None:
        return Changed()
    run_agent(conn, "nginx-site", name, error=NginxError)
    return Changed([f"{site_path(name)} removed"])


def _running(conn: Connection) -> bool:
    return bool(check(conn, "systemctl is-active --quiet nginx").ok)
