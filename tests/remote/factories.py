"""BoxSettings for file-level tests: everything under one temporary directory."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path
from typing import Any

from remote.settings import BoxSettings, LocalBoxSettings

PROJECT_DIR = Path(__file__).resolve().parents[2]
NAME = "mlops-test"


def settings_in(tmp_path: Path, **changes: Any) -> BoxSettings:
    """Settings of a box named NAME whose key, ssh dir and local box live in tmp_path."""
    base = BoxSettings(
        provider="local",
        name=NAME,
        stack="dev",
        region=None,
        user="ubuntu",
        key=tmp_path / "keys" / NAME,
        ssh_dir=tmp_path / "home" / ".ssh",
        secrets_dir=tmp_path / "home" / ".config" / "mlops-box",
        project_dir=PROJECT_DIR,
        local=LocalBoxSettings(
            root=tmp_path / "root",
            cache=tmp_path / "cache",
            subnet=ipaddress.IPv4Network("10.213.0.0/16"),
            suite="bookworm",
            mirror="http://deb.debian.org/debian",
        ),
    )
    return dataclasses.replace(base, **changes)
