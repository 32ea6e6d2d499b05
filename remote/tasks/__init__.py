"""The `fab` command line: one Collection per noun, defaults set once here.

`fabric.yaml` at the project root and FABRIC_BOX_* environment variables override
`CONFIG_DEFAULTS`; every key must exist there for Fabric to map a variable onto it.
"""

from invoke import Collection
from invoke.exceptions import Exit

from remote.errors import ConfigError
from remote.fabric_config import CONFIG_DEFAULTS, check_fabric_config
from remote.tasks._common import PROJECT_DIR
from remote.tasks.box import box
from remote.tasks.deploy import deploy
from remote.tasks.mlflow import mlflow
from remote.tasks.monitor import monitor
from remote.tasks.train import train

# Invoke loads fabric.yaml right after importing this module and fails on a malformed one
# with a traceback; this is the last point before that, and Invoke prints an Exit raised
# here as one line with its exit code.
try:
    check_fabric_config(PROJECT_DIR)
except ConfigError as exc:
    raise Exit(str(exc), code=1) from None

ns = Collection(box, mlflow, train, deploy, monitor)
ns.configure({"box": CONFIG_DEFAULTS})

__all__ = ["ns"]
