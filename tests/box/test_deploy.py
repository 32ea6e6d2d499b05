"""Serving on the real local box: model slots behind nginx, blue-green, rollback, faults.

One box and one MLflow install for the module. Models come from the example project
trained on this machine against the box's MLflow (through a tunnel), plus picky test
models that fail on purpose. Every deploy goes through the real `fab` CLI; the load is a
real HTTP client with keep-alive connections running on the box next to the router.
The tests run in order and build on each other's state, as a user's session does.
"""

from __future__ import annotations

import datetime
import re
import signal
import time
from collections.abc import Iterator

import pytest

from remote.agent.idle import commands as idle_cmds
from remote.box.autostop import check_args
from remote.locks import default_mlflow_version
from remote.providers.local.provider import LocalProvider
from remote.settings import BoxSettings
from remote.system.agent import run_agent
from remote.system.nginx import NginxError, ensure_site
from tests.box.harness.mlflow_box import free_port
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

V1, V2 = "taxi-duration/1", "taxi-duration/2"


@pytest.fixture(scope="module")
def serving(local_settings: BoxSettings, local_box: LocalProvider) -> Iterator[ServingBox]:
    import mlflow

    box = open_box(local_settings, local_box)
    assert train_and_register(box, "taxi-duration", model="ridge", seed=1) == "1"
    assert train_and_register(box, "taxi-duration", model="rf", seed=2) == "2"
    with box.tracking():
        mlflow.MlflowClient().set_registered_model_alias("taxi-duration", "challenger", "2")
    like = "models:/taxi-duration/1"
    register_picky(box, "taxi-broken", most_passengers=0, like=like)
    register_picky(box, "taxi-picky", most_passengers=6, like=like)
    register_picky(
        box, "taxi-no-env", most_passengers=6, like=like, extra=("mlops-box-no-such-package==1.0",)
    )
    serving = ServingBox(box)
    try:
        yield serving
    finally:
        # The box is the session's: the next module finds nothing served, no deploy state.
        serving.fab("deploy.stop")
        serving.sh(f"sudo rm -f {STATE_FILE}")
        box.conn.close()


def public_listeners(serving: ServingBox) -> list[str]:
    """Listening sockets on anything but loopback, sshd's port 22 aside."""
    found = []
    for line in serving.sh("ss -Hltn").splitlines():
        local = line.split()[3]
        host, port = local.rsplit(":", 1)
        if port != "22" and host not in ("127.0.0.1", "[::1]"):
            found.append(local)
    return found


def test_bad_input_is_refused_in_one_line_and_changes_nothing(serving: ServingBox) -> None:
    for args, expected in [
        ((), "--model is missing"),
        (("--model", "taxi-duration"), "is not a model URI"),
        (("--model", "models:/taxi-duration/1", "--bake=-5"), "--bake is -5"),
        (("--model", "models:/taxi-duration/1", "--max-error-rate", "2"), "--max-error-rate"),
    ]:
        assert expected in one_line_error(serving.fab("deploy.blue-green", *args))
    assert "Nothing to roll back to" in one_line_error(serving.fab("deploy.rollback"))
    unknown = one_line_error(serving.fab("deploy.blue-green", "--model", "models:/no-such/1"))
    assert "cannot give models:/no-such/1" in unknown
    assert serving.state()["history"][-1]["outcome"] == "refused"
    assert serving.state()["live"] is None
    assert "127.0.0.1:8000" not in serving.sh("ss -Hltn")
    assert public_listeners(serving) == []


