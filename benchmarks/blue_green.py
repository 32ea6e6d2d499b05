"""Blue-green under steady load: failed requests, switch and rollback time, router overhead.

Against a box where MLflow runs and two versions of a model are registered (for example
the local box after the main job and two `examples/taxi/train.py` runs), in one run:

  1. makes --v1 live (a blue-green deploy, if it is not live already);
  2. starts a steady load on the box (tests/box/harness/load.py: threads with keep-alive
     connections, next to the router) and measures latency in alternating windows,
     through the router and straight to the live slot;
  3. under that same load, deploys --v2 blue-green, then rolls back inside the
     termination wait;
  4. prints the failed requests across the switch and the rollback (goal 0), the switch
     time from a healthy candidate to 100% on it and the rollback time (goals under 1 s,
     as the box measured them: state, `nginx -t`, reload, an answer from the new slot
     through the router), and the router's latency over the slot's, p50 and p99 (goals
     at most 1.05 and 1.10).

Run as root:  .venv/bin/python benchmarks/blue_green.py --v1 models:/taxi-duration/1 \\
                  --v2 models:/taxi-duration/2 [--threads 2] [--window 5] [--windows 3]
The box is the one fabric.yaml / FABRIC_BOX_* select. It prints figures, asserts nothing.
"""

from __future__ import annotations

import statistics
import time

from harness import (
    BoxLoad,
    arguments,
    ensure_live,
    fab,
    figure,
    latencies,
    open_box,
    percentile,
    state,
)


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--v1", required=True, help="the model to start from")
    parser.add_argument("--v2", required=True, help="the model to switch to")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--window", type=float, default=5.0, help="seconds per latency window")
    parser.add_argument("--windows", type=int, default=3, help="router/slot window pairs")
    args = parser.parse_args()
    with open_box() as conn:
        live = ensure_live(conn, args.v1)
        slot_url = f"http://127.0.0.1:{8101 if live['slot'] == 'blue' else 8102}/invocations"
        router_url = "http://127.0.0.1:8000/invocations"
        load = BoxLoad(conn, str(time.monotonic_ns()))
        try:
            print(
                f"2. latency: {args.windows} x ({args.window:.0f}s router, "
                f"{args.window:.0f}s slot), {args.threads} threads",
                flush=True,
            )
            through: list[float] = []
            direct: list[float] = []
            for _ in range(args.windows):
                for url, into in ((router_url, through), (slot_url, direct)):
                    load.start(url, args.threads, args.window)
                    time.sleep(args.window + 0.5)
                    into += latencies(load.stop())
            print("3. switch and rollback under the same load", flush=True)
            load.start(router_url, args.threads, 600)
            time.sleep(3)
            fab("deploy.blue-green", "--model", args.v2, "--bake", "0")
            switched = state(conn)["history"][-1]
            time.sleep(3)
            fab("deploy.rollback")
            rolled = state(conn)["history"][-1]
            time.sleep(3)
            run = load.stop()
        finally:
            load.clean()
    summary = run["summary"]
    print()
    print(
        f"requests under load across switch and rollback: {summary['requests']}, "
        f"versions {summary['versions']}"
    )
    figure("failed requests (goal 0)", f"{summary['failed']}")
    print(f"re-sent after a reset at a reload (nginx<1.27.4): {summary['resent']}")
    print(
        f"switch, healthy candidate to 100% (goal <1 s): {switched['switch_ms']:.0f} ms "
        f"(revision {switched['revision']}, {switched['outcome']})"
    )
    print(
        f"rollback inside the window (goal <1 s):       {rolled['switch_ms']:.0f} ms "
        f"(revision {rolled['revision']}, {rolled['outcome']})"
    )
    for pct, goal in ((50, 1.05), (99, 1.10)):
        ratio = percentile(through, pct) / percentile(direct, pct)
        print(
            f"router/slot latency p{pct} (goal <= {goal}):      {ratio:.3f} "
            f"({percentile(through, pct) * 1000:.2f} ms / {percentile(direct, pct) * 1000:.2f} ms,"
            f" {len(through)}/{len(direct)} requests)"
        )
    print(f"mean latency through the router: {statistics.mean(through) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
