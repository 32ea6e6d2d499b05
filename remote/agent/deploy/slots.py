"""Model slots: give a slot a model, start and stop it, and check it answers.

A slot is one instance of the template unit mlops-model@.service, serving one model on
its own loopback port. Its directory, /var/lib/mlops-box/slots/<slot>/, says what it
serves: `slot.env` (read by systemd: port, model name and version, the agent bundle) and
two links, `env` to the model's virtualenv and `model` to its immutable files. A slot is
only ever given a new model while it is stopped and takes no traffic.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

from ..system import envfile, files, layout, systemd
from ..system.failure import AgentFailure

KIND_SLOT = "slot"
PING_TIMEOUT_S = 180.0
WARMUP_TIMEOUT_S = 60.0
EXAMPLE_FILE = "serving_input_example.json"
WARMUP_ID = layout.WARMUP_ID


def slot_dir(slot: str) -> str:
    return f"{layout.SLOTS_DIR}/{slot}"


def unit(slot: str) -> str:
    return layout.SLOT_UNIT.format(slot=slot)


def url(slot: str, path: str = "") -> str:
    return f"http://127.0.0.1:{layout.SLOT_PORTS[slot]}{path}"


def env_file(slot: str, model: dict[str, Any], agent_zip: str) -> str:
    values = {
        "PYTHONPATH": agent_zip,
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": "/tmp",
        "MLOPS_SLOT": slot,
        "MLOPS_SLOT_PORT": str(layout.SLOT_PORTS[slot]),
        "MLOPS_MODEL_NAME": model["name"],
        "MLOPS_MODEL_VERSION": model["version"],
        "MLOPS_MODEL_URI": model["source"],
        "MLOPS_PREDICTION_LOG_DIR": layout.PREDICTION_LOG_DIR,
    }
    return envfile.env_file(values)


def assign(slot: str, model: dict[str, Any], agent_zip: str) -> None:
    """Point the (stopped) slot at `model`: its env file and its two links, each atomic."""
    directory = slot_dir(slot)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    _replace_link(f"{directory}/env", model["env"])
    _replace_link(f"{directory}/model", model["dir"])
    files.write_text(f"{directory}/slot.env", env_file(slot, model, agent_zip), 0o644)


def _replace_link(link: str, target: str) -> None:
    tmp = f"{link}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def active(slot: str) -> bool:
    return systemd.systemctl("is-active", "--quiet", unit(slot)).returncode == 0


def start(slot: str) -> None:
    started = systemd.systemctl("start", unit(slot))
    if started.returncode != 0:
        raise AgentFailure(KIND_SLOT, f"{unit(slot)} did not start: {started.stderr.strip()}")


def stop(slot: str) -> None:
    systemd.systemctl("stop", unit(slot))


def enable(slot: str, on: bool = True) -> None:
    systemd.systemctl("enable" if on else "disable", "--quiet", unit(slot))


def journal(slot: str, lines: int = 5) -> str:
    log = subprocess.run(
        ["journalctl", "-u", unit(slot), "-n", str(lines), "--no-pager", "-o", "cat"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    kept = [line.strip() for line in log.splitlines() if line.strip()]
    return " | ".join(kept) or "(no log lines)"


def restarts(slot: str) -> int:
    """How often systemd restarted the slot's server since the unit started."""
    shown = systemd.systemctl("show", "-p", "NRestarts", "--value", unit(slot)).stdout.strip()
    return int(shown) if shown.isdigit() else 0


def wait_ping(slot: str, timeout_s: float = PING_TIMEOUT_S) -> float:
    """Wait until the slot answers /ping; its seconds. A crash ends the wait at once."""
    start_time = time.monotonic()
    while time.monotonic() - start_time < timeout_s:
        if request(slot, "/ping", timeout_s=2)[0] == 200:
            return time.monotonic() - start_time
        if not active(slot) or restarts(slot) > 0:
            raise AgentFailure(
                KIND_SLOT,
                f"The model server in slot {slot} crashed while starting: {journal(slot)}",
            )
        time.sleep(0.25)
    raise AgentFailure(
        KIND_SLOT, f"Slot {slot} did not answer /ping within {timeout_s:.0f}s: {journal(slot)}"
    )


def request(
    slot: str,
    path: str,
    body: bytes | None = None,
    *,
    headers: dict[str, str] | None = None,
    timeout_s: float = WARMUP_TIMEOUT_S,
    base: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request to the slot (or to `base`); status 0 when
    nothing answered."""
    target = (base or url(slot)) + path
    call = urllib.request.Request(target, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(call, timeout=timeout_s) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
    except (OSError, ValueError):
        return 0, {}, b""


def example(model: dict[str, Any]) -> bytes | None:
    """The model's own serving input example (MLflow writes it next to the model), if any."""
    try:
        with open(f"{model['dir']}/{EXAMPLE_FILE}", "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def warm_up(slot: str, model: dict[str, Any], revision: int) -> str:
    """Predict the model's own example in the slot: the sentence to log, or AgentFailure."""
    payload = example(model)
    if payload is None:
        return "the model has no input example: only /ping was checked"
    status, _, body = request(
        slot,
        "/invocations",
        payload,
        headers={
            "Content-Type": "application/json",
            "X-Request-ID": f"{WARMUP_ID}-{revision}",
        },
    )
    if status != 200:
        raise AgentFailure(
            KIND_SLOT,
            f"{model['name']}/{model['version']} answered {status or 'nothing'} to its own "
            f"input example: {_message(body)}",
        )
    return "it answered its own input example (200)"


def _message(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    with contextlib.suppress(ValueError, AttributeError):
        text = str(json.loads(text).get("message", text))
    first = " ".join(text.strip().splitlines()[:2])
    return first[:300] or "(empty answer)"
