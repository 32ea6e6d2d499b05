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

from . import db, mlflow_data, sqlite_backup
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
    _serving_commands(commands)
    return parser


def _serving_commands(commands: Any) -> None:
    begin = commands.add_parser("deploy-begin", help="record a new transition, or refuse")
    begin.add_argument("kind", choices=("blue-green", "rollback"))
    begin.add_argument("--model", default="")
    begin.add_argument("--holder", type=int, required=True, help="pid of the SSH session")
    begin.add_argument("--by", required=True)
    fetch = commands.add_parser("model-fetch", help="resolve and copy a model (MLflow's Python)")
    fetch.add_argument("uri")
    fetch.add_argument("--revision", type=int, required=True)
    abandon = commands.add_parser("deploy-abandon", help="end a transition that never ran")
    abandon.add_argument("revision", type=int)
    abandon.add_argument("--reason", required=True)
    launch = commands.add_parser("deploy-launch", help="run the transition as a unit")
    launch.add_argument("revision", type=int)
    launch.add_argument("--env", default="")
    launch.add_argument("--bake", type=float, default=0.0)
    launch.add_argument("--termination-wait", type=float, default=600.0)
    launch.add_argument("--max-error-rate", type=float, default=0.01)
    run = commands.add_parser("deploy-run", help="the transition's steps (in mlops-deploy)")
    run.add_argument("revision", type=int)
    retire = commands.add_parser("retire", help="stop a slot that lost its traffic (timer)")
    retire.add_argument("slot")
    retire.add_argument("revision", type=int)
    stop = commands.add_parser("deploy-stop", help="stop the router and every slot")
    stop.add_argument("--by", required=True)
    commands.add_parser("deploy-status", help="the deploy state and the units")
    commands.add_parser("deploy-history", help="every deploy, rollback and stop")
    site = commands.add_parser("nginx-site", help="install an nginx site file, checked")
    site.add_argument("name")
    site.add_argument("source", nargs="?", help="file with the content; absent: remove it")
    commands.add_parser("serve", help="serve a model slot (the model's Python)")


def _serving(args: argparse.Namespace) -> dict[str, Any]:
    """The serving commands, imported only when one runs."""
    from . import bluegreen, nginx, serving, transition

    if args.command == "deploy-begin":
        return transition.begin(args.kind, args.model, args.holder, args.by)
    if args.command == "model-fetch":
        from . import registry

        model = registry.fetch(args.uri)
        transition.record_model(args.revision, model)
        return {"model": model}
    if args.command == "deploy-abandon":
        return transition.abandon(args.revision, args.reason)
    if args.command == "deploy-launch":
        settings = {
            "env": args.env,
            "bake": args.bake,
            "termination_wait": args.termination_wait,
            "max_error_rate": args.max_error_rate,
        }
        return transition.launch(args.revision, settings)
    if args.command == "deploy-run":
        return bluegreen.run(args.revision)
    if args.command == "retire":
        return transition.retire(args.slot, args.revision)
    if args.command == "deploy-stop":
        return serving.stop(args.by)
    if args.command == "deploy-status":
        return serving.status()
    if args.command == "deploy-history":
        return serving.history()
    if args.command == "nginx-site":
        content = None
        if args.source:
            with open(args.source, encoding="utf-8") as handle:
                content = handle.read()
        return {"changed": nginx.apply_site(args.name, content)}
    from . import serve

    return serve.serve()


def _handler(args: argparse.Namespace) -> Callable[[], dict[str, Any]]:
    handlers: dict[str, Callable[[], dict[str, Any]]] = {
        "db-check": lambda: {"message": db.check(db.store_uri())},
        "db-upgrade": lambda: {"message": db.upgrade(db.store_uri())},
        "mlflow-data": mlflow_data.describe,
        "sqlite-backup": lambda: sqlite_backup.backup(args.source, args.dest),
    }
    return handlers.get(args.command, lambda: _serving(args))


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
