"""The stack's settings, read once into one frozen object and validated before any
resource is declared.

The names, types and defaults are declared in Pulumi.yaml's `config:` schema (the Pulumi
CLI fills the defaults in); this module only parses and checks what it is given, so a bad
value stops the program with one sentence naming the setting, the value and the fix.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NoReturn

import pulumi

from remote.contract import PROJECT, TAG_PROJECT, TAG_STACK

BACKENDS = ("sqlite", "rds")

# The most an allowed-networks list may open without an explicit opt-in, per IP version:
# one IPv4 /16 (65,536 addresses) and one IPv6 /48 (one site's allocation), in total.
WIDEST_PREFIX = {4: 16, 6: 48}

# boxName is the Name tag and the ssh alias, and it starts the S3 bucket name and the RDS
# identifier, so it follows the stricter rules of those two (and of a DNS label): lowercase
# letters, digits and single hyphens, a letter first, a letter or digit last.
BOX_NAME = re.compile(r"[a-z](?:-?[a-z0-9])*")
# The provider completes a name prefix with a 26-character unique suffix (bucket_prefix,
# identifier_prefix), and buckets and RDS identifiers allow 63 characters.
UNIQUE_SUFFIX_CHARS = 26
NAME_LIMIT = 63
# S3 refuses bucket names starting with these ("Bucket naming rules", Amazon S3 User Guide).
S3_RESERVED_PREFIXES = ("sthree-", "amzn-s3-demo-")

# Every setting of Pulumi.yaml's schema, by its name there.
SETTINGS = (
    "boxName",
    "instanceType",
    "volumeSizeGb",
    "sshUser",
    "sshPublicKeyPath",
    "sshAllowedCidrs",
    "allowSshFromAnywhere",
    "httpsAllowedCidrs",
    "allowHttpsFromAnywhere",
    "mlflowBackend",
    "dbInstanceClass",
    "dbAllocatedStorageGb",
    "dbDeletionProtection",
    "dbSkipFinalSnapshot",
    "elasticIp",
    "ami",
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class InfraConfigError(Exception):
    """A stack setting is missing or wrong; the message says which and how to fix it."""


def name_prefix(box_name: str) -> str:
    """The stem of the artifact bucket's name and the database's identifier."""
    return f"{box_name}-mlflow-"


BOX_NAME_MAX = NAME_LIMIT - UNIQUE_SUFFIX_CHARS - len(name_prefix(""))


def too_wide(networks: Iterable[Network]) -> str | None:
    """Why these allowed networks amount to "from anywhere", or None if they do not.

    That is a network wider than a /16 (IPv4) or a /48 (IPv6), or networks that together,
    overlaps collapsed, hold more addresses than one such block: many narrow entries open
    as much as one wide one.
    """
    networks = list(networks)
    for network in networks:
        if network.prefixlen < (limit := WIDEST_PREFIX[network.version]):
            return f"{network} is wider than a /{limit}"
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
    held = {
        4: sum(n.num_addresses for n in ipaddress.collapse_addresses(v4)),
        6: sum(n.num_addresses for n in ipaddress.collapse_addresses(v6)),
    }
    for version, total in held.items():
        limit = WIDEST_PREFIX[version]
        block = 2 ** ((32 if version == 4 else 128) - limit)
        if total > block:
            return f"together they hold {total / block:g} times the addresses of a /{limit}"
    return None


@dataclass(frozen=True)
class DatabaseConfig:
    instance_class: str
    allocated_storage_gb: int
    deletion_protection: bool
    skip_final_snapshot: bool


@dataclass(frozen=True)
class BoxConfig:
    stack: str
    box_name: str
    instance_type: str
    volume_size_gb: int
    ssh_user: str
    ssh_public_key: str
    ssh_allowed_cidrs: tuple[Network, ...]
    # Who may reach the TLS front door (443); empty: nobody, no rule.
    https_allowed_cidrs: tuple[Network, ...]
    mlflow_backend: Literal["sqlite", "rds"]
    # Present exactly when mlflow_backend is "rds".
    database: DatabaseConfig | None
    elastic_ip: bool
    # None means: look up Canonical's latest Ubuntu 24.04 LTS image.
    ami: str | None

    @property
    def tags(self) -> dict[str, str]:
        """Tags every taggable resource carries; the fab tasks find the box by them."""
        return {TAG_PROJECT: PROJECT, TAG_STACK: self.stack}


def load_config() -> BoxConfig:
    """Read the running stack's `mlops-box:*` settings."""
    config = pulumi.Config(PROJECT)
    raw = {key: value for key in SETTINGS if (value := config.get(key)) is not None}
    return parse_config(raw, stack=pulumi.get_stack())


