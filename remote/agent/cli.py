"""The agent's one dispatch: each noun's `commands.py` lists its commands as `Command`
records; this module registers them on one parser and runs the chosen one's handler.

Every answer is one JSON object on the last line of stdout: `{"ok": true, ...}` with
the command's figures, or `{"ok": false, "kind": ..., "error": ...}` with exit status 1.
A name no record lists, or a record whose handler does not exist, is a usage error
(argparse's exit status 2): nothing runs in its place.
"""

from __future__ import annotations

import argparse
import enum
import importlib
import json
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .system.failure import AgentFailure

PROG = "mlops_agent"
KIND_UNEXPECTED = "unexpected"
_MAX_DETAIL = 300
# The agent's own package: mlops_agent on the box, remote.agent in the repository.
PACKAGE = __package__ or PROG
# Each noun's commands module, in the order `--help` lists them.
NOUNS = ("system", "mlflow", "train", "deploy", "monitor", "idle")


class Env(enum.Enum):
    """The Python a command runs in, and so what its handler may import: the box's own
    (the standard library only), the MLflow server's virtualenv, the monitor's, or a
    model's (a training job's is one too: the project's requirements and MLflow)."""

    SYSTEM, MLFLOW, MONITOR, MODEL = "system", "mlflow", "monitor", "model"


@dataclass(frozen=True)
class Arg:
    """One `add_argument(*flags, **options)`."""

    flags: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)


def arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


@dataclass(frozen=True)
class OneOf:
    """Arguments of which exactly one (or, not required, at most one) is given."""

    args: tuple[Arg, ...]
    required: bool = True


@dataclass(frozen=True)
class Command:
    """One agent command: its name, its help line, the Python it runs in, its arguments,
    and its handler as "module:function" inside the agent package, imported only when
    the command runs. The handler is called with the parsed arguments as keywords."""

    name: str
    help: str
    env: Env
    handler: str
    args: tuple[Arg | OneOf, ...] = ()


def commands(nouns: Iterable[str] = NOUNS) -> dict[str, tuple[Command, ...]]:
    """Every noun's command records, by noun."""
    return {
        noun: tuple(importlib.import_module(f"{PACKAGE}.{noun}.commands").COMMANDS)
        for noun in nouns
    }


def resolve(command: Command) -> Callable[..., dict[str, Any]]:
    """The command's handler; LookupError when the record names none that exists."""
    module_name, _, function = command.handler.partition(":")
    try:
        module = importlib.import_module(f"{PACKAGE}.{module_name}")
        handler: Callable[..., dict[str, Any]] = getattr(module, function)
    except (ImportError, AttributeError) as exc:
        raise LookupError(f"`{command.name}` names no handler ({command.handler}): {exc}") from exc
    return handler


def parser(by_noun: Mapping[str, Iterable[Command]] | None = None) -> argparse.ArgumentParser:
    """One parser: a subcommand per record (default: every noun's), listed in --help once,
    grouped by noun."""
    by_noun = commands() if by_noun is None else by_noun
    listing = []
    for noun, records in by_noun.items():
        listing.append(f"{noun}:")
        listing += [f"  {record.name:<18} {record.help}" for record in records]
    top = argparse.ArgumentParser(
        prog=PROG,
        description="mlops-box's on-box steps, each answering in JSON.",
        epilog="commands, by noun:\n" + "\n".join(listing),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = top.add_subparsers(dest="command", required=True, metavar="<command>")
    seen: set[str] = set()
    for records in by_noun.values():
        for record in records:
            if record.name in seen:
                raise ValueError(f"two agent commands are named {record.name}")
            seen.add(record.name)
            subparsers.add_parser(record.name, description=record.help, parents=[options(record)])
    return top


def options(record: Command) -> argparse.ArgumentParser:
    """A parser of the record's arguments alone: its subcommand's parent."""
    own = argparse.ArgumentParser(add_help=False)
    for item in record.args:
        if isinstance(item, OneOf):
            group = own.add_mutually_exclusive_group(required=item.required)
            for one in item.args:
                group.add_argument(*one.flags, **one.options)
        else:
            own.add_argument(*item.flags, **item.options)
    return own


def main(
    argv: list[str] | None = None, by_noun: Mapping[str, Iterable[Command]] | None = None
) -> int:
    by_noun = commands() if by_noun is None else by_noun
    top = parser(by_noun)
    args = vars(top.parse_args(argv))
    name = args.pop("command")
    record = next(r for records in by_noun.values() for r in records if r.name == name)
    try:
        handler = resolve(record)
    except LookupError as exc:
        top.error(str(exc))
    try:
        answer = {"ok": True, **handler(**args)}
    except AgentFailure as failure:
        answer = {"ok": False, "kind": failure.kind, "error": failure.sentence}
    except Exception as exc:  # a fault the command did not foresee: still one answer
        traceback.print_exc()  # stderr: the unit's journal keeps the whole of it
        answer = {"ok": False, "kind": KIND_UNEXPECTED, "error": unexpected(name, exc)}
    print(json.dumps(answer), flush=True)
    return 0 if answer["ok"] else 1


def unexpected(command: str, exc: Exception) -> str:
    """One line for an exception no command turned into an AgentFailure."""
    return f"The box's agent failed in `{command}`: {describe(exc)}"


def describe(exc: Exception) -> str:
    """The exception's type and message on one line, cut short."""
    detail = " ".join(f"{type(exc).__name__}: {exc}".split())
    return detail if len(detail) <= _MAX_DETAIL else detail[: _MAX_DETAIL - 3] + "..."
