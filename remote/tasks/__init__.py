"""The `fab` command line: one Collection per noun, defaults set once here.

`fabric.yaml` at the project root and FABRIC_BOX_* environment variables override
`CONFIG_DEFAULTS`; every key must exist there for Fabric to map a variable onto it.
"""

from invoke import Collection

from remote.settings import CONFIG_DEFAULTS
from remote.tasks.box import box
from remote.tasks.deploy import deploy
from remote.tasks.mlflow import mlflow

ns = Collection(box, mlflow, deploy)
ns.configure({"box": CONFIG_DEFAULTS})

__all__ = ["ns"]
