"""Providers: the only cloud-specific code outside infra/.

A provider answers four questions and nothing more (see `base.Provider`). `get_provider`
picks one from the settings.
"""

from __future__ import annotations

from remote.errors import ConfigError
from remote.providers.base import BoxState, Provider, State
from remote.settings import BoxSettings

__all__ = ["BoxState", "Provider", "State", "get_provider"]


def get_provider(settings: BoxSettings) -> Provider:
    """Return the provider named by `settings.provider`."""
    if settings.provider == "aws":
        from remote.providers.aws import AwsProvider

        return AwsProvider(settings)
    if settings.provider == "local":
        from remote.providers.local import LocalProvider

        return LocalProvider(settings)
    raise ConfigError(
        f"Unknown box provider {settings.provider!r}: set box.provider in fabric.yaml "
        "(or FABRIC_BOX_PROVIDER) to 'aws' or 'local'."
    )
