"""What the benchmarks share: the box `fab` acts on."""

from __future__ import annotations

from pathlib import Path

from fabric import Config

from remote.providers import get_provider
from remote.settings import CONFIG_DEFAULTS, BoxSettings, load_settings

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
