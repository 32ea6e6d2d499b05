"""`fab box.*`: start, stop and inspect the box, and keep `ssh <name>` pointing at it."""

from __future__ import annotations

from typing import Any

from invoke import Collection
from invoke.exceptions import Exit

from remote.box import autostop as idle
from remote.box import gc as box_gc
from remote.box.start import SSH_TIMEOUT_S, write_ssh_entry
from remote.box.start import start as start_box
from remote.box.status import format_status
from remote.contract import KEEPALIVE_FILE
from remote.providers.base import DEFAULT_ECHO_URL, STOP_TIMEOUT_S, State
from remote.ssh import config_entry as ssh
from remote.ssh import keys
from remote.ssh import known_hosts as host_keys
from remote.ssh.connection import box_connection
from remote.ssh.first_contact import pin_known_keys
from remote.system.bootstrap import bootstrap as bootstrap_box
from remote.tasks._common import box_of, say, settings_of, task, user_errors


@task(
    help={
        "ssh_timeout": f"Seconds to wait for SSH to answer after the start (default "
        f"{SSH_TIMEOUT_S}; 0: do not wait), and for the provider to vouch for its host key.",
        "trust_first_key": "If the provider vouches for no host key (an EC2 console without "
        "cloud-init's fingerprints), pin the first key the box offers, with a warning.",
    }
)
@user_errors
def start(c: Any, ssh_timeout: int = SSH_TIMEOUT_S, trust_first_key: bool = False) -> None:
    """Start the box, point `ssh <name>` at its new address, wait for SSH."""
    settings, provider = box_of(c)
    start_box(
        settings, provider, ssh_timeout_s=ssh_timeout, trust_first_key=trust_first_key, say=say
    )


@task
@user_errors
def stop(c: Any) -> None:
    """Stop the box (stopping a stopped box does nothing)."""
    settings, provider = box_of(c)
    before = provider.state()
    if before.state is State.STOPPED:
        say(f"Box {settings.name} ({before.box_id}) is already stopped")
        return
    box = provider.stop(STOP_TIMEOUT_S)
    say(f"Box {settings.name} ({box.box_id}) is {box.state.value}")


@task
@user_errors
def status(c: Any) -> None:
    """Show the box's state, id, type, address, uptime, and its idle auto-stop."""
    settings, provider = box_of(c)
    box = provider.state()
    say(format_status(settings, box, extra=idle.box_rows(settings, box)))


@task(
    help={
        "idle_minutes": f"Power the box off after this many idle minutes (1 to "
        f"{idle.MAX_IDLE_MINUTES}); busy: SSH connections, training jobs, deploys, router "
        f"requests, the keep-alive file {KEEPALIVE_FILE}.",
        "off": "Turn the auto-stop off (the timer is disabled, the setting says off).",
        "ignore_serving": "Requests to the router do not keep the box up.",
    }
)
@user_errors
def autostop(
    c: Any, idle_minutes: str = "", off: bool = False, ignore_serving: bool = False
) -> None:
    """Let the box power itself off after N idle minutes (decided on the box), or --off."""
    request = idle.parse_request(idle_minutes, off, ignore_serving)
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        changed = idle.apply(conn, request)
    say(f"Auto-stop on {settings.name}: {request.describe()}")
    say(f"Changed: {changed}" if changed else "Nothing changed")
    if request.idle_minutes is not None:
        say(
            "Checked on the box every minute. In use: SSH connections (tunnels too), training "
            f"jobs, deploys, router requests, and `sudo touch -d '+3 hours' {KEEPALIVE_FILE}`."
        )


@task(
    help={
        "dry_run": "Only list what would be removed.",
        "train_days": "Keep training environments of jobs started within this many days "
        "(default 7).",
    }
)
@user_errors
def gc(c: Any, dry_run: bool = False, train_days: str = "7") -> None:
    """Free the box's disk: environments, model files and agent bundles nothing uses."""
    days = box_gc.check_train_days(train_days)
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        say(box_gc.collect(conn, train_days=days, dry_run=dry_run).describe())


@task(name="ssh-config")
@user_errors
def ssh_config(c: Any) -> None:
    """Point `ssh <name>` at the running box's current address, without starting it."""
    settings, provider = box_of(c)
    ssh.preflight(settings)
    box = provider.state()
    if box.state is not State.RUNNING or box.address is None:
        raise Exit(
            f"Box {settings.name} ({box.box_id}) is {box.state.value} and has no address: "
            "start it with `fab box.start`, which writes the ssh entry too.",
            code=1,
        )
    write_ssh_entry(settings, box.address, say=say)


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
    _, provider = box_of(c)
    access = provider.allow_ssh_from(ip or None, echo_url)
    say(access.summary)
    if access.follow_up:
        say(access.follow_up)


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
        say(
            f"Forgot the host key of {settings.name}; the next `fab box.start` pins the one "
            "its provider vouches for"
        )
    else:
        say(f"No host key was pinned for {settings.name}")


@task
@user_errors
def create(c: Any) -> None:
    """Create the local box (the AWS box is created by `pulumi up`)."""
    settings, provider = box_of(c)
    changed = provider.create()
    for what in changed.changes:
        say(f"Created {what}")
    # The project made the box's host keys itself: pin them now, not at first contact.
    evidence = provider.host_key_evidence(0)
    if pin_known_keys(settings, evidence):
        say(f"Pinned the host keys of {settings.name} from {evidence.source}")
    if changed:
        say("Start it with `fab box.start`")
    else:
        say(f"The box {settings.name} already exists")


@task
@user_errors
def destroy(c: Any) -> None:
    """Destroy the local box, its ssh entry and its pinned host key."""
    settings, provider = box_of(c)
    destroyed = provider.destroy()
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
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        changed = bootstrap_box(conn, say=say)
    say(f"Bootstrapped {settings.name}" if changed else f"{settings.name}: nothing to change")


box = Collection(
    "box",
    start,
    stop,
    status,
    autostop,
    ssh_config,
    allow_my_ip_task,
    keygen,
    forget_host_key,
    create,
    destroy,
    bootstrap,
    gc,
)
