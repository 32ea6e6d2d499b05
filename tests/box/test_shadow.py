"""Shadow mode on the real local box: the mirror, its cost to live requests, the report.

One box and one MLflow install for the module. The live model is the example's (trained
here against the box's MLflow); the shadows are the same model, the example trained with
its concept-drift knob (trips take twice as long), and a test model that sleeps 2 s.
Every command goes through the real `fab` CLI; the load is a real HTTP client with
keep-alive connections running on the box next to the router. The tests run in order
and build on each other's state.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
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
)

pytestmark = pytest.mark.box

# Names of this module's own: the box tier shares one MLflow across modules.
LIVE = SAME = "models:/shd-taxi/1"
DRIFTED, SLEEPY = "models:/shd-drifted/1", "models:/shd-sleepy/1"
EXPERIMENT = "mlops-box-deployments"
MIRROR_LOG = "/var/log/nginx/mlops-mirror.log"
SHADOW_LOG = "/var/log/mlops-box/predictions/shadow.jsonl"
# Enough requests for a stable p99 (a few thousand), bounded in time.
LATENCY_LOAD_S = 12


@pytest.fixture(scope="module")
def serving(local_settings: BoxSettings, local_box: LocalProvider) -> Iterator[ServingBox]:
    box = open_box(local_settings, local_box)
    serving = ServingBox(box)
    try:
        # Starts from a box that serves nothing, and leaves one for the next module.
        serving.fab("deploy.stop")
        serving.sh(f"sudo rm -f {STATE_FILE}")
        assert train_and_register(box, "shd-taxi", model="ridge", seed=1) == "1"
        knobs = ("--speed-factor", "0.5")
        assert train_and_register(box, "shd-drifted", model="ridge", seed=1, knobs=knobs) == "1"
        register_picky(box, "shd-sleepy", most_passengers=6, like=LIVE, sleep_s=2.0)
        yield serving
    finally:
        serving.fab("deploy.stop")
        serving.sh(f"sudo rm -f {STATE_FILE}")
        box.conn.close()


def shadow(serving: ServingBox, *args: str) -> subprocess.CompletedProcess[str]:
    done = serving.fab("deploy.shadow", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gets copies of the live traffic in slot shadow" in done.stdout, done.stdout
    return done


@pytest.fixture(autouse=True)
def no_shadow_left(serving: ServingBox) -> Iterator[None]:
    """A test that fails while its shadow runs leaves none to the next test."""
    yield
    if serving.state().get("mirror"):
        serving.fab("deploy.abort")


def abort(serving: ServingBox) -> None:
    done = serving.fab("deploy.abort")
    assert done.returncode == 0, done.stdout + done.stderr
    assert serving.state()["mirror"] is None
    assert serving.sh("systemctl is-active mlops-model@shadow || true").strip() != "active"


def settled(serving: ServingBox, timeout_s: float = 30) -> None:
    """Wait until the shadow's prediction log stops growing: the last copies answered."""
    count, deadline = "", time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(1.5)
        now = serving.sh(f"sudo wc -l < {SHADOW_LOG} 2>/dev/null || echo 0").strip()
        if now == count:
            return
        count = now


