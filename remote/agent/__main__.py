"""The agent's command line: `python -m mlops_agent <command> [args]`, answering in JSON.

Every answer is one JSON object on the last line of stdout: `{"ok": true, ...}` with
the command's figures, or `{"ok": false, "kind": ..., "error": ...}` with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from . import db, mlflow_data, rds_secret, sqlite_backup
from .failure import AgentFailure


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops_agent", description="mlops-box's on-box steps.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("db-check", help="connect to MLflow's backend store")
    commands.add_parser("db-upgrade", help="create or upgrade MLflow's schema")
    commands.add_parser("mlflow-data", help="the backend store's kind and counts")
    rds_env = commands.add_parser(
        "rds-env", help="write the RDS store URI, password from the secret, to a root-only file"
    )
    rds_env.add_argument("config", help="the database's coordinates (JSON, not secret)")
    rds_env.add_argument("env_file", help="the EnvironmentFile to write (0600)")
    backup = commands.add_parser("sqlite-backup", help="copy a SQLite database consistently")
    backup.add_argument("source")
    backup.add_argument("dest")
    return parser


def _handler(args: argparse.Namespace) -> Callable[[], dict[str, Any]]:
    handlers: dict[str, Callable[[], dict[str, Any]]] = {
        "db-check": lambda: {"message": db.check(db.store_uri())},
        "db-upgrade": lambda: {"message": db.upgrade(db.store_uri())},
        "mlflow-data": mlflow_data.describe,
        "rds-env": lambda: rds_secret.write_env(args.config, args.env_file),
        "sqlite-backup": lambda: sqlite_backup.backup(args.source, args.dest),
    }
    return handlers[args.command]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        answer = {"ok": True, **_handler(args)()}
    except AgentFailure as failure:
        answer = {"ok": False, "kind": failure.kind, "error": failure.sentence}
    print(json.dumps(answer), flush=True)
    return 0 if answer["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
