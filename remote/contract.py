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

# On the box.
AGENT_DIR = "/opt/mlops-box/agent"  # the shipped agent bundles, one per content hash
MLFLOW_DATA_DIR = "/var/lib/mlflow"
MLFLOW_SQLITE_DB = f"{MLFLOW_DATA_DIR}/mlflow.db"
MLFLOW_CONFIG_DIR = "/etc/mlflow"
MLFLOW_ENV_FILE = f"{MLFLOW_CONFIG_DIR}/mlflow.env"
MLFLOW_UNIT = "mlflow.service"
MLFLOW_PORT = 5000
# The router: nginx on the box in front of the model slots, on 127.0.0.1.
ROUTER_PORT = 8000
# The TLS front door (`fab deploy.expose`): the one port clients outside the box use;
# the security group opens it to httpsAllowedCidrs.
FRONT_DOOR_PORT = 443


def box_tags(stack: str, name: str) -> dict[str, str]:
    """The tags that identify one box's instance."""
    return {TAG_PROJECT: PROJECT, TAG_STACK: stack, TAG_NAME: name}
