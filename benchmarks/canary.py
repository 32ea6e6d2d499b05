"""Canary with a broken candidate: time from start to verdict, and failed live requests.

Against a box where MLflow runs, with a healthy model and a broken one registered (for
example the local box after the serving tests: models:/taxi-duration/1, and
models:/taxi-picky/1, which answers 400 for trips of 9 passengers), in one run:

  1. makes --live live (a blue-green deploy, if it is not live already);
  2. starts a steady load of 9-passenger trips on the box (tests/box/harness/load.py: threads
     with keep-alive connections, next to the router);
  3. under that load, runs `fab deploy.canary --model <broken> --steps 5,100`, which
     must roll back by itself at 5%;
  4. prints the time from the command's start to the verdict, from the candidate's first
     share of traffic to the verdict (as the box recorded the step), the candidate's own
     failed requests (the measured cost, bounded by its 5% and the time to judge) and the
     failed requests on the live side (goal 0).

Run as root:  .venv/bin/python benchmarks/canary.py --live models:/taxi-duration/1 \\
                  --broken models:/taxi-picky/1 [--threads 4] [--min-requests 5]
The box is the one fabric.yaml / FABRIC_BOX_* select. It prints figures, asserts nothing.
"""

from __future__ import annotations

import time

from harness import BoxLoad, arguments, ensure_live, figure, open_box, run_fab, state, trips


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--live", required=True, help="a healthy model, live during the run")
    parser.add_argument("--broken", required=True, help="a model that answers 400 to the load")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--min-requests", type=int, default=5)
    parser.add_argument("--bake", type=float, default=30.0, help="the 5% step's bake")
    args = parser.parse_args()
    with open_box() as conn:
        live = ensure_live(conn, args.live)
        candidate_slot = "green" if live["slot"] == "blue" else "blue"
        load = BoxLoad(conn, str(time.monotonic_ns()), trips(passengers=9))
        try:
            print(f"2. steady load: {args.threads} threads, 9-passenger trips", flush=True)
            load.start("http://127.0.0.1:8000/invocations", args.threads, 900)
            time.sleep(3)
            print(f"3. canary of {args.broken} at 5%", flush=True)
            started = time.monotonic()
            done = run_fab(
                "deploy.canary",
                "--model",
                args.broken,
                "--steps",
                "5,100",
                "--bake",
                str(args.bake),
                "--min-requests",
                str(args.min_requests),
            )
            command_s = time.monotonic() - started
            entry = state(conn)["history"][-1]
            time.sleep(2)
            run = load.stop()
        finally:
            load.clean()
    step = (entry.get("steps") or [{}])[0]
    failed = [r for r in run["results"] if r["status"] != 200]
    on_live = [r for r in failed if r["slot"] != candidate_slot]
    print()
    print(f"outcome: {entry['outcome']} ({entry['reason']}); fab exit {done.returncode}")
    print(f"start to verdict, the whole command (fetch, warm-up, 5%): {command_s:.1f} s")
    if step:
        print(
            f"first 5% of traffic to verdict (the box's step):       "
            f"{step['ended'] - step['started']:.1f} s "
            f"({step['requests']} candidate requests, {step['errors']} errors, "
            f"share {step['share']:.1%} of {step['total']})"
        )
    summary = run["summary"]
    print(f"requests under load: {summary['requests']}, versions {summary['versions']}")
    figure("failed requests of the candidate (its measured cost)", f"{len(failed) - len(on_live)}")
    figure("failed live requests (goal 0)", f"{len(on_live)}")
    figure("re-sent after a reset at a reload (nginx<1.27.4)", f"{summary['resent']}")


if __name__ == "__main__":
    main()
