"""Which box the fab tasks act on: one frozen object, read and validated once.

Sources, first one that sets a value wins:
  1. FABRIC_BOX_* environment variables (Fabric maps them onto the `box` section),
  2. the `box:` section of fabric.yaml,
  3. the Pulumi stack's own files (`Pulumi.<stack>.yaml`, then `Pulumi.yaml` defaults),
     for the settings the stack already holds (name, user, region, key): never written twice,
  4. the defaults below.

The key is the exception to (3): Pulumi.yaml's schema default for sshPublicKeyPath names
the default box's key, so only a value the stack file itself sets is taken; otherwise the
key follows the box's name, `~/.ssh/<name>`.

Fabric's own defaults for the `box` section, and the check of fabric.yaml before Invoke
reads it, are in remote/fabric_config.py.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from remote.contract import PROJECT
from remote.errors import ConfigError

PROVIDERS = ("aws", "local")
DEFAULT_NAME = "mlops-zoomcamp"
DEFAULT_STACK = "dev"
DEFAULT_USER = "ubuntu"
DEFAULT_LOCAL_ROOT = "/var/lib/mlops-box"
DEFAULT_LOCAL_CACHE = "/var/cache/mlops-box"
# Private range the local boxes' veth pairs are carved from; one /30 per start.
DEFAULT_LOCAL_SUBNET = "10.213.0.0/16"
DEFAULT_LOCAL_SUITE = "bookworm"
DEFAULT_LOCAL_MIRROR = "http://deb.debian.org/debian"
# This machine's files about each box that are not ssh's: the front door's token (0600),
# its CA certificate and pinned key.
DEFAULT_SECRETS_DIR = "~/.config/mlops-box"

# A login name that is safe on a `User` line of ssh config.
_LOGIN_NAME = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class LocalBoxSettings:
    """Where and how the local systemd-nspawn box lives on this machine."""

    root: Path
    cache: Path
    subnet: ipaddress.IPv4Network
    suite: str
    mirror: str


@dataclass(frozen=True)
class BoxSettings:
    provider: str
    name: str
    stack: str
    region: str | None
    user: str
    key: Path
    ssh_dir: Path
    secrets_dir: Path
    project_dir: Path
    local: LocalBoxSettings

    @property
    def public_key(self) -> Path:
        return self.key.with_name(self.key.name + ".pub")


def load_settings(box: Mapping[str, Any], project_dir: Path) -> BoxSettings:
    """Build the settings from Fabric's `box` section and the Pulumi stack files."""
    provider = _text(box, "provider") or "local"
    if provider not in PROVIDERS:
        raise ConfigError(
            f"box.provider is {provider!r}: set it (fabric.yaml or FABRIC_BOX_PROVIDER) "
            f"to one of {', '.join(PROVIDERS)}."
        )
    stack = _text(box, "stack") or DEFAULT_STACK
    stack_file = read_stack_config(project_dir, stack)
    pulumi = {**read_pulumi_defaults(project_dir), **stack_file}

    name = _text(box, "name") or pulumi.get(f"{PROJECT}:boxName") or DEFAULT_NAME
    if not _is_host_alias(name):
        raise ConfigError(
            f"box.name is {name!r}: use letters, digits, '-', '_' or '.' only "
            "(it becomes the ssh alias)."
        )
    user = _text(box, "user") or pulumi.get(f"{PROJECT}:sshUser") or DEFAULT_USER
    if not is_login_name(user):
        if _text(box, "user"):
            source = "box.user (fabric.yaml or FABRIC_BOX_USER)"
        elif f"{PROJECT}:sshUser" in stack_file:
            source = f"sshUser in Pulumi.{stack}.yaml"
        else:
            source = "sshUser's default in Pulumi.yaml"
        raise ConfigError(
            f"{source} is {user!r}: use a plain login name (letters, digits, '.', '_', '-'), "
            "such as ubuntu."
        )
    region = (
        _text(box, "region")
        or pulumi.get("aws:region")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
    )
    key_text = _text(box, "key")
    if not key_text:
        public = stack_file.get(f"{PROJECT}:sshPublicKeyPath")
        key_text = public.removesuffix(".pub") if public else f"~/.ssh/{name}"
    ssh_dir = expand_home(_text(box, "ssh_dir") or "~/.ssh")

    local = box.get("local") or {}
    subnet_text = _text(local, "subnet") or DEFAULT_LOCAL_SUBNET
    try:
        subnet = ipaddress.IPv4Network(subnet_text)
    except ValueError as exc:
        raise ConfigError(
            f"box.local.subnet is {subnet_text!r}: give a private IPv4 network such as "
            f"{DEFAULT_LOCAL_SUBNET} ({exc})."
        ) from None
    if not subnet.is_private or subnet.prefixlen > 28:
        raise ConfigError(
            f"box.local.subnet is {subnet_text!r}: give a private IPv4 network of /28 or "
            f"larger, such as {DEFAULT_LOCAL_SUBNET}."
        )
    return BoxSettings(
        provider=provider,
        name=name,
        stack=stack,
        region=region,
        user=user,
        key=expand_home(key_text),
        ssh_dir=ssh_dir,
        secrets_dir=expand_home(_text(box, "secrets_dir") or DEFAULT_SECRETS_DIR),
        project_dir=project_dir,
        local=LocalBoxSettings(
            root=Path(_text(local, "root") or DEFAULT_LOCAL_ROOT),
            cache=Path(_text(local, "cache") or DEFAULT_LOCAL_CACHE),
            subnet=subnet,
            suite=_text(local, "suite") or DEFAULT_LOCAL_SUITE,
            mirror=_text(local, "mirror") or DEFAULT_LOCAL_MIRROR,
        ),
    )


