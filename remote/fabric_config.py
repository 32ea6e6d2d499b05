"""fabric.yaml: the defaults of its `box` section, and the file checked before Invoke reads it.

Invoke merges fabric.yaml into `CONFIG_DEFAULTS` itself, after the tasks are imported, and
fails with a traceback on a file it cannot parse or merge; `check_fabric_config` finds
those mistakes first, so they reach the user as one line. What the settings mean, and
which source wins, is remote/settings.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from remote.errors import ConfigError
from remote.settings import (
    DEFAULT_LOCAL_CACHE,
    DEFAULT_LOCAL_MIRROR,
    DEFAULT_LOCAL_ROOT,
    DEFAULT_LOCAL_SUBNET,
    DEFAULT_LOCAL_SUITE,
    DEFAULT_STACK,
    describe_kind,
    read_yaml,
)

# Invoke reads the first of these in the directory of fabfile.py (fabric.py is not checked:
# Python config is code, and its mistakes are the author's tracebacks).
FABRIC_CONFIG_FILES = ("fabric.yaml", "fabric.yml", "fabric.json")

# What `ns.configure` puts under `box`: every key must exist for Fabric to map
# FABRIC_BOX_<KEY> onto it. None means "not set here: ask the next source".
CONFIG_DEFAULTS: dict[str, Any] = {
    "provider": "local",
    "name": None,
    "stack": DEFAULT_STACK,
    "region": None,
    "user": None,
    "key": None,
    "ssh_dir": None,
    "secrets_dir": None,
    "local": {
        "root": DEFAULT_LOCAL_ROOT,
        "cache": DEFAULT_LOCAL_CACHE,
        "subnet": DEFAULT_LOCAL_SUBNET,
        "suite": DEFAULT_LOCAL_SUITE,
        "mirror": DEFAULT_LOCAL_MIRROR,
    },
}


def check_fabric_config(project_dir: Path) -> None:
    """Refuse a project config file that Invoke would fail on with a traceback.

    Invoke loads the first of FABRIC_CONFIG_FILES and merges it over `CONFIG_DEFAULTS`:
    it cannot parse malformed YAML, nor merge a mapping with a single value either way
    (`box:` as a list, or left empty; `box.local: 3`). Unknown keys under `box` are
    refused too: Invoke would keep them, and a misspelt setting would silently do nothing.
    """
    path = next((project_dir / n for n in FABRIC_CONFIG_FILES if (project_dir / n).exists()), None)
    if path is None:
        return
    data = read_json(path) if path.suffix == ".json" else read_yaml(path, mapping=False)
    if data is None:
        return
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path} holds {describe_kind(data)}, not settings: write `box:` and its settings "
            "under it as `key: value` lines (see the repository's fabric.yaml)."
        )
    if "box" in data:
        _check_section(data["box"], CONFIG_DEFAULTS, "box", path)


def _check_section(value: Any, defaults: Mapping[str, Any], where: str, path: Path) -> None:
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where} in {path} is {describe_kind(value)}: it must hold settings as `key: value` "
            f"lines under `{where.rsplit('.', 1)[-1]}:` (or be removed)."
        )
    for key, item in value.items():
        if key not in defaults:
            raise ConfigError(
                f"{where}.{key} in {path} is not a setting: use one of {', '.join(defaults)}."
            )
        if isinstance(defaults[key], dict):
            _check_section(item, defaults[key], f"{where}.{key}", path)
        elif isinstance(item, dict | list):
            raise ConfigError(
                f"{where}.{key} in {path} is {describe_kind(item)}: give one value, "
                f"e.g. `{key}: {_example(defaults[key])}`."
            )


def _example(default: Any) -> str:
    return str(default) if default is not None else "<value>"


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): "
            "fix it."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read {path} ({exc}): fix its permissions.") from None
