"""`fab box.start` and `fab box.ssh-config`: start the box, point `ssh <name>` at its new
address, wait for SSH and pin the host key its provider vouches for.

Everything the steps after the (billed) start need is checked before it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from remote.errors import ConfigError, ProviderError
from remote.providers.base import START_TIMEOUT_S, BoxState, Provider
from remote.settings import BoxSettings
from remote.ssh import config_entry as ssh
from remote.ssh import keys
from remote.ssh.first_contact import wait_and_pin

# After the box runs, sshd needs cloud-init (first boot) or a service start to answer.
SSH_TIMEOUT_S = 300


def start(
    settings: BoxSettings,
    provider: Provider,
    *,
    ssh_timeout_s: int = SSH_TIMEOUT_S,
    trust_first_key: bool = False,
    say: Callable[[str], None] = print,
) -> BoxState:
    """Start the box, write its ssh entry, then (unless `ssh_timeout_s` is 0) wait for SSH
    and pin its host key; return the running box."""
    if ssh_timeout_s < 0:
        raise ConfigError(f"--ssh-timeout is {ssh_timeout_s}: give seconds, or 0 not to wait.")
    ssh.preflight(settings)
    if ssh_timeout_s > 0 or settings.key.exists() or settings.key.is_symlink():
        keys.check_private_key(settings.key)  # the entry names it, even if we do not wait
    box = provider.start(START_TIMEOUT_S)
    if box.address is None:  # start() promises an address; say so rather than write None
        raise ProviderError(f"Box {settings.name} ({box.box_id}) started without an address.")
    say(f"Box {settings.name} ({box.box_id}) is running at {box.address}")
    # Written before waiting for SSH: the address is already right even if sshd is slow.
    write_ssh_entry(settings, box.address, say=say)
    if ssh_timeout_s == 0:
        say(f"Not waiting for SSH: `ssh {settings.name}` works once the box's sshd is up.")
        return box
    wait_and_pin(settings, provider, box.address, ssh_timeout_s, trust_first_key=trust_first_key)
    say(f"Ready: ssh {settings.name}")
    return box


def write_ssh_entry(
    settings: BoxSettings, address: str, *, say: Callable[[str], None] = print
) -> None:
    """Write the entry and the Include (checked by `ssh.preflight` before anything else)."""
    changed = ssh.write_entry(settings, address)
    included = ssh.ensure_include(settings)
    path = ssh.entry_path(settings)
    if changed:
        say(f"ssh entry {path}: HostName {address}")
    else:
        say(f"ssh entry {path} already points at {address}")
    if included:
        say(f"Added `{ssh.include_line(settings)}` at the top of {ssh.config_path(settings)}")
    for warning in ssh.shadowing_warnings(settings):
        print(warning, file=sys.stderr, flush=True)
