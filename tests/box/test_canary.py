"""Canary on the real local box: steps, gates, automatic rollback, promote and abort.

One box and one MLflow install for the module (tests/box/harness/serving_box.py builds it as the
blue-green tests do). Models: the example trained twice (cnr-taxi 1 and 2, healthy), a
picky one that answers 400 for trips of 9 passengers, and a slow one. Every canary goes
through the real `fab` CLI and runs as a unit mlops-deploy-<revision> on the box; the load is a
real HTTP client with keep-alive connections on the box next to the router. Bakes are a
few seconds so the module stays short. Its own model names keep it apart from the other
serving tests, and its teardown leaves the box as a box that never served.
"""

from __future__ import annotations

import math
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from remote.providers.local.provider import LocalProvider
from remote.settings import BoxSettings
from tests.box.harness.serving_box import (
    STATE_FILE,
    ServingBox,
    champion,
    one_line_error,
    open_box,
    register_picky,
    train_and_register,
    trips,
    wait_for_step,
)

pytestmark = pytest.mark.box

MODEL = "cnr-taxi"
FAST = ("--bake", "3", "--min-requests", "5")


@pytest.fixture(scope="module")
def serving(local_settings: BoxSettings, local_box: LocalProvider) -> Iterator[ServingBox]:
    box = open_box(local_settings, local_box)
    serving = ServingBox(box)
    try:
        assert train_and_register(box, MODEL, model="ridge", seed=1) == "1"
        assert train_and_register(box, MODEL, model="ridge", seed=2) == "2"
        like = f"models:/{MODEL}/1"
        register_picky(box, "cnr-picky", most_passengers=6, like=like)
        register_picky(box, "cnr-slow", most_passengers=100, like=like, sleep_s=0.4)
        serving.deploy("--model", like, "--bake", "0")
        yield serving
    finally:
        # The next module finds a box that never served: nothing runs, no deploy state.
        serving.fab("deploy.stop")
        serving.sh(f"sudo rm -f {STATE_FILE}")
        box.conn.close()


def live_slot(serving: ServingBox) -> str:
    return str(serving.state()["live"]["slot"])


def other_version(serving: ServingBox) -> str:
    """The cnr-taxi version that is not live: the healthy candidate."""
    return "2" if serving.live() == f"{MODEL}/1" else "1"


def last(serving: ServingBox) -> dict[str, Any]:
    return dict(serving.state()["history"][-1])


def canary(serving: ServingBox, *args: str) -> subprocess.CompletedProcess[str]:
    return serving.fab("deploy.canary", *args)


def assert_rolled_back_to(serving: ServingBox, live: str, candidate_slot: str) -> None:
    """100% on the stable slot, the candidate stopped, nothing left in between."""
    state = serving.state()
    assert serving.live() == live and state["candidate"] is None and state["transition"] is None
    assert serving.sh(f"systemctl is-active mlops-model@{candidate_slot} || true").strip() in (
        "inactive",
        "failed",
    )
    assert serving.router(body=trips())[1]["X-Model-Version"] == live


def stable_failures(load: dict[str, Any], candidate_slot: str) -> list[dict[str, Any]]:
    """Failed requests not answered in the candidate's name: the stable side's."""
    return [r for r in load["results"] if r["status"] != 200 and r["slot"] != candidate_slot]


def test_bad_steps_and_durations_are_refused_in_one_line_changing_nothing(
    serving: ServingBox,
) -> None:
    before = serving.state()
    model = ("--model", f"models:/{MODEL}/2")
    for args, expected in [
        (("--steps", "5,3,100"), "do not grow step by step"),
        (("--steps", "5,5,100"), "do not grow step by step"),
        (("--steps", "5,50"), "end at 50%, not 100%"),
        (("--steps", "0,100"), "each step is from 1 to 100"),
        (("--steps", "5,150"), "each step is from 1 to 100"),
        (("--steps", "five,100"), "is not a list of numbers"),
        (("--bake", "10", "--max-duration", "30"), "--max-duration 30s is shorter than the bakes"),
        (("--min-requests", "0"), "--min-requests is 0"),
        (("--max-p99-ms=-1",), "--max-p99-ms is -1"),
    ]:
        assert expected in one_line_error(canary(serving, *model, *args)), args
    assert "--model is missing" in one_line_error(canary(serving))
    assert "Nothing to promote" in one_line_error(serving.fab("deploy.promote"))
    assert "Nothing to abort" in one_line_error(serving.fab("deploy.abort"))
    assert serving.state() == before


