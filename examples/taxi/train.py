"""Train a trip-duration model on synthetic taxi trips and log it to MLflow.

    python train.py --model rf --rows 5000 --seed 1
    python train.py --speed-factor 0.7 --rush-hour-penalty 5   # a concept-drifted model

MLflow is configured by the environment, as in an MLflow Project: MLFLOW_TRACKING_URI says
where to log, and MLFLOW_RUN_ID (when set) names an existing run that `mlflow.start_run()`
joins instead of creating one. What lands in the run:

  params     model, rows, seed, the estimator's settings and every drift knob
  metrics    val_rmse, val_mae (minutes, on a held-out fifth of the rows)
  model      the scikit-learn Pipeline, named "model", with signature and input example
  artifacts  reference/reference.csv: a sample of the training rows with their target and
             the model's prediction, the baseline that drift monitoring compares against
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import tempfile
import time
import warnings
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import taxi_data
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

MODEL_NAME = "model"
REFERENCE_ARTIFACT = "reference/reference.csv"
REFERENCE_ROWS = 2000
PREDICTION = "prediction"
VALIDATION_SHARE = 0.2
# The types in this pipeline that skops does not trust by default, each reviewed: the
# dtype SimpleImputer records when fitted, and the node storage of the forest's trees.
SKOPS_TRUSTED_TYPES = ["numpy.dtype", "sklearn.tree._tree.Tree"]

# Small enough to train in a few seconds on two cores, deep enough to learn rush hours.
ESTIMATOR_SETTINGS: dict[str, dict[str, float | int]] = {
    "rf": {"n_estimators": 60, "max_depth": 14, "min_samples_leaf": 3},
    "ridge": {"alpha": 1.0},
}


def build_pipeline(model: str, seed: int) -> Pipeline:
    """Zones one-hot encoded (a zone unseen in training encodes as all zeros), numbers
    imputed with the training median (so missing values at serving time do not fail)."""
    settings = ESTIMATOR_SETTINGS[model]
    if model == "rf":
        estimator = RandomForestRegressor(**settings, random_state=seed, n_jobs=-1)
    else:
        estimator = Ridge(**settings)
    features = ColumnTransformer(
        [
            ("zones", OneHotEncoder(handle_unknown="ignore"), taxi_data.CATEGORICAL_FEATURES),
            ("numbers", SimpleImputer(strategy="median"), taxi_data.NUMERIC_FEATURES),
        ]
    )
    return Pipeline([("features", features), ("regressor", estimator)])


def log_model(pipeline: Pipeline, x_val: pd.DataFrame, predictions: np.ndarray) -> str:
    """Log the pipeline as the run's model and return its URI."""
    with warnings.catch_warnings():
        # MLflow warns that an integer column cannot hold a missing value; pickup_hour and
        # pickup_weekday are never missing, and the columns that can be are floats.
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        signature = infer_signature(x_val, predictions)
    accepts = inspect.signature(mlflow.sklearn.log_model).parameters
    # MLflow 3 logs a named model of its own; MLflow 2 kept it at an artifact path in the run.
    options: dict[str, object] = (
        {"name": MODEL_NAME} if "name" in accepts else {"artifact_path": MODEL_NAME}
    )
    # MLflow versions that save scikit-learn models with skops refuse types outside skops'
    # allow-list unless they are named here, at saving and again at loading.
    if "skops_trusted_types" in accepts:
        options["skops_trusted_types"] = SKOPS_TRUSTED_TYPES
    info = mlflow.sklearn.log_model(
        pipeline,
        **options,
        signature=signature,
        input_example=x_val.head(5),
    )
    return str(info.model_uri)


def log_reference(pipeline: Pipeline, train: pd.DataFrame, seed: int) -> None:
    """Log a sample of the training rows, with target and prediction, as the drift baseline."""
    sample = train.sample(n=min(REFERENCE_ROWS, len(train)), random_state=seed)
    reference = sample[[*taxi_data.FEATURES, taxi_data.TARGET]].copy()
    reference[PREDICTION] = pipeline.predict(sample[taxi_data.FEATURES]).round(2)
    folder, name = REFERENCE_ARTIFACT.rsplit("/", 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        reference.to_csv(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=folder)


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, taxi_data.Drift]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(ESTIMATOR_SETTINGS), default="rf")
    parser.add_argument("--rows", type=int, default=5000, help="trips to generate (default 5000)")
    parser.add_argument("--seed", type=int, default=1, help="data and model seed (default 1)")
    parser.add_argument(
        "--no-log-model",
        action="store_true",
        help="log params, metrics and the reference sample but not the model",
    )
    taxi_data.add_drift_arguments(parser)
    args = parser.parse_args(argv)
    if args.rows < 50:
        parser.error(f"--rows is {args.rows}: give at least 50 to train and validate")
    try:
        drift = taxi_data.drift_from_arguments(args)
    except ValueError as error:
        parser.error(str(error))
    return args, drift


def main(argv: list[str] | None = None) -> None:
    args, drift = parse_args(argv)
    started = time.monotonic()
    trips = taxi_data.generate(args.rows, args.seed, drift)
    train, val = train_test_split(trips, test_size=VALIDATION_SHARE, random_state=args.seed)
    x_train, y_train = train[taxi_data.FEATURES], train[taxi_data.TARGET]
    x_val, y_val = val[taxi_data.FEATURES], val[taxi_data.TARGET]

    # No run name: with MLFLOW_RUN_ID set, this joins that run rather than making a new one.
    with mlflow.start_run() as run:
        mlflow.log_params(
            {
                "model": args.model,
                "rows": args.rows,
                "seed": args.seed,
                **ESTIMATOR_SETTINGS[args.model],
                **dataclasses.asdict(drift),
            }
        )
        pipeline = build_pipeline(args.model, args.seed).fit(x_train, y_train)
        predictions = pipeline.predict(x_val)
        val_rmse = float(np.sqrt(mean_squared_error(y_val, predictions)))
        val_mae = float(mean_absolute_error(y_val, predictions))
        mlflow.log_metrics({"val_rmse": val_rmse, "val_mae": val_mae})
        log_reference(pipeline, train, args.seed)
        model_uri = None if args.no_log_model else log_model(pipeline, x_val, predictions)

    print(f"run {run.info.run_id}: {len(train)} training rows, {time.monotonic() - started:.1f} s")
    if model_uri:
        print(f"model {model_uri}")
    print(f"val_mae={val_mae:.3f}")
    print(f"val_rmse={val_rmse:.3f}")


if __name__ == "__main__":
    main()
