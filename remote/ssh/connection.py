"""Fabric connections to the box that trust only its pinned host key.

The box gets a new IP at every start, so its host key is pinned under its alias
(OpenSSH's HostKeyAlias) in the project's own known_hosts, never under an address.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import paramiko
from fabric import Config, Connection
from paramiko.config import SSHConfig

from remote.errors import HostKeyMismatch
from remote.providers.base import Provider, sha256_fingerprint
from remote.settings import BoxSettings
from remote.ssh import config_entry as ssh
from remote.ssh import keys
from remote.ssh import known_hosts as host_keys
from remote.waiting import wait_for

if TYPE_CHECKING:
    from remote.ssh.first_contact import FirstContact

# paramiko logs every refused probe with a traceback; with no handler of its own that
# reaches stderr through logging's last resort. Failures still surface as exceptions.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

CONNECT_TIMEOUT_S = 10
SSH_PROBE_POLL_S = 2.0


class PinnedHostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Decide on the box's host key from the project's known_hosts, by alias.

    With nothing pinned, only `first_contact` (given while `fab box.start` waits for SSH)
    may pin a key, and only one its evidence vouches for; without it the key is refused.
    """

    def __init__(self, settings: BoxSettings, *, first_contact: FirstContact | None) -> None:
        self.settings = settings
        self.first_contact = first_contact

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        offered = (key.get_name(), key.get_base64())
        pinned = host_keys.pinned_keys(self.settings)
        if offered in pinned:
            return
        name = self.settings.name
        if pinned:
            raise HostKeyMismatch(
                f"{name} ({hostname}) offered a host key ({key.get_name()} "
                f"{sha256_fingerprint(key.get_base64())}) other than the one pinned in "
                f"{ssh.known_hosts_path(self.settings)}: if you re-created the box on "
                "purpose run `fab box.forget-host-key`, otherwise do not connect."
            )
        if self.first_contact is None:
            raise HostKeyMismatch(
                f"No host key is pinned for {name} in {ssh.known_hosts_path(self.settings)}: "
                "run `fab box.start`, which pins the key its provider vouches for."
            )
        self.first_contact.admit(self.settings, hostname, *offered)


class _PinnedClient(paramiko.SSHClient):
    """An SSHClient whose host-key stores stay empty, so our policy sees every key.

    SSHClient.connect consults its loaded host keys first and calls the policy only for
    a host it has no key for. Refusing to load any keeps ~/.ssh/known_hosts (with
    entries under a recycled IP) out of the decision.
    """

    def __init__(self, policy: PinnedHostKeyPolicy) -> None:
        super().__init__()
        super().set_missing_host_key_policy(policy)

    def load_system_host_keys(self, filename: object = None) -> None:
        raise RuntimeError("box connections trust only the project's known_hosts")

    def load_host_keys(self, filename: object) -> None:
        raise RuntimeError("box connections trust only the project's known_hosts")

    def set_missing_host_key_policy(
        self, policy: type[paramiko.MissingHostKeyPolicy] | paramiko.MissingHostKeyPolicy
    ) -> None:
        raise RuntimeError("box connections keep their pinned host-key policy")


class BoxConnection(Connection):
    """A Fabric Connection whose host key check is always `PinnedHostKeyPolicy`.

    Fabric 3.2's Connection.__init__ makes one SSHClient with AutoAddPolicy and reuses it
    for every open(), reconnects included. Swapping in `_PinnedClient` right after
    __init__, before anything connects, makes our policy the one that decides each time.
    """

    def __init__(self, *args: object, policy: PinnedHostKeyPolicy, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.client = _PinnedClient(policy)

    def open(self) -> object:
        try:
            return super().open()
        except BaseException:
            # A rejected host key leaves paramiko's transport thread running.
            self.client.close()
            raise


def connect(
    settings: BoxSettings,
    address: str,
    *,
    port: int = 22,
    connect_timeout_s: int = CONNECT_TIMEOUT_S,
    first_contact: FirstContact | None = None,
) -> Connection:
    """A Fabric Connection to the box at `address` (not yet opened), with its pinned key.

    Only the pinned key is trusted; with none pinned, `first_contact` decides (see
    `remote.ssh.first_contact`), and without it the connection is refused.

    Only settings.key is offered (no agent, no ~/.ssh/id_*), and no ssh config file is
    read: a `Host *` block in the user's config must not change user, port, proxy or keys.
    A key that `ssh <name>` would refuse is refused here too, with the fix.
    """
    keys.check_private_key(settings.key)
    # An explicit, empty SSHConfig stops Fabric loading ~/.ssh/config and
    # /etc/ssh/ssh_config; the overrides beat anything in ~/.fabric.yaml.
    config = Config(
        ssh_config=SSHConfig(),
        overrides={
            "load_ssh_configs": False,
            "authentication": {"strategy_class": None},
            # Remote steps are never interactive: do not read our stdin (absent in CI).
            "run": {"in_stream": False},
        },
    )
    return BoxConnection(
        address,
        user=settings.user,
        port=port,
        config=config,
        gateway=False,
        forward_agent=False,
        connect_timeout=connect_timeout_s,
        connect_kwargs={
            "key_filename": str(settings.key),
            "look_for_keys": False,
            "allow_agent": False,
            "banner_timeout": connect_timeout_s,
            "auth_timeout": connect_timeout_s,
        },
        policy=PinnedHostKeyPolicy(settings, first_contact=first_contact),
    )


def box_connection(settings: BoxSettings, provider: Provider) -> Connection:
    """A Connection to the running box (at the address its provider gives now) that trusts
    only its pinned host key."""
    return connect(settings, provider.address())


def wait_for_ssh(
    settings: BoxSettings,
    address: str,
    timeout_s: float,
    *,
    port: int = 22,
    first_contact: FirstContact | None = None,
) -> None:
    """Wait until the box accepts SSH with our key and runs `true`.

    The host key must be the pinned one, or (nothing pinned yet) one `first_contact`
    admits and pins. A refused host key is raised at once: waiting cannot fix it.
    """

    def probe() -> bool | None:
        conn = connect(settings, address, port=port, first_contact=first_contact)
        try:
            result = conn.run("true", hide=True, warn=True)
            return True if result.ok else None
        except HostKeyMismatch:
            raise
        except (OSError, EOFError, paramiko.SSHException):
            # Not up yet: refused, timed out, sshd starting, or our key not installed yet.
            return None
        finally:
            conn.close()

    wait_for(
        probe,
        what=f"SSH on {settings.name} ({address})",
        timeout_s=timeout_s,
        poll_s=SSH_PROBE_POLL_S,
        hint=f"Check the box is running (`fab box.status`), that port {port} is open to "
        f"this machine, and that {settings.public_key} is the key installed on it.",
    )