def test_a_first_deploy_serves_through_the_router_with_headers_and_a_log(
    serving: ServingBox,
) -> None:
    done = serving.deploy("--model", "models:/taxi-duration/1", "--bake", "2")
    assert "is live in slot blue" in done.stdout
    assert "Warm-up: it answered its own input example (200)" in done.stdout
    status, headers, body = serving.router(body=trips())
    assert status == 200 and '"predictions"' in body
    assert headers["X-Model-Slot"] == "blue" and headers["X-Model-Version"] == V1
    assert re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-ID"])
    # A client's request id goes through to the slot's prediction log with the inputs.
    out = serving.sh(
        "curl -s -H 'X-Request-ID: test-id-1' -H 'Content-Type: application/json' "
        f"--data-binary '{trips().decode()}' -o /dev/null -D - http://127.0.0.1:8000/invocations"
    )
    assert "X-Request-ID: test-id-1" in out
    logged = serving.sh("sudo grep -h '\"test-id-1\"' /var/log/mlops-box/predictions/blue.jsonl")
    line = __import__("json").loads(logged)
    assert line["slot"] == "blue" and line["model"] == "taxi-duration" and line["version"] == "1"
    assert line["status"] == 200 and len(line["outputs"]) == 2
    assert line["inputs"][0]["pickup_zone"] == "Midtown" and line["latency_ms"] > 0
    # MLflow's own protocol: a bad request is its 400, with the slot and version on it.
    status, headers, body = serving.router(body=b'{"nonsense": 1}')
    assert status == 400 and "dataframe_split" in body
    assert headers["X-Model-Version"] == V1
    assert serving.router("/version")[2].strip() == default_mlflow_version()
    assert champion(serving, "taxi-duration") == "1"
    assert public_listeners(serving) == []
    assert "127.0.0.1:8000" in serving.sh("ss -Hltn")
    # A model's code cannot use MLflow (the registry, `champion`): its user is refused,
    # others are not; the rule is there once, however often a slot started.
    mlflow = "curl -sS -m 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:5000/health"
    assert serving.sh(mlflow).strip() == "200"
    as_slot = serving.box.conn.run(f"sudo -u mlops-model {mlflow}", hide=True, warn=True)
    assert as_slot.exited == 7, as_slot.stderr  # curl's "failed to connect": refused
    rules = serving.sh("sudo iptables -S OUTPUT")
    assert rules.count("--uid-owner") == 1 and "--dport 5000" in rules, rules


def test_switch_rollback_and_switch_under_load_fail_no_request(serving: ServingBox) -> None:
    with serving.load(threads=4) as load:
        done = serving.deploy("--model", "models:/taxi-duration@challenger", "--bake", "3")
        assert "is live in slot green" in done.stdout
        assert champion(serving, "taxi-duration") == "2"
        rolled = serving.fab("deploy.rollback")
        assert rolled.returncode == 0, rolled.stderr
        assert "still warm: switching back in one reload" in rolled.stdout
        assert serving.live() == V1 and champion(serving, "taxi-duration") == "1"
        serving.deploy("--model", "models:/taxi-duration/2", "--bake", "3")
        time.sleep(2)
    summary = load["summary"]
    assert summary["failed"] == 0, summary["first_failures"]
    assert set(summary["versions"]) == {V1, V2}, summary["versions"]
    assert summary["requests"] > 200
    # Every answer names its slot; the first came from v1, the last from v2. (Around a
    # switch, requests already in flight on the old slot still finish there.)
    assert {r["slot"] for r in load["results"]} == {"blue", "green"}
    order = [r["version"] for r in sorted(load["results"], key=lambda r: r["end"])]
    assert order[0] == V1 and order[-1] == V2
    assert serving.live() == V2 and champion(serving, "taxi-duration") == "2"


def test_requests_through_the_router_keep_the_box_from_idling(serving: ServingBox) -> None:
    """The idle auto-stop watches the router's access log: a prediction through the real
    router makes its check (a dry run, which changes nothing) see the box as in use."""
    set_it = serving.fab("box.autostop", "--idle-minutes", "30")
    assert set_it.returncode == 0, set_it.stdout + set_it.stderr
    try:
        assert serving.router(body=trips())[0] == 200
        at = datetime.datetime.now(datetime.UTC).isoformat()
        check = run_agent(serving.box.conn, idle_cmds.CHECK, *check_args(), "--dry-run", "--at", at)
        assert any(b.startswith("requests to the router") for b in check["busy"]), check
    finally:
        off = serving.fab("box.autostop", "--off")
        assert off.returncode == 0, off.stdout + off.stderr