def read_pulumi_defaults(project_dir: Path) -> dict[str, str]:
    """The plain defaults of Pulumi.yaml's config schema, as `{"ns:key": "value"}`."""
    values: dict[str, str] = {}
    path = project_dir / "Pulumi.yaml"
    for key, spec in _config_section(path).items():
        default = spec.get("default") if isinstance(spec, dict) else spec
        if isinstance(default, str | int | float | bool):
            full = key if ":" in key else f"{PROJECT}:{key}"
            values[full] = str(default)
    return values


def read_stack_config(project_dir: Path, stack: str) -> dict[str, str]:
    """The plain values `Pulumi.<stack>.yaml` itself sets, as `{"ns:key": "value"}`."""
    path = project_dir / f"Pulumi.{stack}.yaml"
    return {
        key: str(value)
        for key, value in _config_section(path).items()
        if isinstance(value, str | int | float | bool)
    }


def describe_kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"the single value {value!r}"


def expand_home(path: str) -> Path:
    """Expand `~` as OpenSSH does: from the password database, not $HOME.

    Under sudo or in CI the two differ, and the ssh entry must name the files that
    `ssh` itself will read.
    """
    if path == "~" or path.startswith("~/"):
        home = pwd.getpwuid(os.getuid()).pw_dir
        return (Path(home) / path[2:]).absolute()
    return Path(path).expanduser().absolute()


def _config_section(path: Path) -> dict[str, Any]:
    """The `config:` mapping of a Pulumi project or stack file; {} if it has none."""
    section = read_yaml(path).get("config")
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(
            f"config in {path} is {describe_kind(section)}: it must map setting names to values."
        )
    return section


def read_yaml(path: Path, *, mapping: bool = True) -> Any:
    """The parsed file (a dict if `mapping`; {} for a file that is absent or not one)."""
    if not path.exists():
        return {} if mapping else None
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise ConfigError(f"{path} is not valid YAML ({problem}{where}): fix it.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read {path} ({exc}): fix its permissions.") from None
    if not mapping:
        return data
    return data if isinstance(data, dict) else {}


def _text(section: Mapping[str, Any], key: str) -> str | None:
    value = section.get(key)
    if value is None or value == "":
        return None
    return str(value)


def is_login_name(user: str) -> bool:
    """Whether `user` is a login name that can go on an ssh config `User` line as it is."""
    return bool(_LOGIN_NAME.fullmatch(user))


def _is_host_alias(name: str) -> bool:
    return bool(name) and all(ch.isalnum() or ch in "-_." for ch in name)
