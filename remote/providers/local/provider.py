"""The `local` provider: a systemd-nspawn box on this machine, standing in for EC2.

Layout under box.local.root:
  <name>/rootfs     the box's Debian tree (copied from the shared debootstrap cache)
  <name>/run.json   written by start, removed by stop: nspawn's pid, the address, since when
  <name>/nspawn.log the boot log of the last start
The address is fresh at every start (a random /30 of box.local.subnet), as an EC2
public IP would be, so nothing may keep it except through this provider.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from remote.changes import Changed
from remote.contract import SSH_PORT
from remote.errors import (
    BoxNotFound,
    ConfigError,
    DatabaseNotConfigured,
    ProviderError,
    WaitTimeout,
)
from remote.local_files import locked, write_atomically
from remote.providers.base import (
    AccessChange,
    AccessCheck,
    BoxState,
    Database,
    HostKeyEvidence,
    State,
)
from remote.providers.local import boxconfig, netns, nspawn, rootfs
from remote.providers.local.run import require_host
from remote.settings import BoxSettings
from remote.ssh import keys
from remote.waiting import wait_for

INSTANCE_TYPE = "systemd-nspawn"
SSH_PROBE_TIMEOUT_S = 2.0


class LocalProvider:
    """One local box, found by its name under box.local.root."""

    def __init__(self, settings: BoxSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.box_dir = settings.local.root / settings.name
        self.rootfs = self.box_dir / "rootfs"
        self.run_file = self.box_dir / "run.json"
        self.log_file = self.box_dir / "nspawn.log"

    # -- lifecycle beyond the four verbs -------------------------------------------------

    def create(self) -> Changed:
        """Make the box (from the cache, built first if needed), and its key pair if absent."""
        require_host()
        changed = Changed()
        if keys.keygen(self.settings):
            changed.add(f"{self.settings.key} and {self.settings.public_key}")
        public_key = self.settings.public_key
        if not public_key.is_file():
            raise ConfigError(
                f"The box's public key {public_key} does not exist: run `fab box.keygen` first "
                "(or point box.key at an existing private key)."
            )
        with self._lock():
            made = not self.rootfs.is_dir()
            if made:
                cached, _ = rootfs.ensure_cache(self.settings.local)
                rootfs.copy_tree(cached, self.rootfs)
            identity = boxconfig.BoxIdentity(self.name, self.settings.user, public_key.read_text())
            configured = boxconfig.configure(self.rootfs, identity)
        if made or configured:
            changed.add(
                f"the local box {self.name}" if made else f"the local box {self.name}'s settings"
            )
        return changed

    def destroy(self) -> bool:
        """Stop the box if it runs and delete it (never the shared cache); idempotent."""
        require_host()
        if not self.box_dir.exists():
            return False
        if self.rootfs.is_dir():
            self.stop(timeout_s=60)
        with self._lock():
            self._clean_up()
            shutil.rmtree(self.box_dir)
        return True

    # -- the provider contract -----------------------------------------------------------

    def start(self, timeout_s: float) -> BoxState:
        require_host()
        self._require_box()
        current = self.state()
        if current.state is State.RUNNING:
            return current
        if current.state is State.STOPPING:
            self._wait_stopped(timeout_s)
        with self._lock(), locked(self.settings.local.root / ".network.lock"):
            # Whatever a crashed run left (processes, netns, veth, rules) would collide.
            self._clean_up()
            plan = netns.make_plan(self.name, self.settings.local.subnet, random.SystemRandom())
            netns.setup(plan)
        try:
            boxconfig.write(
                self.rootfs,
                "etc/resolv.conf",
                boxconfig.render_resolv_conf(list(plan.box_nameservers)),
            )
            self.log_file.write_text("")
            pid = nspawn.boot(
                nspawn.command(
                    self.rootfs, self.name, netns.NETNS_DIR / plan.netns, self._package_cache()
                ),
                self.log_file,
                self.name,
            )
            started_at = datetime.now(UTC)
            self._write_run(pid=pid, address=str(plan.box_ip), started_at=started_at.isoformat())
            wait_for(
                lambda: self._ready(pid, str(plan.box_ip)),
                what=f"local box {self.name} to answer ssh at {plan.box_ip}",
                timeout_s=timeout_s,
                hint=f"See its boot log in {self.log_file}.",
            )
        except BaseException:
            # A box that failed to start must not keep a pid, an address or iptables rules.
            with contextlib.suppress(ProviderError, WaitTimeout):
                self.stop(timeout_s=30)
            raise
        return BoxState(State.RUNNING, self.name, str(plan.box_ip), INSTANCE_TYPE, started_at)

    def stop(self, timeout_s: float) -> BoxState:
        require_host()
        self._require_box()
        with self._lock():
            record = self._read_run()
            pid = record.get("pid")
            if isinstance(pid, int) and nspawn.is_running(pid, self.name):
                self._write_run(**{**record, "phase": "stopping"})
                nspawn.poweroff(pid, self.name, timeout_s)
            self._clean_up()
        return BoxState(State.STOPPED, self.name, instance_type=INSTANCE_TYPE)

    def state(self) -> BoxState:
        self._require_box()
        record = self._read_run()
        pid = record.get("pid")
        if not isinstance(pid, int) or not nspawn.is_running(pid, self.name):
            if record:
                self._clean_up_after_poweroff()
            return BoxState(State.STOPPED, self.name, instance_type=INSTANCE_TYPE)
        state = State.STOPPING if record.get("phase") == "stopping" else State.RUNNING
        return BoxState(
            state,
            self.name,
            record.get("address"),
            INSTANCE_TYPE,
            datetime.fromisoformat(record["started_at"]),
        )

    def address(self) -> str:
        current = self.state()
        if current.state is not State.RUNNING or not current.address:
            raise ProviderError(
                f"The local box {self.name} is {current.state.value}: run `fab box.start` first."
            )
        return current.address

    # -- the verbs a cloud needs ----------------------------------------------------------

    def host_key_evidence(self, timeout_s: float) -> HostKeyEvidence:
        """The exact host keys in the box's tree, made by `box.create` (no wait needed)."""
        self._require_box()
        return HostKeyEvidence(
            f"the local box's tree {self.rootfs}",
            keys=boxconfig.host_public_keys(self.rootfs),
            note="(it has no /etc/ssh/ssh_host_*_key.pub: run `fab box.destroy` and "
            "`fab box.create`)",
        )

    def allow_ssh_from(self, ip: str | None, echo_url: str) -> AccessChange:
        raise ConfigError(
            f"The local box {self.name} has no security group: it is reachable only from "
            "this machine, through its own network namespace. allow-my-ip is for the AWS box "
            "(FABRIC_BOX_PROVIDER=aws)."
        )

    def front_door_access(self, cidr: IPv4Network) -> AccessCheck:
        # This machine is the only client the local box has: it comes from its end of
        # the box's /30, which a new start draws afresh from box.local.subnet.
        host = netns.host_side(IPv4Address(self.address()))
        if host in cidr:
            return AccessCheck(
                True,
                f"The local box {self.name} has no security group: only this machine "
                f"reaches it, from {host}, which {cidr} admits.",
            )
        return AccessCheck(
            False,
            f"The local box {self.name} has no security group, and only this machine "
            f"reaches it, from {host}, which {cidr} does not admit.",
            follow_up=(
                f"Give --cidr {self.settings.local.subnet} (box.local.subnet): this "
                "machine's end of the box's link is drawn from it at every start."
            ),
        )

    def artifact_bucket(self) -> str | None:
        return None  # artifacts stay on the box's disk

    def database(self) -> Database:
        raise DatabaseNotConfigured(
            f"The local box {self.name} has no RDS database: use --backend sqlite (RDS is "
            "made by `pulumi up` with mlflowBackend rds, for the AWS box)."
        )

    # -- helpers -------------------------------------------------------------------------

    def _ready(self, pid: int, address: str) -> str | None:
        if not nspawn.is_running(pid, self.name):
            raise ProviderError(
                f"The local box {self.name} exited while booting "
                f"({nspawn.log_tail(self.log_file)}): see {self.log_file}, then retry."
            )
        return ssh_banner(address)

    def _clean_up(self) -> None:
        """Remove what a start made, also when nspawn died without stopping the box."""
        nspawn.kill_box_processes(netns.NETNS_DIR / netns.netns_name(self.name), self.name)
        netns.teardown(self.name)
        self.run_file.unlink(missing_ok=True)

    def _clean_up_after_poweroff(self) -> None:
        """A box that powered itself off (`systemctl poweroff` inside it, as the idle
        auto-stop does) leaves its run record, netns, veth and iptables rules behind:
        remove them now, as `stop` would have. Only root can; others leave it to `start`."""
        if os.geteuid() != 0:
            return
        with self._lock():
            # Under the lock: a `stop` in progress has cleaned up by now, and a `start`
            # that followed has a live pid again.
            pid = self._read_run().get("pid")
            if self.run_file.exists() and not (
                isinstance(pid, int) and nspawn.is_running(pid, self.name)
            ):
                self._clean_up()

    def _wait_stopped(self, timeout_s: float) -> None:
        wait_for(
            lambda: True if self.state().state is State.STOPPED else None,
            what=f"local box {self.name} to finish stopping",
            timeout_s=timeout_s,
        )

    def _require_box(self) -> None:
        if not self.rootfs.is_dir():
            raise BoxNotFound(
                f"There is no local box {self.name!r} under {self.settings.local.root}: "
                "run `fab box.create` first."
            )

    def _package_cache(self) -> Path:
        cache = self.settings.local.cache / "packages"
        cache.mkdir(mode=0o755, parents=True, exist_ok=True)
        return cache

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        return locked(self.settings.local.root / f".{self.name}.lock")

    def _read_run(self) -> dict[str, Any]:
        try:
            data = json.loads(self.run_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write_run(self, **record: Any) -> None:
        write_atomically(self.run_file, (json.dumps(record, indent=2) + "\n").encode(), 0o644)


def ssh_banner(address: str, port: int = SSH_PORT) -> str | None:
    """The SSH server's identification line at address:port, or None if none answers yet."""
    try:
        with socket.create_connection((address, port), timeout=SSH_PROBE_TIMEOUT_S) as sock:
            sock.settimeout(SSH_PROBE_TIMEOUT_S)
            data = sock.recv(256)
    except OSError:
        return None
    line = data.split(b"\r\n", 1)[0].decode(errors="replace")
    return line if line.startswith("SSH-") else None
