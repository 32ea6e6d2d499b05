"""The box's own plumbing, as commands: an nginx site changed safely, a reload, and the
clean-up of what nothing needs any more (gc.py)."""

from __future__ import annotations

from typing import Any

from ..cli import Command, Env, arg

NGINX_SITE = "nginx-site"
NGINX_RELOAD = "nginx-reload"
GC = "box-gc"


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def nginx_site(
    name: str, source: str | None, file: list[list[str]], drop: list[str]
) -> dict[str, Any]:
    from . import nginx

    companions: dict[str, nginx.Wanted] = {path: None for path in drop}
    for path, text_source, mode in file:
        companions[path] = (_read_text(text_source), int(mode, 8))
    content = _read_text(source) if source else None
    return {"changed": nginx.apply_site(name, content, companions)}


COMMANDS = (
    Command(
        NGINX_SITE,
        "install an nginx site file, checked",
        Env.SYSTEM,
        "system.commands:nginx_site",
        (
            arg("name"),
            arg("source", nargs="?", help="file with the content; absent: remove it"),
            arg(
                "--file",
                nargs=3,
                action="append",
                default=[],
                metavar=("PATH", "SOURCE", "MODE"),
                help="a file the site includes, changed with it: content from SOURCE, octal MODE",
            ),
            arg("--drop", action="append", default=[], help="a file removed with it"),
        ),
    ),
    Command(
        NGINX_RELOAD,
        "reload nginx's config (checked, confirmed)",
        Env.SYSTEM,
        "system.nginx:reload",
    ),
    Command(
        GC,
        "remove environments, models and bundles nothing needs any more",
        Env.SYSTEM,
        "system.gc:collect",
        (
            arg("--keep", action="append", default=[], help="a path in use (repeatable)"),
            arg("--train-days", type=float, default=7.0),
            arg("--dry-run", action="store_true"),
        ),
    ),
)