def test_a_healthy_canary_walks_every_step_with_its_share_and_goes_live(
    serving: ServingBox,
) -> None:
    stable, version = serving.live(), other_version(serving)
    candidate_slot = "green" if live_slot(serving) == "blue" else "blue"
    with serving.load(threads=4) as load:
        done = canary(
            serving,
            "--model",
            f"models:/{MODEL}/{version}",
            "--steps",
            "5,25,50,100",
            "--bake",
            "4",
            "--min-requests",
            "5",
        )
        assert done.returncode == 0, done.stdout + done.stderr
    assert "is live in slot" in done.stdout
    assert serving.live() == f"{MODEL}/{version}" and champion(serving, MODEL) == version
    entry = last(serving)
    assert entry["kind"] == "canary" and entry["outcome"] == "live"
    assert [(s["weight"], s["verdict"]) for s in entry["steps"]] == [
        (5, "pass"),
        (25, "pass"),
        (50, "pass"),
        (100, "pass"),
    ]
    assert load["summary"]["failed"] == 0, load["summary"]["first_failures"]
    # The client's own view: in each step's time, the candidate's share of the answers.
    for step in entry["steps"]:
        inside = [
            r
            for r in load["results"]
            if step["started"] <= load["t0_wall"] + r["start"] <= step["ended"]
        ]
        weight = step["weight"] / 100
        share = sum(r["slot"] == candidate_slot for r in inside) / len(inside)
        tolerance = 3 * math.sqrt(weight * (1 - weight) / len(inside)) + 0.03
        assert abs(share - weight) <= tolerance, (step, share, len(inside))
        assert step["requests"] >= 5 and step["errors"] == 0
    assert {r["version"] for r in load["results"]} == {stable, f"{MODEL}/{version}"}
    assert f"{MODEL}/{version}" in serving.fab("deploy.history").stdout


def test_a_broken_candidate_rolls_back_by_itself(serving: ServingBox) -> None:
    # Nine passengers: the live model predicts them, the picky candidate answers 400.
    live, best = serving.live(), champion(serving, MODEL)
    candidate_slot = "green" if live_slot(serving) == "blue" else "blue"
    with serving.load(trips(passengers=9), threads=4) as load:
        error = one_line_error(canary(serving, "--model", "models:/cnr-picky/1", *FAST))
    assert "was rolled back: step 1 at 5%" in error and "error rate above 1.0%" in error
    entry = last(serving)
    assert entry["outcome"] == "rolled back" and entry["steps"][0]["errors"] > 0
    assert_rolled_back_to(serving, live, candidate_slot)
    assert champion(serving, MODEL) == best
    assert stable_failures(load, candidate_slot) == []
    failed = [r for r in load["results"] if r["status"] != 200]
    assert failed and {r["version"] for r in failed} == {"cnr-picky/1"}


def test_a_slow_candidate_fails_the_latency_gate(serving: ServingBox) -> None:
    live = serving.live()
    candidate_slot = "green" if live_slot(serving) == "blue" else "blue"
    with serving.load(threads=4) as load:
        error = one_line_error(
            canary(serving, "--model", "models:/cnr-slow/1", *FAST, "--max-p99-ms", "200")
        )
    assert "was rolled back" in error and "above 200 ms" in error
    assert last(serving)["steps"][0]["p99_ms"] > 200
    assert_rolled_back_to(serving, live, candidate_slot)
    assert load["summary"]["failed"] == 0, load["summary"]["first_failures"]


def canary_args(version: str, steps: str, *args: str) -> tuple[str, ...]:
    return ("deploy.canary", "--model", f"models:/{MODEL}/{version}", "--steps", steps, *args)


def test_a_candidate_killed_mid_bake_rolls_back(serving: ServingBox) -> None:
    live, version = serving.live(), other_version(serving)
    candidate_slot = "green" if live_slot(serving) == "blue" else "blue"
    command = canary_args(version, "25,100", "--bake", "30", "--min-requests", "5")
    with serving.load(threads=4) as load, serving.fab_running(*command) as running:
        wait_for_step(serving, "Step 1/2 at 25%", command=running)
        time.sleep(1)
        # The model server crashes (its main process killed; systemd restarts it).
        serving.sh(
            f"sudo kill -KILL $(systemctl show -p MainPID --value mlops-model@{candidate_slot})"
        )
        out, err = running.communicate(timeout=300)
    assert running.returncode == 1, out + err
    entry = last(serving)
    assert entry["outcome"] == "rolled back", entry
    assert any(
        why in entry["reason"] for why in ("stopped", "crashed", "could not get an answer")
    ), entry["reason"]
    assert_rolled_back_to(serving, live, candidate_slot)
    assert stable_failures(load, candidate_slot) == []


