"""Settings every test tier shares.

moto reads MOTO_AMIS_PATH once, when its EC2 module is first imported, so the image
catalogue is set here, before any test module imports moto: moto's own default images
plus Canonical's Ubuntu 24.04 images that the Pulumi program looks up.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import tempfile
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def _write_image_catalogue() -> str:
    # find_spec locates moto without importing moto.ec2, which would read the variable.
    spec = importlib.util.find_spec("moto")
    assert spec is not None and spec.origin is not None, "moto is not installed"
    defaults = Path(spec.origin).parent / "ec2" / "resources" / "amis.json.gz"
    images = json.loads(gzip.decompress(defaults.read_bytes()))
    images += json.loads((FIXTURES / "canonical_amis.json").read_text())
    path = Path(tempfile.mkdtemp(prefix="mlops-box-amis-")) / "amis.json"
    path.write_text(json.dumps(images))
    return str(path)


os.environ.setdefault("MOTO_AMIS_PATH", _write_image_catalogue())
# No test may reach a real AWS account: fake credentials unless a test sets its own.
for _key, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}.items():
    os.environ[_key] = _value
os.environ.pop("AWS_PROFILE", None)
