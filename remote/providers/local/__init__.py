"""The local provider: a systemd-nspawn box on this machine, in its own network namespace."""

from remote.providers.local.provider import LocalProvider

__all__ = ["LocalProvider"]
