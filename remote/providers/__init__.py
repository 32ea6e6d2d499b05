"""Providers: the only cloud-specific code outside infra/.

A provider answers the verbs of `base.Provider` and nothing more. `get_provider` picks
one from the settings; each is imported only when picked, so `fab -l` loads no cloud SDK.
"""

from __future__ import annotations

import importlib

from remote.errors import ConfigError
from remote.providers.base import (
    AccessChange,
    BoxState,
    Database,
    HostKeyEvidence,
    Provider,
    State,
)
from remote.settings import PROVIDERS, BoxSettings

__all__ = [
    "AccessChange",
    "BoxState",
    "Database",
    "HostKeyEvidence",
    "Provider",
    "State",
    "get_provider",
]

# box.provider -> the module and class that implement it.
_IMPLEMENTATIONS = {
    "aws": ("remote.providers.aws", "AwsProvider"),
    "local": ("remote.providers.local", "LocalProvider"),
}
assert set(_IMPLEMENTATIONS) == set(PROVIDERS)


def get_provider(settings: BoxSettings) -> Provider:
    """Return the provider named by `settings.provider`."""
    if settings.provider not in _IMPLEMENTATIONS:
        raise ConfigError(
            f"Unknown box provider {settings.provider!r}: set box.provider in fabric.yaml "
            f"(or FABRIC_BOX_PROVIDER) to one of {', '.join(PROVIDERS)}."
        )
    module, name = _IMPLEMENTATIONS[settings.provider]
    provider: Provider = getattr(importlib.import_module(module), name)(settings)
    return provider
