"""What the benchmarks share: the box `fab` acts on, and sshd's count of accepted logins."""

from __future__ import annotations

from pathlib import Path

from fabric import Config

from remote.fabric_config import CONFIG_DEFAULTS
from remote.providers import get_provider
from remote.settings import BoxSettings, load_settings
from remote.ssh.connection import connect

REPO_ROOT = Path(__file__).resolve().parents[1]


def box_settings() -> tuple[BoxSettings, str]:
    """The settings `fab` reads (fabric.yaml, then FABRIC_BOX_*) and the box's address."""
    config = Config(project_location=str(REPO_ROOT), overrides={})
    config.load_collection({"box": CONFIG_DEFAULTS})
    config.load_project()
    config.load_shell_env()
    settings = load_settings(config.box, project_dir=REPO_ROOT)
    address = get_provider(settings).state().address
    assert address, "start the box first (fab box.start)"
    return settings, address


def accepted_logins(settings: BoxSettings, address: str) -> int:
    """SSH logins sshd accepted so far (from the box's journal); this count logs in once."""
    with connect(settings, address) as conn:
        out = conn.run(
            "sudo -n journalctl -q --no-pager -o cat _COMM=sshd-session _COMM=sshd "
            "| grep -c 'Accepted publickey'",
            hide=True,
            warn=True,
        ).stdout
    return int(out.strip() or 0)
