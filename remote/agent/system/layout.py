"""Every path, unit name, user, port and URL on the box, kept once.

The agent reads them here; the controller reads them through remote/contract.py, which
re-exports them, so the two halves can never disagree. Imports nothing at all: the box's
own Python and the controller's may both load it.
"""

from __future__ import annotations

# The roots of what the project keeps on the box.
STATE_DIR = "/var/lib/mlops-box"  # across reboots
OPT_DIR = "/opt/mlops-box"  # code and immutable copies
LOG_DIR = "/var/log/mlops-box"
CONFIG_DIR = "/etc/mlops-box"
SYSTEM_PYTHON = "/usr/bin/python3"  # the box's own Python: the agent's system commands
SYSTEMD_UNIT_DIR = "/etc/systemd/system"

# The port sshd listens on, on every box (the security group opens it, the probes use it).
SSH_PORT = 22

# The agent: one bundle per content hash.
AGENT_DIR = f"{OPT_DIR}/agent"

# MLflow's server and its store.
MLFLOW_DATA_DIR = "/var/lib/mlflow"
MLFLOW_SQLITE_DB = f"{MLFLOW_DATA_DIR}/mlflow.db"
MLFLOW_CONFIG_DIR = "/etc/mlflow"
# Read, when present, for the MLflow server's credentials (basic auth) and nothing else.
MLFLOW_ENV_FILE = f"{MLFLOW_CONFIG_DIR}/mlflow.env"
MLFLOW_UNIT = "mlflow.service"
MLFLOW_PORT = 5000
MLFLOW_VENVS_DIR = "/opt/mlflow/venvs"  # the server's envs: <version>-<lock key>
MLFLOW_RUN_DIR = "/run/mlflow"  # in RAM: the RDS store URI its start step writes
MLFLOW_URL = f"http://127.0.0.1:{MLFLOW_PORT}"
CHAMPION_ALIAS = "champion"  # the registered model's alias a deploy moves to what went live
CHALLENGER_ALIAS = "challenger"  # the alias a training job gives the version it registered

# Training: project files by content, one virtualenv per requirements hash, the jobs.
TRAIN_DIR = f"{STATE_DIR}/train"
TRAIN_BLOBS_DIR = f"{TRAIN_DIR}/blobs"  # <sha256>[.x]
TRAIN_ENVS_DIR = f"{TRAIN_DIR}/envs"
TRAIN_JOBS_DIR = f"{TRAIN_DIR}/jobs"
TRAIN_USER = "mlops-train"
TRAIN_UNIT_PREFIX = "mlops-train-"  # transient units mlops-train-<id>.service

# Serving: the deploy state, the slots, the models and their environments.
DEPLOY_DIR = f"{STATE_DIR}/deploy"
DEPLOY_STATE_FILE = f"{DEPLOY_DIR}/state.json"
DEPLOY_STATE_LOCK = f"{DEPLOY_DIR}/state.lock"
# Held by the running transition for its whole life: free means none runs.
TRANSITION_LOCK = f"{DEPLOY_DIR}/transition.lock"
SLOTS_DIR = f"{STATE_DIR}/slots"  # one directory per slot: slot.env and the env/model links
MODELS_DIR = f"{OPT_DIR}/models"  # immutable copies of model versions, by content
MODEL_ENVS_DIR = f"{OPT_DIR}/envs"  # one virtualenv per model lock (and the monitor's)
PREDICTION_LOG_DIR = f"{LOG_DIR}/predictions"  # the slots' JSONL prediction logs
# The request id prefix of a slot's own warm-up predictions: in the logs, never monitored.
WARMUP_ID = "mlops-warmup"

SLOT_USER = "mlops-model"
SLOT_UNIT_TEMPLATE = "mlops-model@.service"
SLOT_UNIT = "mlops-model@{slot}.service"
SLOT_PORTS = {"blue": 8101, "green": 8102, "shadow": 8103}
# The two slots blue-green alternates between; "shadow" serves mirrored traffic only.
LIVE_SLOTS = ("blue", "green")
SHADOW_SLOT = "shadow"

