"""Code that runs on the box itself: the agent.

Shipped to the box as one zip bundle named by its content hash and run there as
`python -m mlops_agent <command>` (see `remote/system/agent.py`), by the box's own Python
or, for the database steps, by the MLflow environment's. So it imports only the standard
library, its own modules (relatively: on the box the package is called mlops_agent), and,
inside functions, what that environment provides; never controller code.
"""
