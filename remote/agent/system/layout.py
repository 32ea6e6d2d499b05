"""Where serving lives on the box: the agent's own copy of the paths, ports and names.

The agent may not import controller code, so these mirror remote/contract.py's serving
names; tests/remote/test_deploy_pure.py checks that the two agree.
"""

from __future__ import annotations

BASE = "/var/lib/mlops-box"
DEPLOY_DIR = f"{BASE}/deploy"
STATE_FILE = f"{DEPLOY_DIR}/state.json"
STATE_LOCK = f"{DEPLOY_DIR}/state.lock"
# Held by the running transition for its whole life: free means none runs.
TRANSITION_LOCK = f"{DEPLOY_DIR}/transition.lock"
SLOTS_DIR = f"{BASE}/slots"  # one directory per slot: slot.env and the env/model links
MODELS_DIR = "/opt/mlops-box/models"  # immutable copies of model versions, by content
ENVS_DIR = "/opt/mlops-box/envs"  # one virtualenv per requirements hash
PREDICTION_LOG_DIR = "/var/log/mlops-box/predictions"

SLOT_USER = "mlops-model"
SLOT_UNIT = "mlops-model@{slot}.service"
SLOT_PORTS = {"blue": 8101, "green": 8102, "shadow": 8103}
# The two slots blue-green alternates between; "shadow" serves mirrored traffic only.
LIVE_SLOTS = ("blue", "green")

ROUTER_SITE = "mlops-router"
ROUTER_PORT = 8000
ROUTER_LOG = "/var/log/nginx/mlops-router.log"
# Shadow mode: the router hands a mirrored request to this relay, which answers at once
# and forwards it to the shadow slot on its own (see router.py); its log says how the
# shadow slot answered each one.
MIRROR_RELAY_PORT = 8100
MIRROR_LOG = "/var/log/nginx/mlops-mirror.log"
SHADOW_SLOT = "shadow"
# Timers are named per revision: systemd in a container may keep a finished unit loaded
# for a while, and a name still loaded cannot be used again.
SHADOW_END_UNIT = "mlops-shadow-end-{revision}"
NGINX_SITES_DIR = "/etc/nginx/conf.d"
NGINX_LOCK = "/run/lock/mlops-box-nginx.lock"
NGINX_PID_FILE = "/run/nginx.pid"
NGINX_ERROR_LOG = "/var/log/nginx/error.log"

TRANSITION_UNIT = "mlops-deploy"
RETIRE_UNIT = "mlops-retire-{slot}-{revision}"
SYSTEM_PYTHON = "/usr/bin/python3"
# Read, when present, for the MLflow server's credentials (basic auth) and nothing else.
MLFLOW_ENV_FILE = "/etc/mlflow/mlflow.env"
MLFLOW_URL = "http://127.0.0.1:5000"
CHAMPION_ALIAS = "champion"
