"""A test model (MLflow "models from code"): predicts 10 minutes for every trip, but
raises for a trip with more passengers than its `most_passengers` config, which MLflow's
scoring server answers with 400.

most_passengers 0 fails its own input example (the warm-up refuses it); 6 passes its
example and fails a request with 9 passengers (the bake catches it). `sleep_s` (default
0) makes every prediction that slow (a canary's latency gate catches it; a slow
shadow).
"""

from __future__ import annotations

import time
from typing import Any

import mlflow
import pandas as pd


class PickyModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        self.most = float(context.model_config["most_passengers"])
        self.sleep_s = float(context.model_config.get("sleep_s", 0))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> list[float]:
        if (model_input["passenger_count"] > self.most).any():
            raise ValueError(f"this model takes at most {self.most:.0f} passengers")
        time.sleep(self.sleep_s)
        return [10.0] * len(model_input)


mlflow.models.set_model(PickyModel())
