"""What serving needs on the box before a first deploy: nginx, the slot user and unit
(which keeps the slots away from MLflow), the agent and the unit that restores serving
at boot.

Idempotent like the rest: probed first, changed only where it differs, silent on a box
that has it all.
"""

from __future__ import annotations

from collections.abc import Callable

from remote import contract
from remote.agent.deploy import commands as deploy_cmds
from remote.changes import Changed
from remote.errors import DeployError
from remote.system import systemd, templates
from remote.system.agent import SYSTEM_PYTHON, ensure_agent, unit_command
from remote.system.bootstrap import ensure_packages
from remote.system.nginx import ensure_nginx
from remote.system.run import Connection, check, run, sh, sudo

UNIT_TEMPLATE = "mlops-model@.service.j2"
BOOT_TIMEOUT_S = 120
ROOT_DIRS = (
    contract.DEPLOY_DIR,
    contract.SLOTS_DIR,
    contract.MODELS_DIR,
    contract.MODEL_ENVS_DIR,
)


# A model slot never needs MLflow (the deploy fetched its model as root): the kernel
# refuses the slot user's connections to MLflow's port, so a model's code cannot read
# the registry or move `champion`. The rule is put back before every slot start (a boot
# empties the table), checked first so it is there once.
PACKAGES = ("iptables",)
_NO_MLFLOW = (
    f"OUTPUT -o lo -p tcp --dport {contract.MLFLOW_PORT} -m owner --uid-owner "
    f"{contract.SLOT_USER} -j REJECT --reject-with tcp-reset"
)


def no_mlflow_command() -> str:
    """The slot unit's ExecStartPre (as root): the rule, added unless it is there."""
    return (
        f"/bin/sh -c 'iptables -w 10 -C {_NO_MLFLOW} 2>/dev/null || iptables -w 10 -I {_NO_MLFLOW}'"
    )


def render_slot_unit() -> str:
    return templates.render(
        UNIT_TEMPLATE,
        user=contract.SLOT_USER,
        slots_dir=contract.SLOTS_DIR,
        log_dir=contract.PREDICTION_LOG_DIR,
        no_mlflow=no_mlflow_command(),
    )


def render_boot_unit() -> str:
    return templates.render(
        f"{contract.SERVING_BOOT_UNIT}.j2",
        state_file=contract.DEPLOY_STATE_FILE,
        exec_start=unit_command(deploy_cmds.BOOT, python=SYSTEM_PYTHON),
        timeout_s=BOOT_TIMEOUT_S,
    )


def _layout_script() -> str:
    user, logs = contract.SLOT_USER, contract.PREDICTION_LOG_DIR
    return (
        "set -e; "
        f"id -u {user} >/dev/null 2>&1 || useradd --system --user-group --no-create-home "
        f"--home-dir /nonexistent --shell /usr/sbin/nologin {user}; "
        f"install -d -m 755 -o root -g root {' '.join(ROOT_DIRS)}; "
        f"install -d -m 755 {contract.LOG_DIR}; "
        f"install -d -m 750 -o {user} -g {user} {logs}"
    )


def _layout_ok(conn: Connection) -> bool:
    user, logs = contract.SLOT_USER, contract.PREDICTION_LOG_DIR
    probe = (
        f"id -u {user} >/dev/null 2>&1 && "
        + " && ".join(f"[ -d {d} ]" for d in ROOT_DIRS)
        + f' && [ "$(stat -c %U {logs} 2>/dev/null)" = {user} ]'
    )
    return bool(check(conn, probe).ok)


def ensure_serving(conn: Connection, *, say: Callable[[str], None] = print) -> Changed:
    """nginx (nothing public), the slot user and directories, the slot unit, the agent
    and the unit that reconciles serving at boot (enabled, not started: it runs at boot)."""
    changed = ensure_nginx(conn, say=say)
    changed.merge(ensure_packages(conn, PACKAGES, say=say, error=DeployError))
    if not _layout_ok(conn):
        run(conn, sudo(sh(_layout_script())), what="make the serving layout", error=DeployError)
        changed.add(f"user {contract.SLOT_USER} and serving directories")
    changed.merge(
        systemd.ensure_unit(
            conn,
            contract.SLOT_UNIT_TEMPLATE,
            render_slot_unit(),
            start=False,
            enable=False,
            error=DeployError,
        )
    )
    changed.merge(ensure_agent(conn))
    return changed.merge(
        systemd.ensure_unit(
            conn,
            contract.SERVING_BOOT_UNIT,
            render_boot_unit(),
            start=False,
            error=DeployError,
        )
    )
