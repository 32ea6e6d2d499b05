"""A local box running MLflow, as the MLflow box tests drive it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remote.providers.local.provider import LocalProvider
from remote.settings import BoxSettings
from remote.ssh import config_entry as ssh
from remote.ssh.connection import connect, wait_for_ssh
from tests.box.conftest import REPO_ROOT, START_TIMEOUT_S

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
            wait_for_ssh(self.settings, state.address, 60)
            self.address = state.address
            self.conn = connect(self.settings, state.address, trust_on_first_use=False)

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

    def fab(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [FAB, "-r", str(REPO_ROOT), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=900,
            stdin=subprocess.DEVNULL,
        )


def log_a_run() -> str:
    import mlflow

    mlflow.set_experiment("box-test")
    with mlflow.start_run() as run:
        mlflow.log_param("alpha", "0.5")
        mlflow.log_metric("rmse", 0.25)
        mlflow.log_text("hello from the controller", "notes/hello.txt")
    return str(run.info.run_id)
