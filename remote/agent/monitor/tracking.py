"""MLflow for a drift report: the model version, its training run's reference sample and
validation error, its signature; and the report logged as a run of the monitoring
experiment. Over MLflow's REST API (system/mlflow_api.py), so the monitor's environment
needs no MLflow client.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..system import mlflow_api
from ..system.failure import AgentFailure
from ..system.mlflow_api import call

REFERENCE_ARTIFACT = "reference/reference.csv"
VALIDATION_METRIC = "val_rmse"
KIND_NO_MODEL = "no-model"
KIND_NO_REFERENCE = "no-reference"
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")
REF_FORMS = "NAME@ALIAS, NAME/VERSION, models:/NAME@ALIAS, models:/NAME/VERSION or models:/m-<id>"


@dataclass(frozen=True)
class ModelVersion:
    """A model as the prediction log names it (name, version) and where its parts are."""

    name: str
    version: str
    run_id: str  # the training run
    artifact_uri: str  # the model's own files (MLmodel)

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


def resolve(base: str, ref: str) -> ModelVersion:
    """The model version `ref` names now (an alias is followed at each call)."""
    text = ref.removeprefix("models:/")
    if text.startswith("m-") and "/" not in text and "@" not in text:
        return _logged_model(base, text, ref)
    if "@" in text:
        name, alias = text.rsplit("@", 1)
        found = call(base, "registered-models/alias", name=name, alias=alias)
    elif "/" in text:
        name, version = text.rsplit("/", 1)
        found = call(base, "model-versions/get", name=name, version=version)
    else:
        raise AgentFailure(KIND_NO_MODEL, f"--model {ref!r} names no version: give {REF_FORMS}.")
    if "_error" in found:
        _refuse(found, ref)
    version = found["model_version"]
    name, number = str(version["name"]), str(version["version"])
    uri = call(base, "model-versions/get-download-uri", name=name, version=number)
    return ModelVersion(name, number, str(version.get("run_id") or ""), _value(uri, "artifact_uri"))


def _logged_model(base: str, model_id: str, ref: str) -> ModelVersion:
    """An unregistered MLflow 3 model: the prediction log names it (name, model id)."""
    found = call(base, f"logged-models/{urllib.parse.quote(model_id)}")
    if "_error" in found:
        _refuse(found, ref)
    info = found["model"]["info"]
    return ModelVersion(
        str(info["name"]), model_id, str(info.get("source_run_id") or ""), info["artifact_uri"]
    )


def _refuse(found: dict[str, Any], ref: str) -> None:
    error = found["_error"]
    if error.get("error_code") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
        raise AgentFailure(
            KIND_NO_MODEL,
            f"MLflow on the box has no model {ref!r} ({error.get('message', '').strip()}): "
            f"check the name in the MLflow UI (`fab mlflow.ui`); give {REF_FORMS}.",
        )
    mlflow_api.ok(found, f"find the model {ref!r}")


def _value(answer: dict[str, Any], key: str) -> str:
    return str(mlflow_api.ok(answer, f"read {key}")[key])


def training_run(base: str, model: ModelVersion) -> tuple[str, float | None]:
    """The training run's artifact URI and its validation error (None if not logged)."""
    if not model.run_id:
        raise _no_reference(model, "it was registered without a training run")
    run = mlflow_api.ok(call(base, "runs/get", run_id=model.run_id), "read the training run")
    metrics = {m["key"]: m["value"] for m in run["run"]["data"].get("metrics", [])}
    value = metrics.get(VALIDATION_METRIC)
    return str(run["run"]["info"]["artifact_uri"]), None if value is None else float(value)


def reference_sample(base: str, model: ModelVersion, run_artifacts: str) -> bytes:
    data = mlflow_api.download(base, run_artifacts, REFERENCE_ARTIFACT)
    if data is None:
        raise _no_reference(model, f"its training run {model.run_id} has no {REFERENCE_ARTIFACT}")
    return data


def _no_reference(model: ModelVersion, why: str) -> AgentFailure:
    return AgentFailure(
        KIND_NO_REFERENCE,
        f"{model.label} has no reference sample ({why}): log one from its training run, a CSV "
        "of training rows with the model's input columns, the target and the model's "
        f"`prediction`: mlflow.log_artifact('reference.csv', artifact_path='reference') "
        "(see examples/taxi/train.py), then register that run's model.",
    )


def signature_inputs(base: str, model: ModelVersion) -> list[dict[str, Any]] | None:
    """The model signature's input columns ({"name", "type"}), None without a signature."""
    import json

    import yaml

    data = mlflow_api.download(base, model.artifact_uri, "MLmodel")
    if data is None:
        return None
    try:
        inputs = (yaml.safe_load(data) or {}).get("signature", {}).get("inputs")
        columns = json.loads(inputs) if inputs else None
    except (ValueError, yaml.YAMLError, AttributeError):
        return None
    if not isinstance(columns, list) or not all("name" in c for c in columns):
        return None  # a tensor signature names no columns
    return columns


def log_report(
    base: str,
    experiment: str,
    model: ModelVersion,
    *,
    metrics: dict[str, float],
    params: dict[str, str],
    tags: dict[str, str],
    files: list[Path],
    title: str = "drift",
) -> str:
    """Log one report as a run of `experiment` (made if missing), named `title` and the
    model; return the run's id."""
    started = int(time.time() * 1000)
    experiment_id = mlflow_api.experiment_id(base, experiment)
    run_tags = {
        "mlops-box.model": model.name,
        "mlops-box.model_version": model.version,
        "mlops-box.training_run": model.run_id,
        **tags,
    }
    name = f"{title} {model.label} {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}"
    run_id = mlflow_api.create_run(base, experiment_id, name, run_tags, started)
    try:
        body = {
            "run_id": run_id,
            "metrics": [
                {"key": _key(k), "value": v, "timestamp": started, "step": 0}
                for k, v in metrics.items()
            ],
            "params": [{"key": _key(k), "value": v[:6000]} for k, v in params.items()],
        }
        mlflow_api.ok(call(base, "runs/log-batch", body), "log the report's figures")
        answer = mlflow_api.ok(call(base, "runs/get", run_id=run_id), "read the report's run")
        artifacts = str(answer["run"]["info"]["artifact_uri"])
        for path in files:
            mlflow_api.upload(base, artifacts, f"report/{path.name}", path.read_bytes())
    except BaseException:
        mlflow_api.end_run(base, run_id, "FAILED", int(time.time() * 1000))
        raise
    mlflow_api.end_run(base, run_id, "FINISHED", int(time.time() * 1000))
    return run_id


def _key(name: str) -> str:
    """A metric or param key MLflow accepts (column names may hold anything)."""
    return _KEY_UNSAFE.sub("_", name)[:250]
