"""A local box running MLflow, as the MLflow box tests drive it."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remote.providers.local.provider import LocalProvider
from remote.settings import BoxSettings
from remote.ssh import config_entry as ssh
from remote.ssh.connection import connect
from remote.ssh.first_contact import wait_and_pin
from tests.box.harness.local_box import REPO_ROOT, START_TIMEOUT_S

FAB = str(Path(sys.executable).with_name("fab"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MlflowBox:
    settings: BoxSettings
    provider: LocalProvider
    address: str
    conn: Any

    def start(self) -> None:
        """Start the box if needed, point the ssh entry at it and (re)connect."""
        state = self.provider.start(timeout_s=START_TIMEOUT_S)
        assert state.address is not None
        if state.address != self.address or self.conn is None:
            if self.conn is not None:
                self.conn.close()
            ssh.update(self.settings, state.address)
            wait_and_pin(self.settings, self.provider, state.address, 60)
            self.address = state.address
            self.conn = connect(self.settings, state.address)

    def sh(self, command: str) -> str:
        return str(self.conn.run(command, hide=True).stdout)

    def started_at(self) -> str:
        return self.sh(
            "systemctl show -p ExecMainStartTimestampMonotonic -p ExecMainPID mlflow.service"
        )

    @contextlib.contextmanager
    def tracking(self) -> Iterator[str]:
        """The real MLflow client, pointed at the server through an SSH tunnel."""
        import mlflow

        port = free_port()
        with self.conn.forward_local(port, remote_port=5000, remote_host="127.0.0.1"):
            url = f"http://127.0.0.1:{port}"
            mlflow.set_tracking_uri(url)
            try:
                yield url
            finally:
                mlflow.set_tracking_uri(None)

    def env(self) -> dict[str, str]:
        s = self.settings
        return {
            **os.environ,
            "FABRIC_BOX_PROVIDER": "local",
            "FABRIC_BOX_NAME": s.name,
            "FABRIC_BOX_KEY": str(s.key),
            "FABRIC_BOX_SSH_DIR": str(s.ssh_dir),
            "FABRIC_BOX_SECRETS_DIR": str(s.secrets_dir),
            "FABRIC_BOX_LOCAL_ROOT": str(s.local.root),
            "FABRIC_BOX_LOCAL_SUBNET": str(s.local.subnet),
            "FABRIC_BOX_LOCAL_CACHE": str(s.local.cache),
        }

    def fab(
        self, *args: str, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [FAB, "-r", str(REPO_ROOT), *args],
            env={**self.env(), **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=900,
            stdin=subprocess.DEVNULL,
        )

    def fab_in_background(self, *args: str) -> subprocess.Popen[str]:
        """The real `fab` CLI against the test box, running while the test goes on. Ctrl-C
        (SIGINT) reaches it as from a terminal, even when the tests themselves run in the
        background, where the shell has them ignore SIGINT (and a child inherits that)."""
        return subprocess.Popen(
            [FAB, "-r", str(REPO_ROOT), *args],
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
            preexec_fn=_interruptible,
        )

    @contextlib.contextmanager
    def fab_running(self, *args: str) -> Iterator[subprocess.Popen[str]]:
        """`fab_in_background` for the block; killed at its end if it still runs."""
        command = self.fab_in_background(*args)
        try:
            yield command
        finally:
            if command.poll() is None:
                command.kill()
                command.communicate()


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def log_a_run() -> str:
    import mlflow

    mlflow.set_experiment("box-test")
    with mlflow.start_run() as run:
        mlflow.log_param("alpha", "0.5")
        mlflow.log_metric("rmse", 0.25)
        mlflow.log_text("hello from the controller", "notes/hello.txt")
    return str(run.info.run_id)


def staged_pattern(box: MlflowBox, lines: list[str], path: str) -> None:
    """`lines` into a root-only file on the box, over SFTP: never in argv."""
    staged = box.sh("mktemp").strip()
    box.conn.put(io.BytesIO("\n".join(lines).encode()), staged)
    box.sh(f"sudo install -m 0600 -o root {staged} {path} && rm -f {staged}")


def files_holding(box: MlflowBox, secrets: list[str]) -> list[str]:
    """`mode owner path` of every file on the box that holds any of `secrets`.

    They go to the box in a root-only pattern file over SFTP, never in argv.
    """
    pattern = "/root/.mlops-box-test-pattern"
    staged_pattern(box, secrets, pattern)
    try:
        found = box.conn.run(
            f"sudo grep -rlsF -f {pattern} /etc /opt /var /home /tmp /run /root"
            f" | grep -vx {pattern} | sudo xargs -r stat -c '%a %U %n'",
            hide=True,
            warn=True,
        ).stdout
    finally:
        box.sh(f"sudo rm -f {pattern}")
    return found.split("\n")[:-1]


def public_listeners(conn: Any) -> list[str]:
    """The box's TCP listeners on other than a loopback address, sshd's port 22 aside."""
    listening = conn.run("sudo ss -Hltn", hide=True).stdout.splitlines()
    found = []
    for line in listening:
        local = line.split()[3]
        address, port = local.rsplit(":", 1)
        loopback = address.startswith("127.") or address in ("[::1]", "::1")
        if not loopback and port != "22":
            found.append(local)
    return found


def https_get(url: str, ca: Path, token: str | None = None) -> tuple[int, dict[str, str], str]:
    """GET `url` trusting only the CA in `ca`: (status, headers, body)."""
    context = ssl.create_default_context(cafile=str(ca))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=30, context=context)
    except urllib.error.HTTPError as error:
        response = error
    with response:
        return response.status, dict(response.headers), response.read().decode()


def served_certificate(host: str, port: int, ca: Path) -> bytes:
    """The certificate (DER) the server at host:port sends, verified against `ca` for `host`."""
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection((host, port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def open_mlflow_box(settings: BoxSettings, provider: LocalProvider) -> MlflowBox:
    """The session's box, started, bootstrapped, with MLflow installed (each idempotent):
    what a module that needs MLflow starts from. The caller closes `conn`."""
    from remote.mlflow.install import install_on_box
    from remote.system.bootstrap import bootstrap

    box = MlflowBox(settings, provider, "", None)
    box.start()
    bootstrap(box.conn)
    install_on_box(box.conn, box.provider)
    return box
