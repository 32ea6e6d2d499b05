"""Code that runs on the box itself: the agent.

Shipped to the box as one zip bundle named by its content hash and run there as
`python -m mlops_agent <command>` (see `remote/system/agent.py`), by the box's own Python
or by the virtualenv a command names (MLflow's, the monitor's, a model's). One package
per noun, mirroring the controller: system/ (layout: every path, unit, port and URL; and
the shared plumbing), mlflow/, train/, deploy/, monitor/, idle/. Each noun's
commands.py lists its commands (cli.py registers them). It imports only the standard
library, its own modules (relatively: on the box the package is called mlops_agent), and,
inside functions, what the command's environment provides; never controller code.
"""