def test_a_hung_candidate_fails_on_its_pings_and_rolls_back(serving: ServingBox) -> None:
    # Its unit stays active and systemd sees nothing: only the canary's /ping misses can.
    live, version = serving.live(), other_version(serving)
    candidate_slot = "green" if live_slot(serving) == "blue" else "blue"
    command = canary_args(version, "25,100", "--bake", "60", "--min-requests", "1000")
    with serving.fab_running(*command) as running:
        wait_for_step(serving, "Step 1/2 at 25%", command=running)
        main_pid = f"$(systemctl show -p MainPID --value mlops-model@{candidate_slot})"
        serving.sh(f"sudo kill -STOP {main_pid}")
        try:
            out, err = running.communicate(timeout=120)
        finally:
            serving.sh(f"sudo kill -CONT {main_pid} || true")
    assert running.returncode == 1, out + err
    entry = last(serving)
    assert entry["outcome"] == "rolled back", entry
    assert "did not answer /ping 2 times in a row" in entry["reason"], entry["reason"]
    assert_rolled_back_to(serving, live, candidate_slot)


def test_a_rollback_nginx_refuses_keeps_the_candidate_serving_until_the_timer_takes_it_back(
    serving: ServingBox,
) -> None:
    # Another site breaks nginx's config mid-canary, so the rollback's reload is refused.
    # Stopping the candidate then would fail every request the router still sends it: it
    # keeps its share and keeps answering, the canary ends as failed and says so, and the
    # take-back timer finishes the rollback once nginx loads again.
    live, version = serving.live(), other_version(serving)
    candidate_slot = "green" if live_slot(serving) == "blue" else "blue"
    command = canary_args(version, "50,100", "--bake", "300", "--min-requests", "5")
    broken = "/etc/nginx/conf.d/zz-broken-by-a-test.conf"
    with serving.load(threads=2) as load:
        try:
            with serving.fab_running(*command) as running:
                wait_for_step(serving, "Step 1/2 at 50%", command=running)
                serving.sh(f"echo 'this is not nginx;' | sudo tee {broken} >/dev/null")
                serving.fab("deploy.abort")
                out, err = running.communicate(timeout=180)
            assert running.returncode == 1, out + err
            entry = last(serving)
            assert entry["outcome"] == "failed", entry
            assert "nginx would not load the router without the candidate" in entry["reason"]
            assert f"{candidate_slot} keeps its 50% and keeps running" in entry["reason"]
            assert "retries every 30s" in entry["reason"], entry["reason"]
            state = serving.state()
            assert state["candidate"]["slot"] == candidate_slot, state["candidate"]
            assert state["candidate"]["weight"] == 50 and state["transition"] is None
            answered = serving.sh(
                "curl -s -o /dev/null -D - -H 'X-Canary: always' http://127.0.0.1:8000/ping"
            )
            assert f"x-model-slot: {candidate_slot}" in answered.lower(), answered
        finally:
            serving.sh(f"sudo rm -f {broken}")
        deadline = time.monotonic() + 90
        while last(serving).get("by") != "the take-back timer":
            assert time.monotonic() < deadline, last(serving)
            time.sleep(2)
    assert last(serving)["outcome"] == "aborted", last(serving)
    assert_rolled_back_to(serving, live, candidate_slot)
    assert load["summary"]["failed"] == 0, load["summary"]["first_failures"]