def test_nginx_answers_with_the_slot_when_the_slot_is_down(serving: ServingBox) -> None:
    slot, version = serving.state()["live"]["slot"], serving.live()
    serving.sh(f"sudo systemctl stop mlops-model@{slot}")
    try:
        status, headers, _ = serving.router(body=trips())
        assert status == 502
        assert headers["X-Model-Slot"] == slot and headers["X-Model-Version"] == version
    finally:
        serving.sh(f"sudo systemctl start mlops-model@{slot}")
    deadline = time.monotonic() + 120
    while serving.router("/ping")[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(1)


def test_a_model_that_fails_its_warm_up_never_gets_traffic(serving: ServingBox) -> None:
    before, live = serving.state(), serving.live()
    idle = "green" if before["live"]["slot"] == "blue" else "blue"
    with serving.load(threads=2) as load:
        error = one_line_error(serving.fab("deploy.blue-green", "--model", "models:/taxi-broken/1"))
    assert "refused and never got traffic" in error
    assert "taxi-broken/1 answered 400 to its own input example" in error
    assert load["summary"]["failed"] == 0 and set(load["summary"]["versions"]) == {live}
    assert serving.live() == live and serving.state()["previous"] == before["previous"]
    assert "taxi-broken" not in serving.sh("cat /var/log/nginx/mlops-router.log")
    assert serving.sh(f"systemctl is-active mlops-model@{idle} || true").strip() == "inactive"


def test_an_environment_that_cannot_be_built_leaves_the_live_slot_serving(
    serving: ServingBox,
) -> None:
    live = serving.live()
    error = one_line_error(serving.fab("deploy.blue-green", "--model", "models:/taxi-no-env/1"))
    assert "mlops-box-no-such-package" in error
    assert serving.live() == live and serving.router(body=trips())[0] == 200
    assert serving.state()["history"][-1]["outcome"] == "refused"
    assert serving.state()["transition"] is None


def test_a_failing_bake_rolls_back_automatically(serving: ServingBox) -> None:
    # Nine passengers: the live model predicts them, the picky candidate answers 400.
    live, best = serving.live(), champion(serving, "taxi-duration")
    with serving.load(trips(passengers=9), threads=3) as load:
        error = one_line_error(
            serving.fab("deploy.blue-green", "--model", "models:/taxi-picky/1", "--bake", "20")
        )
    assert "was rolled back" in error and "errors" in error
    assert serving.live() == live and champion(serving, "taxi-duration") == best
    entry = serving.state()["history"][-1]
    assert entry["outcome"] == "rolled back"
    failed = [r for r in load["results"] if r["status"] != 200]
    # The measured cost of a bad candidate: only its own answers, only during its bake.
    assert failed and {r["version"] for r in failed} == {"taxi-picky/1"}
    assert load["results"][-1]["version"] == live


def test_a_config_nginx_refuses_keeps_the_old_one_serving(serving: ServingBox) -> None:
    serving.sh("echo 'this is not nginx;' | sudo tee /etc/nginx/conf.d/zz-broken.conf")
    try:
        error = one_line_error(
            serving.fab("deploy.blue-green", "--model", "models:/taxi-duration/1")
        )
        assert "nginx refused the config" in error and "zz-broken.conf" in error
        assert serving.live() == V2
        assert serving.router(body=trips())[1]["X-Model-Version"] == V2
    finally:
        serving.sh("sudo rm -f /etc/nginx/conf.d/zz-broken.conf")


def test_a_port_taken_by_another_process_keeps_the_old_config(serving: ServingBox) -> None:
    # `nginx -t` does not bind ports: only the reload finds the port taken.
    port, pid_file = 8099, "/tmp/port-holder.pid"
    serving.sh(
        f"setsid sh -c 'echo $$ > {pid_file}; exec python3 -m http.server {port} "
        f"--bind 127.0.0.1' > /dev/null 2>&1 < /dev/null & sleep 1"
    )
    try:
        site = f"server {{ listen 127.0.0.1:{port}; return 204; }}\n"
        with pytest.raises(NginxError, match=r"bind\(\) to 127.0.0.1:8099 failed"):
            ensure_site(serving.box.conn, "test-port-taken", site)
        assert serving.sh("ls /etc/nginx/conf.d/").split() == ["mlops-router.conf"]
        assert serving.router(body=trips())[1]["X-Model-Version"] == V2
    finally:
        serving.sh(f"kill $(cat {pid_file}) && rm -f {pid_file}")


def test_a_second_deploy_while_one_runs_is_refused_naming_it(serving: ServingBox) -> None:
    first = serving.fab_in_background(
        "deploy.blue-green", "--model", "models:/taxi-duration/1", "--bake", "15"
    )
    try:
        running = wait_for_step(serving, "Baking")
        second = one_line_error(
            serving.fab("deploy.blue-green", "--model", "models:/taxi-duration/2")
        )
        assert second.startswith("Refused: a blue-green of models:/taxi-duration/1")
        assert f"revision {running['revision']}" in second
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, out + err
    assert serving.live() == V1


def test_ssh_killed_mid_deploy_the_box_finishes_and_status_says_so(serving: ServingBox) -> None:
    deploy = serving.fab_in_background(
        "deploy.blue-green", "--model", "models:/taxi-duration/2", "--bake", "20"
    )
    try:
        running = wait_for_step(serving, "Baking")
        deploy.send_signal(signal.SIGKILL)  # the laptop is gone, and its SSH connection
        deploy.wait(timeout=30)
    finally:
        if deploy.poll() is None:
            deploy.kill()
    watch = serving.fab("deploy.status", "--watch")
    assert watch.returncode == 0, watch.stderr
    assert f"Revision {running['revision']} (blue-green of models:/taxi-duration/2) is live" in (
        watch.stdout
    )
    assert serving.live() == V2
    assert "live      green  taxi-duration/2" in serving.fab("deploy.status").stdout


def test_rollback_after_the_termination_wait_starts_and_checks_the_old_slot(
    serving: ServingBox,
) -> None:
    serving.deploy("--model", "models:/taxi-duration/1", "--bake", "0", "--termination-wait", "2")
    deadline = time.monotonic() + 60
    while serving.sh("systemctl is-active mlops-model@green || true").strip() != "inactive":
        assert time.monotonic() < deadline, "the timer on the box never stopped the old slot"
        time.sleep(1)
    rolled = serving.fab("deploy.rollback")
    assert rolled.returncode == 0, rolled.stderr
    assert "was stopped: starting taxi-duration/2 again before any traffic" in rolled.stdout
    assert "Warm-up: it answered its own input example (200)" in rolled.stdout
    assert serving.live() == V2 and champion(serving, "taxi-duration") == "2"


def test_after_a_reboot_the_live_slot_and_router_come_back(serving: ServingBox) -> None:
    before = serving.live()
    answer = serving.restart()
    assert answer[1]["X-Model-Version"] == before == serving.live()
    assert serving.booted()["transition"] is None
    assert public_listeners(serving) == []


def test_stop_serves_nothing_and_rollback_brings_it_back(serving: ServingBox) -> None:
    done = serving.fab("deploy.stop")
    assert done.returncode == 0 and f"was: {V2}" in done.stdout
    assert ":8000" not in serving.sh("ss -Hltn") and ":8102" not in serving.sh("ss -Hltn")
    # A tunnel to a router that is not there: one line, no traceback.
    refused = serving.fab("deploy.tunnel", "--port", str(free_port()))
    assert "Is a model deployed? See `fab deploy.status`." in one_line_error(refused)
    rolled = serving.fab("deploy.rollback")
    assert rolled.returncode == 0, rolled.stderr
    assert serving.router(body=trips())[1]["X-Model-Version"] == V2


def test_the_tunnel_reaches_the_router_from_this_machine(serving: ServingBox) -> None:
    import urllib.request

    port = free_port()
    tunnel = serving.fab_in_background("deploy.tunnel", "--port", str(port))
    try:
        assert tunnel.stdout is not None
        line = tunnel.stdout.readline()
        assert f"http://127.0.0.1:{port}/invocations" in line, line + tunnel.stderr.read()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=trips(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200 and response.headers["X-Model-Version"] == V2
        tunnel.send_signal(signal.SIGINT)
        out, _ = tunnel.communicate(timeout=30)
    finally:
        if tunnel.poll() is None:
            tunnel.kill()
    assert "Tunnel closed" in out


def test_history_lists_every_revision(serving: ServingBox) -> None:
    done = serving.fab("deploy.history")
    assert done.returncode == 0
    for outcome in ("refused", "live", "rolled back", "failed", "stopped"):
        assert outcome in done.stdout, done.stdout


def test_the_canary_and_mirror_routing_of_the_template_is_valid_nginx(serving: ServingBox) -> None:
    """The values the next deploy patterns set (a candidate's weight, a mirror's sample)
    render to a config the box's real nginx accepts."""
    import io

    from remote.agent.deploy import router, state

    one = {"name": "taxi-duration", "version": "1"}
    two = {"name": "taxi-duration", "version": "2"}
    routing = {
        **state.empty(),
        "live": {"slot": "blue", "model": one},
        "candidate": {"slot": "green", "model": two, "weight": 5},
        "mirror": {"slot": "shadow", "model": two, "sample": 10},
    }
    # The router's own file is left alone: the test config listens on another port.
    config = router.render(routing).replace("listen 127.0.0.1:8000;", "listen 127.0.0.1:8097;")
    wrapper = "events {}\nhttp {\n    include /tmp/mlops-test-router.conf;\n}\n"
    serving.box.conn.put(io.BytesIO(config.encode()), "/tmp/mlops-test-router.conf")
    serving.box.conn.put(io.BytesIO(wrapper.encode()), "/tmp/mlops-test-nginx.conf")
    try:
        checked = serving.box.conn.run(
            "sudo nginx -t -c /tmp/mlops-test-nginx.conf", hide=True, warn=True
        )
        assert checked.ok, checked.stderr
    finally:
        serving.sh("rm -f /tmp/mlops-test-router.conf /tmp/mlops-test-nginx.conf")
