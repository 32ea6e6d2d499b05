"""Register the model a job's run logged: a new version of NAME, with `challenger` on it.

The MLflow client doing it runs on the box, in the job's own environment (which has the
server's MLflow version) and as the job user, through the agent: no tunnel is needed,
and the client is the one that knows MLflow 3's logged models. Then the job's record
notes the version, so `train.list` shows it.
"""

from __future__ import annotations

from remote.agent.train import commands as train_cmds
from remote.agent.train.register import KIND_MANY_MODELS, KIND_NO_MODEL
from remote.contract import TRAIN_JOBS_DIR, TRAIN_USER
from remote.system.agent import run_agent
from remote.system.run import Connection
from remote.train.environment import python_of
from remote.train.jobs import TrainError
from remote.train.records import JobRecord

CHALLENGER = "challenger"
REGISTER_TIMEOUT_S = 300


class NoModelToRegister(TrainError):
    """The run logged no model, or several and none was chosen."""


def register(conn: Connection, record: JobRecord, name: str, logged_model: str = "") -> str:
    """Register the run's logged model as a new version of `name`; return models:/NAME/V."""
    if not record.run_id:
        raise TrainError(f"Job {record.id} has no MLflow run: nothing to register.")
    chosen = ["--logged-model", logged_model] if logged_model else []
    answer = run_agent(
        conn,
        train_cmds.REGISTER,
        record.run_id,
        name,
        "--alias",
        CHALLENGER,
        *chosen,
        python=python_of(record.env_key),
        user=TRAIN_USER,
        env_file=f"{TRAIN_JOBS_DIR}/{record.id}/env",
        timeout_s=REGISTER_TIMEOUT_S,
        errors={KIND_NO_MODEL: NoModelToRegister, KIND_MANY_MODELS: NoModelToRegister},
        error=TrainError,
    )
    version = str(answer["version"])
    run_agent(
        conn, train_cmds.NOTE, record.id, "--registered", f"{name}/{version}", error=TrainError
    )
    return f"models:/{name}/{version}"
