"""The example project's modules (examples/taxi is a folder users copy, not a package),
and a model trained on its trips the way train.py trains one, for the drift tests."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "taxi"


def example_module(name: str) -> ModuleType:
    """examples/taxi/<name>.py, imported once under its own name (train.py imports
    taxi_data by that name)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLE / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while building
        spec.loader.exec_module(module)
    return sys.modules[name]


@cache
def trained(rows: int = 5000, seed: int = 1) -> tuple[Any, Any, float]:
    """(pipeline, reference sample, val_rmse) as train.py makes them: the reference is up
    to 2000 training rows with the target and the model's `prediction`."""
    taxi_data = example_module("taxi_data")
    train = example_module("train")
    import numpy as np
    from sklearn.model_selection import train_test_split

    trips = taxi_data.generate(rows, seed)
    training, validation = train_test_split(
        trips, test_size=train.VALIDATION_SHARE, random_state=seed
    )
    pipeline = train.build_pipeline("rf", seed).fit(
        training[taxi_data.FEATURES], training[taxi_data.TARGET]
    )
    sample = training.sample(n=min(train.REFERENCE_ROWS, len(training)), random_state=seed)
    reference = sample[[*taxi_data.FEATURES, taxi_data.TARGET]].copy()
    reference[train.PREDICTION] = pipeline.predict(sample[taxi_data.FEATURES]).round(2)
    errors = pipeline.predict(validation[taxi_data.FEATURES]) - validation[taxi_data.TARGET]
    return pipeline, reference, float(np.sqrt(np.mean(errors**2)))
