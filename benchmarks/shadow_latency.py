"""Shadow mode's cost to live requests: live p50/p99 without a shadow, with a fast one,
with one that takes 2 s, in one run (goal: at most 1.2x the p99 without a shadow).

Against a box where a model is live and the shadows are registered (for example the
local box after the main job, an `examples/taxi/train.py` run deployed with
`fab deploy.blue-green`, and tests/box/harness/models/picky_model.py logged with
`model_config={"most_passengers": 6, "sleep_s": 2.0}`, as tests/box/test_shadow.py
does), in one run:

  1. measures the live latency under a steady load on the box (tests/box/harness/load.py:
     threads with keep-alive connections, next to the router) with no shadow;
  2. starts `--fast` as a shadow of every request (`--sample 100`), measures again, ends it;
  3. the same with `--slow`;
  4. prints p50 and p99 of each phase, the p99 ratios to phase 1, and how the copies to
     the slow shadow ended (answered, timed out, dropped at the relay's cap).

Run as root:  .venv/bin/python benchmarks/shadow_latency.py --fast models:/taxi-duration/1 \\
                  --slow models:/taxi-sleepy/1 [--threads 4] [--seconds 20]
The box is the one fabric.yaml / FABRIC_BOX_* select. It prints figures, asserts nothing.
"""

from __future__ import annotations

import json
import time
from typing import Any

from harness import BoxLoad, arguments, fab, latencies, open_box, percentile, state

ROUTER_URL = "http://127.0.0.1:8000/invocations"
MIRROR_LOG = "/var/log/nginx/mlops-mirror.log"


def measure(load: BoxLoad, threads: int, seconds: float) -> list[float]:
    load.start(ROUTER_URL, threads, seconds)
    time.sleep(seconds + 0.5)
    result = load.stop()
    failed = result["summary"]["failed"]
    if failed:
        print(f"   {failed} failed requests: {result['summary']['first_failures']}")
    return latencies(result)


def relay_outcomes(conn: Any, since: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    text = conn.run(f"sudo cat {MIRROR_LOG} 2>/dev/null || true", hide=True).stdout
    for line in text.splitlines():
        item = json.loads(line)
        if item["time"][:19] >= since[:19]:
            key = "dropped" if item.get("uri") != "/__mlops/shadow" else str(item["status"])
            counts[key] = counts.get(key, 0) + 1
    return counts


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--fast", required=True, help="a shadow as fast as the live model")
    parser.add_argument("--slow", required=True, help="a shadow that takes 2 s")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0, help="load per phase")
    args = parser.parse_args()
    phases: dict[str, list[float]] = {}
    with open_box() as conn:
        current = state(conn)
        if not current.get("live"):
            raise SystemExit("Nothing is live: deploy a model with `fab deploy.blue-green` first.")
        if current.get("mirror"):
            fab("deploy.abort")
        load = BoxLoad(conn, str(time.monotonic_ns()))
        try:
            print(f"1. no shadow: {args.seconds:.0f}s, {args.threads} threads", flush=True)
            phases["no shadow"] = measure(load, args.threads, args.seconds)
            for name, uri in (("fast shadow", args.fast), ("2 s shadow", args.slow)):
                print(f"{len(phases) + 1}. {name} ({uri}, every request copied)", flush=True)
                fab("deploy.shadow", "--model", uri, "--sample", "100")
                since = conn.run("date -u +%Y-%m-%dT%H:%M:%S", hide=True).stdout.strip()
                phases[name] = measure(load, args.threads, args.seconds)
                copies = relay_outcomes(conn, since)
                fab("deploy.abort")
        finally:
            load.clean()
    print()
    base = percentile(phases["no shadow"], 99)
    for name, values in phases.items():
        p50, p99 = percentile(values, 50) * 1000, percentile(values, 99) * 1000
        print(
            f"{name:<12} {len(values):>6} requests  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  "
            f"p99 ratio {percentile(values, 99) / base:.3f} (goal <= 1.2)"
        )
    print(f"copies to the 2 s shadow, by how they ended: {copies}")


if __name__ == "__main__":
    main()
