"""Register the model a job's run logged as a new version, and point an alias at it.

Run by the job environment's Python (which has the mlflow client of the server's
version) as the job user, under the job's environment file (MLFLOW_TRACKING_URI, and
the credentials a --public server wants). In MLflow 3 a logged model is an object of its
own, linked to the run that logged it: it is found by its source run, not as a folder of
the run's artifacts.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..system.failure import AgentFailure

KIND_NO_MODEL = "no-model"
KIND_MANY_MODELS = "many-models"


def register(run_id: str, name: str, alias: str, logged_model: str = "") -> dict[str, Any]:
    mlflow = importlib.import_module("mlflow")
    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    model = pick_model(_logged_models(client, run), run_id, logged_model)
    # The run's own tags travel with the version; MLflow's bookkeeping (mlflow.*) does not.
    tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    version = mlflow.register_model(f"models:/{model.model_id}", name, tags=tags)
    client.set_registered_model_alias(name, alias, version.version)
    return {
        "name": name,
        "version": str(version.version),
        "model_id": model.model_id,
        "model_name": model.name,
        "alias": alias,
    }


def _logged_models(client: Any, run: Any) -> list[Any]:
    found = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
    )
    return list(found)


def pick_model(models: list[Any], run_id: str, wanted: str) -> Any:
    """The one model to register: the only one, or the one named (by name or model id)."""
    if wanted:
        chosen = [m for m in models if wanted in (m.name, m.model_id)]
        if len(chosen) == 1:
            return chosen[0]
        names = ", ".join(f"{m.name} ({m.model_id})" for m in models) or "none"
        raise AgentFailure(
            KIND_NO_MODEL,
            f"Run {run_id} logged no model named {wanted!r} (it logged: {names}); "
            "nothing was registered.",
        )
    if not models:
        raise AgentFailure(
            KIND_NO_MODEL,
            f"Run {run_id} logged no model, so nothing was registered: log one with "
            "mlflow.<flavour>.log_model(...) in the entry script.",
        )
    if len(models) > 1:
        names = ", ".join(f"{m.name} ({m.model_id})" for m in models)
        raise AgentFailure(
            KIND_MANY_MODELS,
            f"Run {run_id} logged {len(models)} models ({names}): choose one with "
            "--logged-model NAME; nothing was registered.",
        )
    return models[0]