def parse_config(raw: Mapping[str, str], *, stack: str) -> BoxConfig:
    """Validate raw string settings (as Pulumi hands them over) into a BoxConfig."""
    backend = _required(raw, "mlflowBackend")
    if backend not in BACKENDS:
        _fail("mlflowBackend", backend, "use `sqlite` or `rds`")
    volume = _integer(raw, "volumeSizeGb")
    if volume < 8:
        _fail("volumeSizeGb", raw["volumeSizeGb"], "give a size of at least 8 (GiB)")
    database = None
    if backend == "rds":
        storage = _integer(raw, "dbAllocatedStorageGb")
        if storage < 20:
            _fail(
                "dbAllocatedStorageGb", raw["dbAllocatedStorageGb"], "RDS needs at least 20 (GiB)"
            )
        database = DatabaseConfig(
            instance_class=_required(raw, "dbInstanceClass"),
            allocated_storage_gb=storage,
            deletion_protection=_boolean(raw, "dbDeletionProtection"),
            skip_final_snapshot=_boolean(raw, "dbSkipFinalSnapshot"),
        )
    ami = raw.get("ami") or None
    if ami is not None and not ami.startswith("ami-"):
        _fail("ami", ami, "give an AMI id such as ami-0123456789abcdef0, or leave it empty")
    box_name = _box_name(raw)
    return BoxConfig(
        stack=stack,
        box_name=box_name,
        instance_type=_required(raw, "instanceType"),
        volume_size_gb=volume,
        ssh_user=_required(raw, "sshUser"),
        ssh_public_key=_public_key(_required(raw, "sshPublicKeyPath")),
        ssh_allowed_cidrs=_ssh_cidrs(raw),
        https_allowed_cidrs=_https_cidrs(raw),
        mlflow_backend="rds" if backend == "rds" else "sqlite",
        database=database,
        elastic_ip=_boolean(raw, "elasticIp"),
        ami=ami,
    )


def _box_name(raw: Mapping[str, str]) -> str:
    name = _required(raw, "boxName")
    if not BOX_NAME.fullmatch(name):
        _fail(
            "boxName",
            name,
            "use lowercase letters, digits and single hyphens, starting with a letter and "
            "ending with a letter or digit, e.g. mlops-zoomcamp (it also names the S3 bucket "
            "and the RDS database)",
        )
    if len(name) > BOX_NAME_MAX:
        _fail(
            "boxName",
            name,
            f"use at most {BOX_NAME_MAX} characters (the bucket and database names made "
            f"from it may not exceed {NAME_LIMIT})",
        )
    if name.startswith(S3_RESERVED_PREFIXES):
        _fail(
            "boxName",
            name,
            f"S3 reserves bucket names starting with {' or '.join(S3_RESERVED_PREFIXES)}; "
            "choose another name",
        )
    return name


def _networks(raw: Mapping[str, str], key: str, fix: str) -> list[Network]:
    """A setting holding a JSON list of CIDRs (host bits zero), in order, without repeats."""
    text = raw.get(key) or "[]"
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        values = None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        _fail(key, text, f"give a list of CIDRs: {fix}")
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=True))
        except ValueError:
            _fail(key, value, "give a CIDR such as 203.0.113.7/32 (host bits zero)")
    return list(dict.fromkeys(networks))


def _ssh_cidrs(raw: Mapping[str, str]) -> tuple[Network, ...]:
    fix = "set it with `pulumi config set --path 'sshAllowedCidrs[0]' <your-ip>/32`"
    if not raw.get("sshAllowedCidrs"):
        _fail("sshAllowedCidrs", "", f"it is required: {fix}")
    networks = _networks(raw, "sshAllowedCidrs", fix)
    if not networks:
        _fail("sshAllowedCidrs", raw["sshAllowedCidrs"], f"give a non-empty list of CIDRs: {fix}")
    reason = too_wide(networks)
    if reason and not _boolean(raw, "allowSshFromAnywhere"):
        _fail(
            "sshAllowedCidrs",
            ", ".join(map(str, networks)),
            f"{reason}, which counts as SSH from anywhere; narrow the CIDRs to your own "
            "network (e.g. your /32: `fab box.allow-my-ip` finds it), or opt in with "
            "`pulumi config set allowSshFromAnywhere true`",
        )
    return tuple(networks)


def _https_cidrs(raw: Mapping[str, str]) -> tuple[Network, ...]:
    fix = "e.g. `pulumi config set --path 'httpsAllowedCidrs[0]' 203.0.113.7/32`"
    networks = _networks(raw, "httpsAllowedCidrs", fix)
    reason = too_wide(networks)
    if reason and not _boolean(raw, "allowHttpsFromAnywhere"):
        _fail(
            "httpsAllowedCidrs",
            ", ".join(map(str, networks)),
            f"{reason}, close to opening the front door to the whole internet; list the "
            "networks your clients use, or opt in with "
            "`pulumi config set allowHttpsFromAnywhere true`",
        )
    return tuple(networks)


def _public_key(path_text: str) -> str:
    path = Path(path_text).expanduser()
    try:
        key = path.read_text().strip()
    except OSError as exc:
        _fail(
            "sshPublicKeyPath",
            path_text,
            f"cannot read it ({exc.strerror}); make a key with `fab box.keygen` or point the "
            "setting at an existing .pub file",
        )
    if not key.startswith(("ssh-ed25519 ", "ssh-rsa ", "ecdsa-sha2-")):
        _fail("sshPublicKeyPath", path_text, "it is not an OpenSSH public key (.pub) file")
    return key


def _required(raw: Mapping[str, str], key: str) -> str:
    value = raw.get(key, "").strip()
    if not value:
        _fail(key, "", f"it is required: `pulumi config set {key} <value>`")
    return value


def _integer(raw: Mapping[str, str], key: str) -> int:
    text = _required(raw, key)
    try:
        return int(text)
    except ValueError:
        _fail(key, text, "give a whole number")


def _boolean(raw: Mapping[str, str], key: str) -> bool:
    text = raw.get(key, "false").strip().lower()
    if text not in ("true", "false"):
        _fail(key, text, "give true or false")
    return text == "true"


def _fail(key: str, value: str, fix: str) -> NoReturn:
    raise InfraConfigError(f"Invalid setting {PROJECT}:{key} = {value!r}: {fix}.")
