"""A moto server on this machine that the local box reaches as "AWS", with every request kept.

    HostAws.start(address, recording)  a `python -m moto.server` bound to `address` (the
                                       host side of the running box's veth, where the
                                       box reaches this machine) on a free port, opened
                                       to the box subnet; `.stop()` ends it
    .client(service, key)              a boto3 client of it, signed with access key `key`
    .requests()                        every recorded request as (access key that signed
                                       it, action: "secretsmanager.GetSecretValue" for
                                       the JSON APIs, "DescribeDBInstances" for the query
                                       ones)

Access keys tell the callers apart: moto accepts any key, and the recording keeps the
Authorization header, so "who read the secret" is a fact of the server's log.
The recording holds request bodies (put_secret_value's password): it lives in the
test's temporary directory and goes with it.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3

from tests.box.harness.postgres import open_to_boxes
from tests.remote.conftest import free_port

START_TIMEOUT_S = 30
REGION = "eu-west-1"
_CREDENTIAL = re.compile(r"Credential=([^/]+)/")


@dataclass
class HostAws:
    url: str
    recording: Path
    proc: subprocess.Popen[bytes]
    _stack: ExitStack = field(default_factory=ExitStack)

    @classmethod
    def start(cls, address: str, recording: Path) -> HostAws:
        port = free_port()
        env = {"PATH": "/usr/bin:/bin", "MOTO_ENABLE_RECORDING": "true",
               "MOTO_RECORDER_FILEPATH": str(recording)}  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", address, "-p", str(port)],
            env=env,
            cwd=recording.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        aws = cls(f"http://{address}:{port}", recording, proc)
        try:
            aws._stack.enter_context(open_to_boxes(port))
            aws._wait()
        except BaseException:
            aws.stop()
            raise
        return aws

    def _wait(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise AssertionError(f"moto server exited early: {err}")
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, f"moto server did not answer on {self.url}"
                time.sleep(0.2)

    def stop(self) -> None:
        self._stack.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()

    def client(self, service: str, key: str) -> Any:
        return boto3.session.Session(
            aws_access_key_id=key, aws_secret_access_key="fake", region_name=REGION
        ).client(service, endpoint_url=self.url)  # type: ignore[call-overload]

    def requests(self) -> list[tuple[str, str]]:
        """(access key, action) of every request the server got, in order."""
        found = []
        for line in self.recording.read_text().splitlines():
            entry = json.loads(line)
            headers = {k.lower(): v for k, v in entry["headers"].items()}
            signed = _CREDENTIAL.search(headers.get("authorization", ""))
            action = headers.get("x-amz-target") or _query_action(entry)
            found.append((signed.group(1) if signed else "", action))
        return found


def _query_action(entry: dict[str, Any]) -> str:
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        body = base64.b64decode(body).decode(errors="replace")
    return parse_qs(body).get("Action", [""])[0]
