"""`fab box.*`: start, stop and inspect the box, and keep `ssh <name>` pointing at it.

Each task parses its arguments, calls library functions and prints what happened. A
`MlopsBoxError` becomes its message on one line of stderr and exit status 1.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from fabric import task
from invoke import Collection
from invoke.exceptions import Exit

from remote import host_keys, keys, ssh
from remote.bootstrap import bootstrap as bootstrap_box
from remote.connection import connect, wait_for_ssh
from remote.errors import ConfigError, MlopsBoxError, ProviderError
from remote.providers import State, get_provider
from remote.providers.base import START_TIMEOUT_S, STOP_TIMEOUT_S
from remote.security_group import DEFAULT_ECHO_URL, allow_my_ip, pulumi_drift_hint
from remote.settings import BoxSettings, load_settings
from remote.status import format_status

# The repository root: fabric.yaml, Pulumi.yaml and sshconfig.template live there.
PROJECT_DIR = Path(__file__).resolve().parents[2]
# After the box runs, sshd needs cloud-init (first boot) or a service start to answer.
SSH_TIMEOUT_S = 300

P = ParamSpec("P")
R = TypeVar("R")


def user_errors(body: Callable[P, R]) -> Callable[P, R]:
    """Turn a MlopsBoxError into one line on stderr and exit 1; other errors keep tracebacks."""

    @functools.wraps(body)  # invoke reads the signature and docstring through __wrapped__
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return body(*args, **kwargs)
        except MlopsBoxError as exc:
            raise Exit(" ".join(str(exc).split()), code=1) from None

    return wrapper


def settings_of(c: Any) -> BoxSettings:
    """The box settings from Fabric's `box` config section (fabric.yaml, FABRIC_BOX_*)."""
    return load_settings(c.config.box, project_dir=PROJECT_DIR)


def say(text: str) -> None:
    print(text, flush=True)


def running_address(settings: BoxSettings) -> str:
    """The running box's current address, from its provider (never a saved one)."""
    box = get_provider(settings).state()
    if box.state is not State.RUNNING or box.address is None:
        raise ProviderError(
            f"Box {settings.name} ({box.box_id}) is {box.state.value}: start it with "
            "`fab box.start` first."
        )
    return box.address


def box_connection(settings: BoxSettings) -> Any:
    """A Connection to the running box that trusts only its pinned host key."""
    return connect(settings, running_address(settings), trust_on_first_use=False)


def _write_ssh_entry(settings: BoxSettings, address: str) -> None:
    changed = ssh.write_entry(settings, address)
    included = ssh.ensure_include(settings)
    path = ssh.entry_path(settings)
    if changed:
        say(f"ssh entry {path}: HostName {address}")
    else:
        say(f"ssh entry {path} already points at {address}")
    if included:
        say(f"Added `{ssh.include_line(settings)}` at the top of {ssh.config_path(settings)}")


@task(
    help={
        "ssh_timeout": f"Seconds to wait for SSH to answer after the start (default "
        f"{SSH_TIMEOUT_S}; 0: do not wait).",
    }
)
@user_errors
def start(c: Any, ssh_timeout: int = SSH_TIMEOUT_S) -> None:
    """Start the box, point `ssh <name>` at its new address, wait for SSH."""
    if ssh_timeout < 0:
        raise ConfigError(f"--ssh-timeout is {ssh_timeout}: give seconds, or 0 not to wait.")
    settings = settings_of(c)
    box = get_provider(settings).start(START_TIMEOUT_S)
    if box.address is None:  # start() promises an address; say so rather than write None
        raise ProviderError(f"Box {settings.name} ({box.box_id}) started without an address.")
    say(f"Box {settings.name} ({box.box_id}) is running at {box.address}")
    # Written before waiting for SSH: the address is already right even if sshd is slow.
    _write_ssh_entry(settings, box.address)
    if ssh_timeout == 0:
        say(f"Not waiting for SSH: `ssh {settings.name}` works once the box's sshd is up.")
        return
    wait_for_ssh(settings, box.address, ssh_timeout)
    say(f"Ready: ssh {settings.name}")


@task
@user_errors
def stop(c: Any) -> None:
    """Stop the box (stopping a stopped box does nothing)."""
    settings = settings_of(c)
    provider = get_provider(settings)
    before = provider.state()
    if before.state is State.STOPPED:
        say(f"Box {settings.name} ({before.box_id}) is already stopped")
        return
    box = provider.stop(STOP_TIMEOUT_S)
    say(f"Box {settings.name} ({box.box_id}) is {box.state.value}")


