"""How long `fab box.start` takes on the local box, and how much of it is ours.

For each stop/start cycle it prints:
  provider   LocalProvider.start: namespace, veth, NAT, boot, until sshd's banner
  entry      writing the ssh entry and the Include line
  ssh-ready  the first pinned SSH login running `true`
  overhead   everything box.start spends beyond the provider's own waits
and, side by side, the wall time of the real `fab box.start` CLI on a running box (a
no-op start: interpreter, imports, settings, state, entry check, one SSH login).

Run as root:  .venv/bin/python benchmarks/local_box_start.py [--cycles 3]
It makes a throw-away box (reusing the debootstrap cache), then destroys it. It prints
figures and asserts nothing.
"""

from __future__ import annotations

import os
import secrets
import statistics
import subprocess
import tempfile
import time

from harness import FAB, REPO_ROOT, arguments

from remote.providers.local.provider import LocalProvider
from remote.settings import load_settings
from remote.ssh import config_entry as ssh
from remote.ssh import keys
from remote.ssh.first_contact import wait_and_pin


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    began = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - began


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--subnet", default="10.215.0.0/16")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlops-box-bench-") as tmp:
        box = {
            "provider": "local",
            "name": f"mlbench-{secrets.token_hex(3)}",
            "key": f"{tmp}/key",
            "ssh_dir": f"{tmp}/ssh",
            "local": {"root": f"{tmp}/boxes", "subnet": args.subnet},
        }
        settings = load_settings(box, project_dir=REPO_ROOT)
        keys.keygen(settings)
        provider = LocalProvider(settings)
        env = {
            **os.environ,
            "FABRIC_BOX_PROVIDER": "local",
            "FABRIC_BOX_NAME": box["name"],
            "FABRIC_BOX_KEY": box["key"],
            "FABRIC_BOX_SSH_DIR": box["ssh_dir"],
            "FABRIC_BOX_LOCAL_ROOT": box["local"]["root"],
            "FABRIC_BOX_LOCAL_SUBNET": args.subnet,
        }
        rows: dict[str, list[float]] = {
            k: [] for k in ("provider", "entry", "ssh-ready", "overhead", "fab-cli-noop")
        }
        try:
            _, created = timed(provider.create)
            print(f"create (debootstrap cache reused when present): {created:.1f}s")
            for cycle in range(1, args.cycles + 1):
                provider.stop(timeout_s=60)
                state, t_provider = timed(provider.start, timeout_s=300)
                assert state.address is not None
                _, t_entry = timed(ssh.update, settings, state.address)
                _, t_ssh = timed(wait_and_pin, settings, provider, state.address, 60)
                rows["provider"].append(t_provider)
                rows["entry"].append(t_entry)
                rows["ssh-ready"].append(t_ssh)
                rows["overhead"].append(t_entry + t_ssh)
                _, t_cli = timed(
                    subprocess.run,
                    [*FAB, "box.start"],
                    env=env,
                    check=True,
                    capture_output=True,
                    stdin=subprocess.DEVNULL,
                )
                rows["fab-cli-noop"].append(t_cli)
                print(
                    f"cycle {cycle}: provider {t_provider:.2f}s, entry {t_entry * 1000:.1f}ms, "
                    f"ssh-ready {t_ssh:.2f}s, fab box.start on a running box {t_cli:.2f}s"
                )
        finally:
            provider.destroy()
        print("\nmedian over", args.cycles, "cycles:")
        for name, values in rows.items():
            print(f"  {name:<13} {statistics.median(values):7.3f}s")
        total = statistics.median(rows["provider"]) + statistics.median(rows["overhead"])
        share = statistics.median(rows["overhead"]) / total
        print(f"  start-to-ssh-ready {total:.2f}s, of which box.start's own overhead {share:.0%}")


if __name__ == "__main__":
    main()
