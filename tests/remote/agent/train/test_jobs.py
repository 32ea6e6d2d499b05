"""A training job on the box: how its unit ended becomes its state and exit code, and
which logged model a job registers. Pure functions; no box."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from remote.agent.system.failure import AgentFailure
from remote.agent.train.jobs import exit_code, final_state
from remote.agent.train.register import KIND_MANY_MODELS, KIND_NO_MODEL, pick_model


@pytest.mark.parametrize(
    ("record", "result", "code", "status", "stopping", "state", "exit"),
    [
        ({}, "success", "exited", "0", False, "succeeded", 0),
        ({}, "exit-code", "exited", "3", False, "failed", 3),
        ({}, "oom-kill", "killed", "KILL", False, "oom", 137),
        ({"cancel_requested": True}, "success", "killed", "TERM", False, "killed", 143),
        # A script that catches SIGTERM and exits 0 was still cancelled.
        ({"cancel_requested": True}, "success", "exited", "0", False, "killed", 0),
        ({}, "success", "killed", "TERM", True, "lost", 143),
        ({}, "success", "killed", "TERM", False, "killed", 143),
        ({}, "signal", "dumped", "SEGV", False, "failed", 139),
    ],
)
def test_how_a_unit_ended_becomes_the_jobs_state(
    record: dict[str, object],
    result: str,
    code: str,
    status: str,
    stopping: bool,
    state: str,
    exit: int,
) -> None:
    """systemd's SERVICE_RESULT/EXIT_CODE/EXIT_STATUS as ExecStopPost sees them."""
    assert final_state(record, result, code, status, stopping) == state
    assert exit_code(code, status) == exit


def test_the_model_to_register_is_the_runs_only_one_or_the_one_named() -> None:
    model = SimpleNamespace(name="model", model_id="m-1")
    other = SimpleNamespace(name="baseline", model_id="m-2")
    assert pick_model([model], "r1", "") is model
    assert pick_model([model, other], "r1", "baseline") is other
    assert pick_model([model, other], "r1", "m-1") is model
    for models, wanted, kind in (
        ([], "", KIND_NO_MODEL),
        ([model, other], "", KIND_MANY_MODELS),
        ([model], "nope", KIND_NO_MODEL),
    ):
        with pytest.raises(AgentFailure) as refused:
            pick_model(models, "r1", wanted)
        assert refused.value.kind == kind
        assert "nothing was registered" in refused.value.sentence