def test_no_traffic_is_never_a_pass_and_aborts_at_the_max_duration(serving: ServingBox) -> None:
    live = serving.live()
    candidate_slot = "green" if live_slot(serving) == "blue" else "blue"
    started = time.monotonic()
    command = canary_args(
        other_version(serving), "50,100", "--bake", "2", "--min-requests", "1000",
        "--max-duration", "12",
    )  # fmt: skip
    with serving.fab_running(*command) as running:
        wait_for_step(serving, "Step 1/2 at 50%", command=running)
        # A tester forces either side with a header, whatever the weight.
        for side, slot in (("always", candidate_slot), ("never", live_slot(serving))):
            answered = serving.sh(
                "for i in 1 2 3 4 5 6; do curl -s -o /dev/null -D - "
                f"-H 'X-Canary: {side}' http://127.0.0.1:8000/ping | grep -i '^x-model-slot'; done"
            )
            assert answered.lower().split().count(slot) == 6, answered
        status = serving.fab("deploy.status")
        assert "canary    step 1/2 at 50%" in status.stdout, status.stdout
        assert "to --max-duration" in status.stdout
        out, err = running.communicate(timeout=300)
    assert running.returncode == 1, out + err
    assert time.monotonic() - started >= 12
    entry = last(serving)
    assert entry["outcome"] == "rolled back"
    assert "--max-duration reached" in entry["reason"] and "fewer than the 1000" in entry["reason"]
    assert [s["verdict"] for s in entry["steps"]] == ["fail"]
    assert_rolled_back_to(serving, live, candidate_slot)


def test_ssh_killed_mid_canary_the_box_finishes_it(serving: ServingBox) -> None:
    version = other_version(serving)
    with serving.load(threads=2):
        with serving.fab_running(*canary_args(version, "20,100", *FAST)) as running:
            revision = wait_for_step(serving, "Step 1/2 at 20%", command=running)["revision"]
            running.send_signal(signal.SIGKILL)  # the laptop is gone, and its SSH connection
            running.wait(timeout=30)
        watch = serving.fab("deploy.status", "--watch")
    assert watch.returncode == 0, watch.stderr
    assert f"Revision {revision} (canary of models:/{MODEL}/{version}) is live" in watch.stdout
    assert serving.live() == f"{MODEL}/{version}" and champion(serving, MODEL) == version


def ask_mid_step(
    serving: ServingBox, command: tuple[str, ...], step: str, action: str
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """Run `command` in the background, and `fab <action>` once it is at `step`: both
    results."""
    with serving.fab_running(*command) as running:
        wait_for_step(serving, step, command=running)
        asked = serving.fab(action)
        out, err = running.communicate(timeout=120)
    return asked, subprocess.CompletedProcess(running.args, running.returncode, out, err)


def test_abort_then_the_same_command_again_and_promote(serving: ServingBox) -> None:
    live, version = serving.live(), other_version(serving)
    candidate_slot = "green" if live_slot(serving) == "blue" else "blue"
    command = canary_args(version, "10,100", "--bake", "60", "--min-requests", "5")
    with serving.load(threads=2) as load:
        aborted, first = ask_mid_step(serving, command, "Step 1/2 at 10%", "deploy.abort")
        assert aborted.returncode == 0, aborted.stderr
        assert "was aborted" in aborted.stdout and first.returncode == 1, first.stderr
        assert last(serving)["outcome"] == "aborted"
        assert_rolled_back_to(serving, live, candidate_slot)
        # An aborted canary runs again with the same command.
        promoted, again = ask_mid_step(serving, command, "Step 1/2 at 10%", "deploy.promote")
    assert promoted.returncode == 0, promoted.stderr
    assert "is live in slot" in promoted.stdout and again.returncode == 0, again.stderr
    assert serving.live() == f"{MODEL}/{version}" and champion(serving, MODEL) == version
    assert load["summary"]["failed"] == 0, load["summary"]["first_failures"]


def test_a_restart_mid_canary_gives_all_traffic_back_to_the_live_slot(serving: ServingBox) -> None:
    # The canary's loop dies with the box; the router's config on disk still gives the
    # candidate its share, until the boot unit puts 100% back on the live slot.
    live, version = serving.live(), other_version(serving)
    candidate_slot = "green" if live_slot(serving) == "blue" else "blue"
    command = canary_args(version, "50,100", "--bake", "300", "--min-requests", "5")
    with serving.fab_running(*command) as running:
        revision = wait_for_step(serving, "Step 1/2 at 50%", command=running)["revision"]
        serving.restart()
    state = serving.booted()
    interrupted = state["history"][-1]
    assert interrupted["revision"] == revision and interrupted["outcome"] == "interrupted"
    assert_rolled_back_to(serving, live, candidate_slot)
    slots = {serving.router(body=trips())[1]["X-Model-Slot"] for _ in range(20)}
    assert slots == {live_slot(serving)}
