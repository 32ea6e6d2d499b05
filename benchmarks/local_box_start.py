"""How long a local box takes from `start` to answering SSH, over a few stop/start cycles.

Run as root: sudo /tmp/venv/bin/python benchmarks/local_box_start.py [--cycles 3]
It creates a throw-away box (the shared debootstrap cache is reused), measures, then
stops and destroys it. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from remote.providers.local import LocalProvider, ssh_banner
from remote.settings import load_settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--subnet", default="10.215.0.0/16")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlops-box-bench-") as tmp:
        key = Path(tmp) / "id_ed25519"
        private = Ed25519PrivateKey.generate()
        key.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
        )
        public = private.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        key.with_name(key.name + ".pub").write_bytes(public + b"\n")
        box = {
            "name": f"mlbench-{secrets.token_hex(3)}",
            "key": str(key),
            "local": {"root": str(Path(tmp) / "boxes"), "subnet": args.subnet},
        }
        provider = LocalProvider(load_settings(box, project_dir=REPO_ROOT))
        try:
            began = time.monotonic()
            provider.create()
            print(f"create (cache reused if present): {time.monotonic() - began:.1f}s")
            starts = []
            for cycle in range(1, args.cycles + 1):
                began = time.monotonic()
                state = provider.start(timeout_s=300)
                assert state.address and ssh_banner(state.address)
                starts.append(time.monotonic() - began)
                began = time.monotonic()
                provider.stop(timeout_s=120)
                stop_s = time.monotonic() - began
                print(
                    f"cycle {cycle}: start-to-ssh-ready {starts[-1]:.2f}s at {state.address}, "
                    f"stop {stop_s:.2f}s"
                )
            print(
                f"start-to-ssh-ready over {len(starts)} cycles: median "
                f"{statistics.median(starts):.2f}s, min {min(starts):.2f}s, max {max(starts):.2f}s"
            )
        finally:
            provider.destroy()


if __name__ == "__main__":
    main()
