"""Run the real Pulumi program (infra/__main__.py) under runtime mocks backed by moto."""

from __future__ import annotations

import json
import runpy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pulumi
import pytest
import yaml
from moto import mock_aws

from tests.infra.moto_mocks import MotoMocks

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "infra" / "__main__.py"
REGION = "us-east-1"
# A real OpenSSH public key; its private half is not needed anywhere.
PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOg7UgRgeeqbr1304Op5R/yiJrZgVG5FWv0qGqKG+cNP"
    " test@mlops-box"
)


def schema_defaults() -> dict[str, str]:
    """Pulumi.yaml's defaults, which the Pulumi CLI hands the program as config."""
    schema = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    defaults = {}
    for key, spec in schema.items():
        if "default" in spec:
            value = spec["default"]
            text = json.dumps(value) if isinstance(value, bool | list) else str(value)
            defaults[f"mlops-box:{key}"] = text
    return defaults


@dataclass
class Deployment:
    exports: dict[str, Any]
    mocks: MotoMocks

    def declared(self, typ: str) -> list[Any]:
        return [d for d in self.mocks.declared if d.typ == typ]


Deploy = Callable[..., Deployment]


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def public_key_file(tmp_path: Path) -> Path:
    path = tmp_path / "mlops-zoomcamp.pub"
    path.write_text(PUBLIC_KEY + "\n")
    return path


@pytest.fixture
def deploy(aws: None, public_key_file: Path) -> Deploy:
    """Return a function that runs the program with settings on top of the defaults."""

    def run(**settings: Any) -> Deployment:
        config = schema_defaults()
        config["aws:region"] = REGION
        config["mlops-box:sshPublicKeyPath"] = str(public_key_file)
        config["mlops-box:sshAllowedCidrs"] = json.dumps(["203.0.113.7/32"])
        for key, value in settings.items():
            text = json.dumps(value) if isinstance(value, bool | list) else str(value)
            config[f"mlops-box:{key}"] = text
        mocks = MotoMocks(region=REGION)
        pulumi.runtime.set_mocks(mocks, project="mlops-box", stack="dev", preview=False)
        pulumi.runtime.set_all_config(config)
        exports: dict[str, Any] = {}

        @pulumi.runtime.test
        def program() -> pulumi.Output[Any]:
            with mock.patch("pulumi.export", lambda key, value: exports.__setitem__(key, value)):
                runpy.run_path(str(PROGRAM), run_name="__main__")
            return pulumi.Output.all(**exports).apply(exports.update)

        program()
        return Deployment(exports=exports, mocks=mocks)

    return run
