"""The kinds of transition, listed once: each one's launch settings and its steps.

A kind's steps run in the unit mlops-deploy-<revision> (runner.py): a function
(revision, transition, state) -> (outcome, reason), named here as "module:function" and
imported only when that kind runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import settings


@dataclass(frozen=True)
class Kind:
    name: str
    settings: type[settings.Settings]
    steps: str  # "module:function" in this package
    new_model: bool  # it fetches a model and builds its environment first


KINDS = {
    kind.name: kind
    for kind in (
        Kind("blue-green", settings.BlueGreen, "bluegreen:blue_green", new_model=True),
        Kind("rollback", settings.Rollback, "bluegreen:rollback", new_model=False),
        Kind("canary", settings.Canary, "canary:canary", new_model=True),
        Kind("shadow", settings.Shadow, "shadow:steps", new_model=True),
    )
}
