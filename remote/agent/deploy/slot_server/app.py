"""A model slot's server: MLflow's own scoring app, with the prediction log around it.

Runs as `python -m mlops_agent serve` with the model's virtualenv's Python (which has
the model's requirements, MLflow among them), under mlops-model@<slot>.service. It does
what `mlflow models serve --env-manager local` runs (mlflow/pyfunc/scoring_server/app.py:
`init(load_model_with_mlflow_config(path))` served by uvicorn), so /ping, /health,
/version and POST /invocations with every input format behave exactly as MLflow's; the
only additions are the prediction log and the X-Model-Slot, X-Model-Version and
X-Request-ID response headers.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ...system.failure import AgentFailure
from . import predlog

# Longer than the router's upstream keep-alive (60 s): nginx closes idle connections first.
KEEP_ALIVE_S = 75
GRACEFUL_STOP_S = 20


def _setting(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise AgentFailure("slot", f"{name} is not set: the slot's slot.env is incomplete.")
    return value


def observe(model: Any) -> Any:
    """Make the model's predict hand its inputs and outputs to the prediction log.

    MLflow's scoring server calls `model.predict(data, params=params)` once it parsed the
    request; this wrapper keeps that signature and changes nothing of the call.
    """
    original = model.predict

    def predict(data: Any, params: dict[str, Any] | None = None) -> Any:
        predlog.capture("inputs", data)
        result = original(data, params=params)
        predlog.capture("outputs", result)
        return result

    model.predict = predict
    return model


def app() -> predlog.PredictionLog:
    from mlflow.pyfunc import scoring_server
    from mlflow.utils.proto_json_utils import NumpyEncoder, _get_jsonable_obj

    slot = _setting("MLOPS_SLOT")
    model_dir = os.path.realpath(f"{os.getcwd()}/model")
    model = observe(scoring_server.load_model_with_mlflow_config(model_dir))
    scoring = scoring_server.init(model)

    def encode(value: Any) -> str:
        return json.dumps(_get_jsonable_obj(value, pandas_orient="records"), cls=NumpyEncoder)

    writer = predlog.Writer(f"{_setting('MLOPS_PREDICTION_LOG_DIR')}/{slot}.jsonl", encode)
    return predlog.PredictionLog(
        scoring,
        slot=slot,
        model=_setting("MLOPS_MODEL_NAME"),
        version=_setting("MLOPS_MODEL_VERSION"),
        writer=writer,
    )


def serve() -> dict[str, Any]:
    import uvicorn

    wrapped = app()
    try:
        uvicorn.run(
            wrapped,
            host="127.0.0.1",
            port=int(_setting("MLOPS_SLOT_PORT")),
            log_level="warning",
            access_log=False,
            timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=GRACEFUL_STOP_S,
        )
    finally:
        wrapped.writer.close()
    return {"message": "stopped"}
