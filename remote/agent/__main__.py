"""The agent's command line: `python -m mlops_agent <command> [args]`, answering in JSON.

Every answer is one JSON object on the last line of stdout: `{"ok": true, ...}` with
the command's figures, or `{"ok": false, "kind": ..., "error": ...}` with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .deploy import front_door as front_door_tls
from .idle import autostop as idle_commands
from .mlflow import data as mlflow_data
from .mlflow import rds_secret, sqlite_backup
from .mlflow import store as db
from .monitor.drift import report as drift
from .monitor.drift.analysis import Options
from .system.failure import AgentFailure
from .train import jobs as train_jobs
from .train import register as train_register
from .train import start as train_start


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
    start = commands.add_parser("train-start", help="start a staged job (or say what it lacks)")
    start.add_argument("staging")
    for name, help_text in (
        ("train-finished", "record how a job's unit ended (its ExecStopPost)"),
        ("train-show", "one job's record, reconciled with systemd"),
        ("train-cancel", "stop a job's unit"),
    ):
        commands.add_parser(name, help=help_text).add_argument("job")
    commands.add_parser("train-list", help="every job's record, reconciled with systemd")
    note = commands.add_parser("train-note", help="record the model version a job registered")
    note.add_argument("job")
    note.add_argument("--registered", required=True)
    register = commands.add_parser("train-register", help="register a run's logged model")
    register.add_argument("run_id")
    register.add_argument("name")
    register.add_argument("--alias", required=True)
    register.add_argument("--logged-model", default="")
    report = commands.add_parser("drift-report", help="a drift report, logged to MLflow")
    report.add_argument("--model", default="", help="default: the live model")
    report.add_argument("--since-s", type=float, required=True)
    report.add_argument("--drift-share", type=float, default=Options.drift_share)
    report.add_argument("--max-error-rise", type=float, default=Options.max_error_rise)
    report.add_argument("--out", default="", help="keep the files here (default: not kept)")
    report.add_argument("--empty-ok", action="store_true", help="no predictions is no error")
    report.add_argument("--experiment", default=drift.EXPERIMENT)
    tls = commands.add_parser("front-door-cert", help="the front door's CA, key and certificate")
    tls.add_argument("--dir", required=True, help="where they live (root-only)")
    _idle_parsers(commands)
    _serving_commands(commands)
    return parser


def _serving_commands(commands: Any) -> None:
    begin = commands.add_parser("deploy-begin", help="record a new transition, or refuse")
    begin.add_argument("kind", choices=("blue-green", "rollback", "canary", "shadow"))
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
    launch.add_argument("--steps", default="", help="a canary's weights: 5,25,50,100")
    launch.add_argument("--min-requests", type=int, default=1)
    launch.add_argument("--max-p99-ms", type=float, default=0.0)
    launch.add_argument("--max-duration", type=float, default=0.0)
    launch.add_argument("--sample", type=float, default=100.0, help="shadow: percent copied")
    launch.add_argument("--duration", type=float, default=0.0, help="shadow: seconds, 0: no end")
    run = commands.add_parser("deploy-run", help="the transition's steps (in mlops-deploy)")
    run.add_argument("revision", type=int)
    retire = commands.add_parser("retire", help="stop a slot that lost its traffic (timer)")
    retire.add_argument("slot")
    retire.add_argument("revision", type=int)
    end = commands.add_parser("shadow-end", help="mirror off, then the shadow slot stopped")
    end.add_argument("revision", type=int, nargs="?", help="the timer's: only this shadow")
    end.add_argument("--by", default="the shadow's timer")
    end.add_argument("--reason", default="its --duration was over")
    shadow = commands.add_parser("shadow-report", help="the shadow against live, to MLflow")
    shadow.add_argument("--tolerance", type=float, required=True)
    shadow.add_argument("--out", default="", help="keep the files here (default: not kept)")
    for name, help_text in (
        ("deploy-promote", "a running canary's candidate live, or what shadow to promote"),
        ("deploy-abort", "end a running canary (100% stable first) or shadow (mirror off)"),
    ):
        commands.add_parser(name, help=help_text).add_argument("--by", required=True)
    commands.add_parser("serving-boot", help="at boot: close what the restart interrupted")
    stop = commands.add_parser("deploy-stop", help="stop the router and every slot")
    stop.add_argument("--by", required=True)
    commands.add_parser("deploy-status", help="the deploy state and the units")
    commands.add_parser("deploy-history", help="every deploy, rollback and stop")
    site = commands.add_parser("nginx-site", help="install an nginx site file, checked")
    site.add_argument("name")
    site.add_argument("source", nargs="?", help="file with the content; absent: remove it")
    site.add_argument(
        "--file",
        nargs=3,
        action="append",
        default=[],
        metavar=("PATH", "SOURCE", "MODE"),
        help="a file the site includes, changed with it: its content from SOURCE, octal MODE",
    )
    site.add_argument("--drop", action="append", default=[], help="a file removed with it")
    commands.add_parser("nginx-reload", help="reload nginx's config (checked, confirmed)")
    commands.add_parser("serve", help="serve a model slot (the model's Python)")


def _serving(args: argparse.Namespace) -> dict[str, Any]:
    """The serving commands, imported only when one runs."""
    from .deploy import control as serving
    from .deploy import transition
    from .system import nginx

    if args.command == "deploy-begin":
        return transition.begin(args.kind, args.model, args.holder, args.by)
    if args.command == "model-fetch":
        from .deploy import models as registry

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
            "sample": args.sample,
            "duration": args.duration,
        }
        if args.steps:
            settings.update(
                steps=[int(step) for step in args.steps.split(",")],
                min_requests=args.min_requests,
                max_p99_ms=args.max_p99_ms,
                max_duration=args.max_duration,
            )
        return transition.launch(args.revision, settings)
    if args.command == "deploy-run":
        return serving.run(args.revision)
    if args.command == "deploy-promote":
        return serving.promote(args.by)
    if args.command == "deploy-abort":
        return serving.abort(args.by)
    if args.command == "shadow-end":
        from .deploy.kinds import shadow

        return shadow.end(args.by, args.reason, args.revision)
    if args.command == "shadow-report":
        from .monitor.shadow import report as shadow_report

        return shadow_report.report(args.tolerance, out=args.out)
    if args.command == "retire":
        return transition.retire(args.slot, args.revision)
    if args.command == "deploy-stop":
        return serving.stop(args.by)
    if args.command == "serving-boot":
        return serving.boot()
    if args.command == "deploy-status":
        return serving.status()
    if args.command == "deploy-history":
        return serving.history()
    if args.command == "nginx-site":
        companions: dict[str, nginx.Wanted] = {path: None for path in args.drop}
        for path, source, mode in args.file:
            companions[path] = (_read_text(source), int(mode, 8))
        content = _read_text(args.source) if args.source else None
        return {"changed": nginx.apply_site(args.name, content, companions)}
    if args.command == "nginx-reload":
        return nginx.reload()
    from .deploy.slot_server import app as serve

    return serve.serve()


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _idle_parsers(commands: Any) -> None:
    # Every name and path comes from the controller (remote/contract.py), the one place
    # they are kept; the timer's unit passes them the same way.
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--dir", required=True, help="the auto-stop's files")
    setter = commands.add_parser("idle-set", parents=[where], help="set the idle auto-stop")
    choice = setter.add_mutually_exclusive_group(required=True)
    choice.add_argument("--idle-minutes", type=int)
    choice.add_argument("--off", action="store_true")
    setter.add_argument("--ignore-serving", action="store_true")
    commands.add_parser("idle-status", parents=[where], help="the auto-stop's setting and clock")
    checker = commands.add_parser(
        "idle-check", parents=[where], help="power the box off if it is idle long enough"
    )
    checker.add_argument("--ssh-port", type=int, required=True)
    checker.add_argument("--unit", action="append", default=[], help="a busy unit pattern")
    checker.add_argument("--router-log", required=True)
    checker.add_argument("--keepalive", required=True)
    checker.add_argument("--dry-run", action="store_true", help="answer, change nothing")
    checker.add_argument("--at", type=datetime.fromisoformat, help="with --dry-run: decide at")


def _handler(args: argparse.Namespace) -> Callable[[], dict[str, Any]]:
    handlers: dict[str, Callable[[], dict[str, Any]]] = {
        "db-check": lambda: {"message": db.check(db.store_uri())},
        "db-upgrade": lambda: {"message": db.upgrade(db.store_uri())},
        "mlflow-data": mlflow_data.describe,
        "rds-env": lambda: rds_secret.write_env(args.config, args.env_file),
        "sqlite-backup": lambda: sqlite_backup.backup(args.source, args.dest),
        "train-start": lambda: train_start.start(args.staging),
        "train-finished": lambda: train_jobs.finished(args.job),
        "train-show": lambda: train_jobs.show(args.job),
        "train-cancel": lambda: train_jobs.cancel(args.job),
        "train-list": train_jobs.listing,
        "train-note": lambda: train_jobs.note(args.job, args.registered),
        "train-register": lambda: train_register.register(
            args.run_id, args.name, args.alias, args.logged_model
        ),
        "drift-report": lambda: drift.report(
            args.model,
            args.since_s,
            Options(args.drift_share, args.max_error_rise),
            out=args.out,
            empty_ok=args.empty_ok,
            experiment=args.experiment,
        ),
        "front-door-cert": lambda: front_door_tls.ensure_certificate(args.dir),
        "idle-set": lambda: idle_commands.set_autostop(
            args.dir, None if args.off else args.idle_minutes, args.ignore_serving, _now()
        ),
        "idle-status": lambda: idle_commands.status(args.dir, _now()),
        "idle-check": lambda: idle_commands.check(
            args.dir,
            _at(args),
            ssh_port=args.ssh_port,
            unit_patterns=args.unit,
            router_log=args.router_log,
            keepalive=args.keepalive,
            dry_run=args.dry_run,
        ),
    }
    return handlers.get(args.command, lambda: _serving(args))


def _now() -> datetime:
    return datetime.now(UTC)


def _at(args: argparse.Namespace) -> datetime:
    """The check's time: now, or (only in a dry run, which changes nothing) the one asked."""
    if args.at is None:
        return _now()
    if not args.dry_run:
        raise AgentFailure("bad-value", "--at is for --dry-run only: a real check runs now.")
    at: datetime = args.at
    return at if at.tzinfo else at.replace(tzinfo=UTC)


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
