"""What every task module shares: settings, the provider, a pinned connection, one-line errors.

A task is a thin adapter: it parses its arguments, calls one library function and prints
what happened. A `MlopsBoxError` becomes its message on one line of stderr and exit 1, and
so does an argument Invoke cannot convert (declare every task with `task` from here).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import fabric
import fabric.main
from invoke.exceptions import Exit, ParseError
from invoke.parser import Argument

from remote.errors import MlopsBoxError
from remote.providers import Provider, get_provider
from remote.settings import BoxSettings, load_settings
from remote.ssh.connection import box_connection
from remote.ssh.tunnel import tunnel

# The repository root: fabric.yaml, Pulumi.yaml and sshconfig.template live there.
PROJECT_DIR = Path(__file__).resolve().parents[2]

HELP_FLAGS = ("--help", "-h")
P = ParamSpec("P")
R = TypeVar("R")


def user_errors(body: Callable[P, R]) -> Callable[P, R]:
    """Turn a MlopsBoxError into one line on stderr and exit 1; other errors keep tracebacks."""

    @functools.wraps(body)  # invoke reads the signature and docstring through __wrapped__
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return body(*args, **kwargs)
        except MlopsBoxError as exc:
            raise Exit(" ".join(str(exc).split()), code=1) from None

    return wrapper


class NumberArgument(Argument):
    """An int- or float-typed task argument whose bad value is one line, not a traceback.

    Invoke casts `--ssh-timeout abc` with int() (and `--bake abc` with float()) while
    parsing and lets the ValueError escape; only a ParseError is printed as one line and
    exit 1.
    """

    def set_value(self, value: Any, cast: bool = True) -> None:
        try:
            super().set_value(value, cast=cast)
        except ValueError:
            flag = f"--{self.names[0]}"
            number = "a whole number" if self.kind is int else "a number"
            raise ParseError(
                f"{flag} is {value!r}: give {number}, such as the default ({flag} {self.default})."
            ) from None


class CheckedTask(fabric.Task):
    """A Fabric task whose int and float arguments are `NumberArgument`s, and whose
    `--help` shows its help even where a positional argument is still missing (Invoke's
    parser hands the next word to a missing positional first, `--help` included)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if any(kwargs.get(name) in HELP_FLAGS for name in self.positional):
            _print_help(self)
            return None
        return super().__call__(*args, **kwargs)

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        arguments: list[Argument] = super().get_arguments(ignore_unknown_help)
        return [
            NumberArgument(
                names=arg.names,
                kind=arg.kind,
                default=arg.default,
                help=arg.help,
                positional=arg.positional,
                optional=arg.optional,
                incrementable=arg.incrementable,
                attr_name=arg.attr_name,
            )
            if arg.kind in (int, float) and not arg.incrementable
            else arg
            for arg in arguments
        ]


def _print_help(task: fabric.Task) -> None:
    """What `fab --help <task>` prints, from the program that is running this task."""
    running = fabric.main.program
    names = [name for name in running.collection.task_names if running.collection[name] is task]
    if not names:
        raise Exit(f"See `fab --help {task.name}`.", code=1)
    running.print_task_help(names[0])


def task(*args: Any, **kwargs: Any) -> Any:
    """Fabric's `@task`, making `CheckedTask`s: use it for every task."""
    kwargs.setdefault("klass", CheckedTask)
    return fabric.task(*args, **kwargs)


def settings_of(c: Any) -> BoxSettings:
    """The box settings from Fabric's `box` config section (fabric.yaml, FABRIC_BOX_*)."""
    return load_settings(c.config.box, project_dir=PROJECT_DIR)


def box_of(c: Any) -> tuple[BoxSettings, Provider]:
    settings = settings_of(c)
    return settings, get_provider(settings)


def say(text: str) -> None:
    print(text, flush=True)


def hold_tunnel(
    settings: BoxSettings,
    provider: Provider,
    *,
    local_port: int,
    remote_port: int,
    health_path: str,
    what: str,
    hint: str,
    ready: Callable[[str], str],
) -> None:
    """Tunnel 127.0.0.1:`local_port` to `remote_port` on the box until Ctrl-C; say
    `ready(url)` once `health_path` answers through it."""
    try:
        with (
            box_connection(settings, provider) as conn,
            tunnel(
                conn, local_port, remote_port, health_path=health_path, what=what, hint=hint
            ) as url,
        ):
            say(ready(url))
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        say("Tunnel closed")
