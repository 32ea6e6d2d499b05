"""The box harness that the box tests and the benchmarks share, in one place.

local_box.py    the test box's constants (REPO_ROOT, TEST_SUBNET, START_TIMEOUT_S),
                skip_reason, RunningBox, find_leftovers (tests/box/conftest.py builds
                its fixtures from them)
mlflow_box.py   MlflowBox: a local box running MLflow, and HTTP helpers
serving_box.py  a box with MLflow and registered models, as the serving tests and the
                serving benchmarks drive it (trips, LOAD_SCRIPT, the deploy state)
load.py         a steady HTTP load (standard library only; runs here or on the box)
postgres.py     a PostgreSQL on this machine that the box reaches (the RDS tests)
moto_host.py    a moto server on this machine that the box reaches as "AWS"
models/         test models that misbehave on purpose
"""
