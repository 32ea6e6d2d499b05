"""The registered model's alias (champion) moved to the version that went live, over
MLflow's REST API (system/mlflow_api.py) with the standard library only."""

from __future__ import annotations

import re
from typing import Any

from ..system import layout, mlflow_api
from ..system.failure import AgentFailure


def move_alias(model: dict[str, Any], alias: str = layout.CHAMPION_ALIAS) -> str:
    """Point the registered model's `alias` at this version; the sentence to log."""
    source = str(model.get("source", ""))
    if not re.fullmatch(r"models:/[^@]+/\d+", source):
        return f"{source} is not a registered model version: alias {alias} not moved"
    body = {"name": model["name"], "alias": alias, "version": model["version"]}
    try:
        answer = mlflow_api.call(layout.MLFLOW_URL, "registered-models/alias", body)
        mlflow_api.ok(answer, f"move alias {alias}")
    except AgentFailure as exc:
        return f"could not move alias {alias} to {model['name']}/{model['version']}: {exc.sentence}"
    return f"alias {alias} now names {model['name']}/{model['version']}"
