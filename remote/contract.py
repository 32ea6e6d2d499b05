"""Names that `infra/` (what `pulumi up` makes) and `remote/` (what `fab` does) share.

The Pulumi program writes them onto AWS resources and the box; the fab tasks find things
by them. Kept here once, importing neither side, so the two can never drift apart.
"""

from __future__ import annotations

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

# The port sshd listens on, on every box (the security group opens it, the probes use it).
SSH_PORT = 22

# On the box.
AGENT_DIR = "/opt/mlops-box/agent"  # the shipped agent bundles, one per content hash
STATE_DIR = "/var/lib/mlops-box"  # what the project keeps on the box, across reboots
MLFLOW_DATA_DIR = "/var/lib/mlflow"
MLFLOW_SQLITE_DB = f"{MLFLOW_DATA_DIR}/mlflow.db"
MLFLOW_CONFIG_DIR = "/etc/mlflow"
MLFLOW_ENV_FILE = f"{MLFLOW_CONFIG_DIR}/mlflow.env"
MLFLOW_UNIT = "mlflow.service"
MLFLOW_PORT = 5000
# The TLS front door (`fab deploy.expose`): the one port clients outside the box use;
# the security group opens it to httpsAllowedCidrs.
FRONT_DOOR_PORT = 443
# Monitoring: the serving slots' prediction log (read), the labels and report caches,
# and the virtualenvs named by their requirements' hash.
PREDICTION_LOG_DIR = "/var/log/mlops-box/predictions"
MONITOR_DIR = "/var/lib/mlops-box/monitor"
LABELS_DIR = f"{MONITOR_DIR}/labels"
ENVS_DIR = "/opt/mlops-box/envs"
# Environments come from locks (remote/system/venv.py): uv in its own tool venv, the locks
# the box resolved or was sent, and one package cache for every environment on the box
# (on the local box, the host's, bind-mounted: PACKAGE_CACHE).
UV_HOME = "/opt/mlops-box/tools/uv"
LOCKS_DIR = "/opt/mlops-box/locks"
PACKAGE_CACHE = "/var/cache/mlops-box"
UV_CACHE = f"{PACKAGE_CACHE}/uv"
WHEELHOUSE = f"{PACKAGE_CACHE}/wheels"

# What other features run on the box, as the idle auto-stop sees them: a unit matching
# one of these patterns that is running keeps the box up (training jobs are transient
# units mlops-train-<id>.service; a deploy transition runs as mlops-deploy*.service), and
# so does a request in the router's access log within the idle window.
TRAIN_UNIT_PATTERN = "mlops-train-*"
DEPLOY_UNIT_PATTERN = "mlops-deploy*"
ROUTER_ACCESS_LOG = "/var/log/nginx/mlops-router.log"

# The idle auto-stop (`fab box.autostop`): a timer runs the agent's `idle-check` every
# minute; its setting, idle clock and the record of the last auto-stop live in IDLE_DIR.
IDLE_SERVICE = "mlops-idle.service"
IDLE_TIMER = "mlops-idle.timer"
IDLE_DIR = f"{STATE_DIR}/idle"
# Touch it (`sudo touch`, or `sudo touch -d '+3 hours'`) to count as busy until its time.
KEEPALIVE_FILE = f"{STATE_DIR}/keepalive"


def box_tags(stack: str, name: str) -> dict[str, str]:
    """The tags that identify one box's instance."""
    return {TAG_PROJECT: PROJECT, TAG_STACK: stack, TAG_NAME: name}


# Serving on the box (the agent keeps its own copy in remote/agent/paths.py; a test checks
# that they agree).
DEPLOY_STATE_FILE = "/var/lib/mlops-box/deploy/state.json"
ROUTER_PORT = 8000
# The router's mirror relay (shadow mode) and its log of what the shadow slot answered.
MIRROR_RELAY_PORT = 8100
MIRROR_LOG = "/var/log/nginx/mlops-mirror.log"
SLOT_USER = "mlops-model"
SLOT_UNIT_TEMPLATE = "mlops-model@.service"
SERVING_BOOT_UNIT = "mlops-serving-boot.service"
SLOTS_DIR = "/var/lib/mlops-box/slots"
MODELS_DIR = "/opt/mlops-box/models"
