"""Entry point for `fab`: the tasks live in remote/tasks (see `fab -l`)."""

from remote.tasks import ns

__all__ = ["ns"]
