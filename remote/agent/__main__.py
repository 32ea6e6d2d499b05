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

from . import db, front_door_tls, mlflow_data, sqlite_backup
from .failure import AgentFailure


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops_agent", description="mlops-box's on-box steps.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("db-check", help="connect to MLflow's backend store")
    commands.add_parser("db-upgrade", help="create or upgrade MLflow's schema")
    commands.add_parser("mlflow-data", help="the backend store's kind and counts")
    backup = commands.add_parser("sqlite-backup", help="copy a SQLite database consistently")
    backup.add_argument("source")
    backup.add_argument("dest")
    tls = commands.add_parser("front-door-cert", help="the front door's CA, key and certificate")
    tls.add_argument("--dir", required=True, help="where they live (root-only)")
    return parser


def _handler(args: argparse.Namespace) -> Callable[[], dict[str, Any]]:
    handlers: dict[str, Callable[[], dict[str, Any]]] = {
        "db-check": lambda: {"message": db.check(db.store_uri())},
        "db-upgrade": lambda: {"message": db.upgrade(db.store_uri())},
        "mlflow-data": mlflow_data.describe,
        "sqlite-backup": lambda: sqlite_backup.backup(args.source, args.dest),
        "front-door-cert": lambda: front_door_tls.ensure_certificate(args.dir),
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
