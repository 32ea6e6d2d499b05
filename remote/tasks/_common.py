"""What every task module shares: settings, the provider, a pinned connection, one-line errors.

A task is a thin adapter: it parses its arguments, calls one library function and prints
what happened. A `MlopsBoxError` becomes its message on one line of stderr and exit 1.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from invoke.exceptions import Exit

from remote.errors import MlopsBoxError
from remote.providers import Provider, get_provider
from remote.settings import BoxSettings, load_settings
from remote.ssh.connection import connect

# The repository root: fabric.yaml, Pulumi.yaml and sshconfig.template live there.
PROJECT_DIR = Path(__file__).resolve().parents[2]

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


def settings_of(c: Any) -> BoxSettings:
    """The box settings from Fabric's `box` config section (fabric.yaml, FABRIC_BOX_*)."""
    return load_settings(c.config.box, project_dir=PROJECT_DIR)


def box_of(c: Any) -> tuple[BoxSettings, Provider]:
    settings = settings_of(c)
    return settings, get_provider(settings)


def say(text: str) -> None:
    print(text, flush=True)


def box_connection(settings: BoxSettings, provider: Provider) -> Any:
    """A Connection to the running box (at the address its provider gives now) that trusts
    only its pinned host key."""
    return connect(settings, provider.address())