ROUTER_SITE = "mlops-router"
ROUTER_PORT = 8000
ROUTER_LOG = "/var/log/nginx/mlops-router.log"  # its access log: the gates and idle read it
# Shadow mode: the router hands a mirrored request to this relay, which answers at once
# and forwards it to the shadow slot on its own (see deploy/router.py); its log says how
# the shadow slot answered each one.
MIRROR_RELAY_PORT = 8100
MIRROR_LOG = "/var/log/nginx/mlops-mirror.log"

# A transition runs as mlops-deploy-<revision>. Timers are named per revision: systemd in
# a container may keep a finished unit loaded for a while, and a loaded name cannot be
# used again.
TRANSITION_UNIT = "mlops-deploy"
RETIRE_UNIT = "mlops-retire-{slot}-{revision}"
SHADOW_END_UNIT = "mlops-shadow-end-{revision}"
# Retries a canary's rollback that nginx refused to load (one timer per try).
TAKE_BACK_UNIT = "mlops-take-back-{revision}-{attempt}"
SERVING_BOOT_UNIT = "mlops-serving-boot.service"
FRONT_DOOR_CERT_UNIT = "mlops-front-door-cert.service"

# The TLS front door (`fab deploy.expose`): the one port clients outside the box use (the
# security group opens it to httpsAllowedCidrs), and its CA, key and certificate.
FRONT_DOOR_PORT = 443
FRONT_DOOR_DIR = f"{CONFIG_DIR}/front-door"  # root-only (0700); the agent makes it

# nginx, which the router and the front door are sites of.
NGINX_SITES_DIR = "/etc/nginx/conf.d"
NGINX_DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
NGINX_STAGING_DIR = "/etc/nginx/mlops-box-staged"
NGINX_LOCK = "/run/lock/mlops-box-nginx.lock"
NGINX_PID_FILE = "/run/nginx.pid"
NGINX_ERROR_LOG = "/var/log/nginx/error.log"

# Monitoring: the labels and report caches.
MONITOR_DIR = f"{STATE_DIR}/monitor"
LABELS_DIR = f"{MONITOR_DIR}/labels"
MPL_CACHE_DIR = f"{MONITOR_DIR}/matplotlib"
# The scheduled drift report (`fab monitor.schedule`).
DRIFT_SERVICE = "mlops-drift.service"
DRIFT_TIMER = "mlops-drift.timer"

# What other features run on the box, as the idle auto-stop sees them: a unit matching
# one of these patterns that is running keeps the box up, and so does a request in the
# router's access log within the idle window.
TRAIN_UNIT_PATTERN = f"{TRAIN_UNIT_PREFIX}*"
DEPLOY_UNIT_PATTERN = f"{TRANSITION_UNIT}*"

# The idle auto-stop (`fab box.autostop`): a timer runs the agent's `idle-check` every
# minute; its setting, idle clock and the record of the last auto-stop live in IDLE_DIR.
IDLE_SERVICE = "mlops-idle.service"
IDLE_TIMER = "mlops-idle.timer"
IDLE_DIR = f"{STATE_DIR}/idle"
# Touch it (`sudo touch`, or `sudo touch -d '+3 hours'`) to count as busy until its time.
KEEPALIVE_FILE = f"{STATE_DIR}/keepalive"

# Environments, each exactly a lock (remote/system/venv.py): uv in a tool venv of its own,
# the locks the box was sent or resolved, one package cache for every environment (on the
# local box, the host's, bind-mounted there).
UV_HOME = f"{OPT_DIR}/tools/uv"
LOCKS_DIR = f"{OPT_DIR}/locks"
PACKAGE_CACHE = "/var/cache/mlops-box"
UV_CACHE = f"{PACKAGE_CACHE}/uv"
WHEELHOUSE = f"{PACKAGE_CACHE}/wheels"  # uv's own wheel, which pip installs
ENV_READY = ".mlops-box-ready"  # written last into a finished environment: its lock's key
ENV_LOCK = "requirements.lock"  # in a finished environment: the lock it holds exactly
