"""Names that `infra/` (what `pulumi up` makes) and `remote/` (what `fab` does) share.

The Pulumi program writes them onto AWS resources and the box; the fab tasks find things
by them. Kept here once, importing neither side, so the two can never drift apart.

Every path, unit name, port and URL on the box lives in the agent's
remote/agent/system/layout.py (the agent may import no controller code); this module
re-exports the ones the controller and infra/ use.
"""

from __future__ import annotations

from remote.agent.system.layout import (  # re-exported: the controller's names for them
    AGENT_DIR as AGENT_DIR,
)
from remote.agent.system.layout import (
    DEPLOY_DIR as DEPLOY_DIR,
)
from remote.agent.system.layout import (
    DEPLOY_STATE_FILE as DEPLOY_STATE_FILE,
)
from remote.agent.system.layout import (
    DEPLOY_UNIT_PATTERN as DEPLOY_UNIT_PATTERN,
)
from remote.agent.system.layout import (
    DRIFT_SERVICE as DRIFT_SERVICE,
)
from remote.agent.system.layout import (
    DRIFT_TIMER as DRIFT_TIMER,
)
from remote.agent.system.layout import (
    ENV_LOCK as ENV_LOCK,
)
from remote.agent.system.layout import (
    ENV_READY as ENV_READY,
)
from remote.agent.system.layout import (
    FRONT_DOOR_CERT_UNIT as FRONT_DOOR_CERT_UNIT,
)
from remote.agent.system.layout import (
    FRONT_DOOR_DIR as FRONT_DOOR_DIR,
)
from remote.agent.system.layout import (
    FRONT_DOOR_PORT as FRONT_DOOR_PORT,
)
from remote.agent.system.layout import (
    IDLE_DIR as IDLE_DIR,
)
from remote.agent.system.layout import (
    IDLE_SERVICE as IDLE_SERVICE,
)
from remote.agent.system.layout import (
    IDLE_TIMER as IDLE_TIMER,
)
from remote.agent.system.layout import (
    KEEPALIVE_FILE as KEEPALIVE_FILE,
)
from remote.agent.system.layout import (
    LABELS_DIR as LABELS_DIR,
)
from remote.agent.system.layout import (
    LOCKS_DIR as LOCKS_DIR,
)
from remote.agent.system.layout import (
    LOG_DIR as LOG_DIR,
)
from remote.agent.system.layout import (
    MIRROR_LOG as MIRROR_LOG,
)
from remote.agent.system.layout import (
    MIRROR_RELAY_PORT as MIRROR_RELAY_PORT,
)
from remote.agent.system.layout import (
    MLFLOW_CONFIG_DIR as MLFLOW_CONFIG_DIR,
)
from remote.agent.system.layout import (
    MLFLOW_DATA_DIR as MLFLOW_DATA_DIR,
)
from remote.agent.system.layout import (
    MLFLOW_ENV_FILE as MLFLOW_ENV_FILE,
)
from remote.agent.system.layout import (
    MLFLOW_PORT as MLFLOW_PORT,
)
from remote.agent.system.layout import (
    MLFLOW_RUN_DIR as MLFLOW_RUN_DIR,
)
from remote.agent.system.layout import (
    MLFLOW_SQLITE_DB as MLFLOW_SQLITE_DB,
)
from remote.agent.system.layout import (
    MLFLOW_UNIT as MLFLOW_UNIT,
)
from remote.agent.system.layout import (
    MLFLOW_URL as MLFLOW_URL,
)
from remote.agent.system.layout import (
    MLFLOW_VENVS_DIR as MLFLOW_VENVS_DIR,
)
from remote.agent.system.layout import (
    MODEL_ENVS_DIR as MODEL_ENVS_DIR,
)
from remote.agent.system.layout import (
    MODELS_DIR as MODELS_DIR,
)
from remote.agent.system.layout import (
    MONITOR_DIR as MONITOR_DIR,
)
from remote.agent.system.layout import (
    NGINX_DEFAULT_SITE as NGINX_DEFAULT_SITE,
)
from remote.agent.system.layout import (
    NGINX_SITES_DIR as NGINX_SITES_DIR,
)
from remote.agent.system.layout import (
    NGINX_STAGING_DIR as NGINX_STAGING_DIR,
)
from remote.agent.system.layout import (
    PACKAGE_CACHE as PACKAGE_CACHE,
)
from remote.agent.system.layout import (
    PREDICTION_LOG_DIR as PREDICTION_LOG_DIR,
)
from remote.agent.system.layout import (
    ROUTER_LOG as ROUTER_LOG,
)
from remote.agent.system.layout import (
    ROUTER_PORT as ROUTER_PORT,
)
from remote.agent.system.layout import (
    SERVING_BOOT_UNIT as SERVING_BOOT_UNIT,
)
from remote.agent.system.layout import (
    SLOT_UNIT_TEMPLATE as SLOT_UNIT_TEMPLATE,
)
from remote.agent.system.layout import (
    SLOT_USER as SLOT_USER,
)
from remote.agent.system.layout import (
    SLOTS_DIR as SLOTS_DIR,
)
from remote.agent.system.layout import (
    SSH_PORT as SSH_PORT,
)
from remote.agent.system.layout import (
    STATE_DIR as STATE_DIR,
)
from remote.agent.system.layout import (
    SYSTEM_PYTHON as SYSTEM_PYTHON,
)
from remote.agent.system.layout import (
    SYSTEMD_UNIT_DIR as SYSTEMD_UNIT_DIR,
)
from remote.agent.system.layout import (
    TRAIN_BLOBS_DIR as TRAIN_BLOBS_DIR,
)
from remote.agent.system.layout import (
    TRAIN_ENVS_DIR as TRAIN_ENVS_DIR,
)
from remote.agent.system.layout import (
    TRAIN_JOBS_DIR as TRAIN_JOBS_DIR,
)
from remote.agent.system.layout import (
    TRAIN_UNIT_PATTERN as TRAIN_UNIT_PATTERN,
)
from remote.agent.system.layout import (
    TRAIN_USER as TRAIN_USER,
)
from remote.agent.system.layout import (
    UV_CACHE as UV_CACHE,
)
from remote.agent.system.layout import (
    UV_HOME as UV_HOME,
)
from remote.agent.system.layout import (
    WHEELHOUSE as WHEELHOUSE,
)

# The Pulumi project, its config namespace and the value of the Project tag.
PROJECT = "mlops-box"

# Tags on every resource; the box is the instance with all three.
TAG_PROJECT = "Project"
TAG_STACK = "Stack"
TAG_NAME = "Name"

# The wiring tags on the instance: how `fab` finds the box's bucket and database from
# AWS alone, never from a saved file.
TAG_MLFLOW_BACKEND = "mlops-box:mlflow-backend"
TAG_ARTIFACT_BUCKET = "mlops-box:artifact-bucket"
TAG_DB_INSTANCE = "mlops-box:db-instance"

# The database RDS creates for MLflow.
DB_NAME = "mlflow"


def box_tags(stack: str, name: str) -> dict[str, str]:
    """The tags that identify one box's instance."""
    return {TAG_PROJECT: PROJECT, TAG_STACK: stack, TAG_NAME: name}