@task
@user_errors
def status(c: Any) -> None:
    """Show the box's state, id, type, address and uptime."""
    settings = settings_of(c)
    say(format_status(settings, get_provider(settings).state()))


@task(name="ssh-config")
@user_errors
def ssh_config(c: Any) -> None:
    """Point `ssh <name>` at the running box's current address, without starting it."""
    settings = settings_of(c)
    box = get_provider(settings).state()
    if box.state is not State.RUNNING or box.address is None:
        raise Exit(
            f"Box {settings.name} ({box.box_id}) is {box.state.value} and has no address: "
            "start it with `fab box.start`, which writes the ssh entry too.",
            code=1,
        )
    _write_ssh_entry(settings, box.address)


@task(
    name="allow-my-ip",
    help={
        "ip": "The address to allow (default: ask the echo URL for this machine's public one).",
        "echo_url": f"Service answering with this machine's public IP ({DEFAULT_ECHO_URL}).",
    },
)
@user_errors
def allow_my_ip_task(c: Any, ip: str = "", echo_url: str = DEFAULT_ECHO_URL) -> None:
    """Allow SSH to the AWS box from this machine's public IP only."""
    settings = settings_of(c)
    if settings.provider != "aws":
        raise ConfigError(
            f"allow-my-ip changes the AWS box's security group; the {settings.provider} box "
            "has none (set FABRIC_BOX_PROVIDER=aws to act on the AWS box)."
        )
    access = allow_my_ip(settings, ip or None, echo_url)
    say(access.describe())
    if access.changed:
        say(pulumi_drift_hint(settings, access.cidr))


@task
@user_errors
def keygen(c: Any) -> None:
    """Create the box's ssh key pair if it does not exist."""
    settings = settings_of(c)
    if keys.keygen(settings):
        say(f"Created {settings.key} and {settings.public_key}")
    else:
        say(f"{settings.key} exists; kept it")


@task(name="forget-host-key")
@user_errors
def forget_host_key(c: Any) -> None:
    """Forget the box's pinned host key (after re-creating the box on purpose)."""
    settings = settings_of(c)
    if host_keys.forget_host_key(settings):
        say(f"Forgot the host key of {settings.name}; the next `fab box.start` pins the new one")
    else:
        say(f"No host key was pinned for {settings.name}")


@task
@user_errors
def create(c: Any) -> None:
    """Create the local box (the AWS box is created by `pulumi up`)."""
    settings = _local_only(settings_of(c), "create", "pulumi up")
    from remote.providers.local import LocalProvider  # only the local provider has it

    if keys.keygen(settings):
        say(f"Created {settings.key} and {settings.public_key}")
    if LocalProvider(settings).create():
        say(f"Created the local box {settings.name}; start it with `fab box.start`")
    else:
        say(f"The local box {settings.name} already exists")


@task
@user_errors
def destroy(c: Any) -> None:
    """Destroy the local box, its ssh entry and its pinned host key."""
    settings = _local_only(settings_of(c), "destroy", "pulumi destroy")
    from remote.providers.local import LocalProvider

    destroyed = LocalProvider(settings).destroy()
    removed = ssh.remove_entry(settings)
    forgot = host_keys.forget_host_key(settings)
    if destroyed:
        say(f"Destroyed the local box {settings.name}")
    else:
        say(f"There was no local box {settings.name}")
    if removed:
        say(f"Removed {ssh.entry_path(settings)}")
    if forgot:
        say(f"Forgot the host key of {settings.name}")


@task
@user_errors
def bootstrap(c: Any) -> None:
    """Base set-up of the box: package index, base packages, swap file (idempotent)."""
    settings = settings_of(c)
    with box_connection(settings) as conn:
        changed = bootstrap_box(conn, say=say)
    say(f"Bootstrapped {settings.name}" if changed else f"{settings.name}: nothing to change")


def _local_only(settings: BoxSettings, verb: str, pulumi_command: str) -> BoxSettings:
    if settings.provider != "local":
        raise ConfigError(
            f"box.{verb} is for the local box; the {settings.provider} box is made and "
            f"removed by Pulumi: run `{pulumi_command}` on stack {settings.stack}."
        )
    return settings


box = Collection(
    "box",
    start,
    stop,
    status,
    ssh_config,
    allow_my_ip_task,
    keygen,
    forget_host_key,
    create,
    destroy,
    bootstrap,
)