def shadow_report(serving: ServingBox, out: Path) -> tuple[dict[str, Any], str]:
    done = serving.fab("deploy.shadow-report", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    folder = Path(re.search(r"^Report: (\S+)/report.html$", done.stdout, re.M)[1])  # type: ignore[index]
    assert (folder / "summary.png").read_bytes().startswith(b"\x89PNG")
    assert "<img" in (folder / "report.html").read_text()
    return json.loads((folder / "figures.json").read_text())["summary"], done.stdout


def test_without_a_live_model_or_a_shadow_each_command_is_refused_in_one_line(
    serving: ServingBox,
) -> None:
    refused = one_line_error(serving.fab("deploy.shadow", "--model", SAME))
    assert "Nothing is live to copy traffic from" in refused
    assert "Nothing to abort" in one_line_error(serving.fab("deploy.abort"))
    assert "Nothing to promote" in one_line_error(serving.fab("deploy.promote"))
    assert "No shadow has run" in one_line_error(serving.fab("deploy.shadow-report"))
    assert "--sample is 0" in one_line_error(
        serving.fab("deploy.shadow", "--model", SAME, "--sample", "0")
    )
    serving.deploy("--model", LIVE, "--bake", "1")
    unknown = one_line_error(serving.fab("deploy.shadow", "--model", "models:/no-such/1"))
    assert "cannot give models:/no-such/1" in unknown
    assert serving.state()["mirror"] is None
    # A live model and nothing else: promote and abort find neither a canary nor a shadow.
    before = serving.state()
    nothing = "no canary or shadow runs on the box"
    assert nothing in one_line_error(serving.fab("deploy.promote"))
    assert nothing in one_line_error(serving.fab("deploy.abort"))
    assert serving.state() == before


def test_a_shadow_of_the_live_model_agrees_fully_and_its_report_is_in_mlflow(
    serving: ServingBox, tmp_path: Path
) -> None:
    import mlflow

    shadow(serving, "--model", SAME)
    assert serving.state()["mirror"]["sample"] == 100
    with serving.load(threads=2, max_requests=300) as load:
        time.sleep(5)
    settled(serving)
    summary, text = shadow_report(serving, tmp_path)
    sent = load["summary"]["requests"]
    assert load["summary"]["failed"] == 0 and sent > 20
    # every live request is on the live side, copied (100%) or not
    shown = json.dumps({k: summary[k] for k in ("since", "until", "live", "shadow", "relay")})
    assert summary["live"]["requests"] == sent, shown
    # every copy the shadow answered was paired by its request id (made by the router);
    # copies beyond the relay's cap, if the shadow lagged (a busy machine), are dropped
    relay = summary["relay"]
    assert summary["paired_requests"] == relay["200"] == summary["shadow"]["requests"], shown
    assert relay["200"] + relay.get("dropped", 0) == sent and relay["200"] >= 0.8 * sent, shown
    assert summary["kind"] == "regression"
    assert summary["agreement"]["within_tolerance"] == 1.0
    assert summary["agreement"]["mean_abs_diff"] == 0.0
    sent = relay["200"]  # the paired requests, as the task and MLflow count them
    assert f"paired      {sent} requests" in text
    with serving.box.tracking():
        runs = mlflow.search_runs(experiment_names=[EXPERIMENT], output_format="list")
        assert len(runs) == 1
        run = runs[0]
        assert run.data.tags["mlops-box.model_version"] == "1"
        assert run.data.tags["mlops-box.live_model"] == "shd-taxi/1"
        assert run.data.metrics["paired_requests"] == sent
        names = {f.path for f in mlflow.MlflowClient().list_artifacts(run.info.run_id, "report")}
        assert {"report/report.html", "report/summary.png"} <= names
    # the end: mirror off first (a reload), then the slot, and no client sees either
    with serving.load(threads=2) as load:
        time.sleep(1)
        abort(serving)
        time.sleep(1)
    assert load["summary"]["failed"] == 0, load["summary"]
    assert serving.state()["history"][-1]["kind"] == "shadow-end"


def test_a_2s_shadow_adds_no_latency_to_live_requests_and_a_stopped_one_no_errors(
    serving: ServingBox,
) -> None:
    with serving.load(threads=4, duration_s=60) as alone:
        time.sleep(LATENCY_LOAD_S)
    shadow(serving, "--model", SLEEPY)
    # Side by side, at once, as many connections as alone: requests the router copies to
    # the 2 s shadow, and requests it never copies (X-Shadow), each on their own
    # keep-alive connections. A mirror that held a connection would hold the next
    # request on it for 2 s.
    with (
        serving.load(threads=2, duration_s=60, headers={"X-Shadow": "always"}) as copied,
        serving.load(threads=2, duration_s=60, headers={"X-Shadow": "never"}) as kept,
    ):
        time.sleep(LATENCY_LOAD_S)
    loads = {"alone": alone, "copied": copied, "kept": kept}
    figures = {
        name: {k: load["summary"][k] for k in ("requests", "failed", "p50_ms", "p99_ms")}
        for name, load in loads.items()
    }
    for name, summary in figures.items():
        assert summary["failed"] == 0, (name, figures)
        assert summary["requests"] > 300, figures
    # A mirror that held its connection would make the next request on it wait for the
    # shadow's 2 s answer: no copied request comes near that. How much latency a shadow
    # adds is a figure for benchmarks/shadow_latency.py (goal: p99 at most 1.2x), not a
    # timed assertion here: on a shared machine other work moves a p99 by more than that.
    assert figures["copied"]["p99_ms"] < 1000, figures
    # the shadow was slow, not idle: it answered copies, 2 s each
    assert int(serving.sh(f"sudo grep -c '\"status\":200' {MIRROR_LOG} || true")) > 0
    # A shadow that dies under load: the clients never know.
    with serving.load(threads=4, duration_s=60, headers={"X-Shadow": "always"}) as load:
        time.sleep(2)
        serving.sh(
            "sudo systemctl kill -s KILL mlops-model@shadow; sudo systemctl stop mlops-model@shadow"
        )
        time.sleep(4)
    assert load["summary"]["failed"] == 0, load["summary"]
    assert int(serving.sh(f"sudo grep -c '\"status\":502' {MIRROR_LOG} || true")) > 0
    abort(serving)


def test_a_10_percent_sample_of_a_drifted_model_disagrees_and_ends_by_itself(
    serving: ServingBox, tmp_path: Path
) -> None:
    done = shadow(serving, "--model", DRIFTED, "--sample", "10", "--duration", "25")
    assert "A timer on the box ends the shadow" in done.stdout
    with serving.load(threads=4, duration_s=60, max_requests=3000) as load:
        time.sleep(12)
    assert load["summary"]["failed"] == 0
    settled(serving)
    # Ended: the mirror is off (first), the slot stopped, then the end is in the history.
    deadline = time.monotonic() + 90
    while serving.state()["history"][-1]["kind"] != "shadow-end":
        assert time.monotonic() < deadline, "the shadow's timer did not end it"
        time.sleep(2)
    now = serving.state()
    assert now["mirror"] is None and "its --duration was over" in now["history"][-1]["reason"]
    assert serving.sh("systemctl is-active mlops-model@shadow || true").strip() != "active"
    summary, _ = shadow_report(serving, tmp_path)
    live, copies = summary["live"]["requests"], summary["shadow"]["requests"]
    assert live >= load["summary"]["requests"] > 500
    assert 0.06 <= copies / live <= 0.14, summary
    assert summary["paired_requests"] == copies, summary  # each copy found its live request
    # trained on trips twice as long: no prediction within 5% of the live model's
    assert summary["agreement"]["within_tolerance"] < 0.2, summary["agreement"]
    assert summary["agreement"]["mean_abs_diff"] > 2.0, summary["agreement"]


def test_a_restart_ends_the_shadow_and_the_live_model_answers(serving: ServingBox) -> None:
    # Its --duration timer dies with the box: the boot unit ends it, mirror off first.
    shadow(serving, "--model", SAME, "--duration", "3600")
    live = serving.live()
    assert serving.restart()[1]["X-Model-Version"] == live
    state = serving.booted()
    assert state["mirror"] is None and serving.live() == live
    ended = state["history"][-1]
    assert ended["kind"] == "shadow-end" and ended["reason"] == "the box restarted", ended
    assert ":8100 " not in serving.sh("ss -Hltn"), "the mirror relay still listens"
    assert serving.sh("systemctl is-active mlops-model@shadow || true").strip() != "active"


def test_promote_after_a_shadow_is_a_blue_green_switch_to_its_model(serving: ServingBox) -> None:
    shadow(serving, "--model", DRIFTED, "--sample", "50")
    # one rollout at a time: a canary waits for the shadow's end
    before = serving.state()
    refused = one_line_error(serving.fab("deploy.canary", "--model", DRIFTED))
    assert "A shadow of shd-drifted/1 runs" in refused, refused
    assert serving.state()["mirror"] == before["mirror"]
    assert serving.state()["live"] == before["live"]
    with serving.load(threads=2) as load:
        done = serving.fab("deploy.promote", "--bake", "2")
        assert done.returncode == 0, done.stdout + done.stderr
    assert load["summary"]["failed"] == 0, load["summary"]
    state = serving.state()
    assert serving.live() == "shd-drifted/1" and state["mirror"] is None
    assert state["live"]["slot"] in ("blue", "green")
    assert serving.sh("systemctl is-active mlops-model@shadow || true").strip() != "active"
    assert "promoted" in state["history"][-1]["reason"]
    assert champion(serving, "shd-drifted") == "1"


def test_promote_goes_live_when_the_shadows_timer_ends_it_meanwhile(serving: ServingBox) -> None:
    # The timer (8 s) fires during the promote's 20 s bake: the promote still goes live.
    shadow(serving, "--model", SAME, "--duration", "8")
    done = serving.fab("deploy.promote", "--bake", "20")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "had ended already" in done.stdout, done.stdout
    state = serving.state()
    assert serving.live() == "shd-taxi/1" and state["mirror"] is None
    ended = [e for e in state["history"] if e["kind"] == "shadow-end"][-1]
    assert "its --duration was over" in ended["reason"], ended
    assert serving.sh("systemctl is-active mlops-model@shadow || true").strip() != "active"
