"""The agent's one MLflow client, over MLflow's REST API: the tracking calls a job's
start and end need, the alias a deploy moves, and the reports' artifacts.

Standard library only, so the root-run steps (starting a job, ExecStopPost marking its
run) never import the packages of a job's environment: those are the user's choice and
run only as the unprivileged job user. The endpoints used (experiments get-by-name and
create, runs create, get and update) are MLflow's stable REST API 2.0. MLflow on the box
has no auth of its own (the front door admits clients from elsewhere), so the agent's
calls on 127.0.0.1 carry no credentials.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .failure import AgentFailure

TIMEOUT_S = 15
ARTIFACT_TIMEOUT_S = 60
KIND_MLFLOW = "mlflow"
API = "/api/2.0/mlflow"
# Artifacts travel through the server's artifact proxy (`--serve-artifacts`, as
# `fab mlflow.install` runs it), the same for a directory on the box or S3.
PROXY = "/api/2.0/mlflow-artifacts/artifacts"
PROXIED = "mlflow-artifacts:/"


def call(base: str, path: str, body: dict[str, Any] | None = None, **query: str) -> dict[str, Any]:
    """One request (POST with a body, else GET); the server's answer as a dict."""
    url = f"{base}{API}/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return dict(json.loads(response.read() or b"{}"))
    except urllib.error.HTTPError as exc:
        try:
            answer = json.loads(exc.read())
        except ValueError:
            answer = {}
        answer.setdefault("error_code", f"HTTP {exc.code}")
        return {"_error": answer}
    except (urllib.error.URLError, OSError) as exc:
        raise AgentFailure(
            KIND_MLFLOW,
            f"MLflow on the box ({base}) does not answer ({exc}): see `fab mlflow.status`.",
        ) from None


def ok(answer: dict[str, Any], what: str) -> dict[str, Any]:
    if "_error" in answer:
        error = answer["_error"]
        why = f"{error.get('error_code')} {error.get('message', '')}".strip()
        raise AgentFailure(KIND_MLFLOW, f"MLflow refused to {what}: {why}")
    return answer


def experiment_id(base: str, name: str) -> str:
    """The id of the experiment `name`, created if it does not exist yet."""
    made: dict[str, Any] = {}
    for _ in range(2):  # a concurrent create may win the race: then read it again
        found = call(base, "experiments/get-by-name", experiment_name=name)
        if "_error" not in found:
            if found["experiment"].get("lifecycle_stage") == "deleted":
                raise AgentFailure(
                    KIND_MLFLOW,
                    f"The experiment {name!r} is deleted in MLflow: restore it in the UI, "
                    "or give another --experiment.",
                )
            return str(found["experiment"]["experiment_id"])
        if found["_error"].get("error_code") != "RESOURCE_DOES_NOT_EXIST":
            ok(found, f"find the experiment {name!r}")
        made = call(base, "experiments/create", {"name": name})
        if "_error" not in made:
            return str(made["experiment_id"])
        if made["_error"].get("error_code") != "RESOURCE_ALREADY_EXISTS":
            break
    ok(made, f"create the experiment {name!r}")
    raise AgentFailure(KIND_MLFLOW, f"MLflow did not create the experiment {name!r}.")


def create_run(
    base: str, experiment: str, run_name: str, tags: dict[str, str], start_ms: int
) -> str:
    answer = ok(
        call(
            base,
            "runs/create",
            {
                "experiment_id": experiment,
                "run_name": run_name,
                "start_time": start_ms,
                "tags": [{"key": k, "value": v} for k, v in tags.items()],
            },
        ),
        "create the run",
    )
    return str(answer["run"]["info"]["run_id"])


def end_run(base: str, run_id: str, status: str, end_ms: int) -> None:
    """Set the run's final status (FINISHED, FAILED or KILLED) and end time."""
    ok(
        call(base, "runs/update", {"run_id": run_id, "status": status, "end_time": end_ms}),
        f"mark the run {run_id} {status}",
    )


def download(base: str, artifact_uri: str, path: str) -> bytes | None:
    """An artifact's bytes through the server's proxy; None when it does not exist."""
    try:
        with urllib.request.urlopen(
            _request(base, artifact_uri, path), timeout=ARTIFACT_TIMEOUT_S
        ) as r:
            return bytes(r.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise AgentFailure(
            KIND_MLFLOW, f"MLflow refused to send {path}: HTTP {exc.code}."
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise AgentFailure(
            KIND_MLFLOW,
            f"MLflow on the box ({base}) does not answer ({exc}): see `fab mlflow.status`.",
        ) from None


def upload(base: str, artifact_uri: str, path: str, data: bytes) -> None:
    request = _request(base, artifact_uri, path, data)
    try:
        with urllib.request.urlopen(request, timeout=ARTIFACT_TIMEOUT_S):
            pass
    except (urllib.error.URLError, OSError) as exc:
        raise AgentFailure(KIND_MLFLOW, f"MLflow did not store {path} ({exc}).") from None


def _request(
    base: str, artifact_uri: str, path: str, data: bytes | None = None
) -> urllib.request.Request:
    if not artifact_uri.startswith(PROXIED):
        raise AgentFailure(
            KIND_MLFLOW,
            f"The artifacts at {artifact_uri} are not served by MLflow on the box: run "
            "`fab mlflow.install`, which serves them (--serve-artifacts).",
        )
    where = f"{artifact_uri.removeprefix(PROXIED).strip('/')}/{path}"
    url = f"{base}{PROXY}/{urllib.parse.quote(where)}"
    request = urllib.request.Request(url, data=data, method="PUT" if data is not None else "GET")
    return request


def upload_to_run(base: str, run_id: str, path: str, data: bytes) -> None:
    """Put one file into the run's artifacts (`upload`, at the run's artifact URI)."""
    info = ok(call(base, "runs/get", run_id=run_id), f"read the run {run_id}")["run"]["info"]
    upload(base, str(info["artifact_uri"]), path, data)
