"""A local port forwarded to a service on the box's loopback, over the pinned connection."""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator

from invoke.exceptions import ThreadException

from remote.errors import TunnelError
from remote.system.run import Connection
from remote.waiting import wait_for

READY_TIMEOUT_S = 20


@contextlib.contextmanager
def tunnel(
    conn: Connection, local_port: int, remote_port: int, *, health_path: str, what: str, hint: str
) -> Iterator[str]:
    """Forward 127.0.0.1:`local_port` to the box's 127.0.0.1:`remote_port`, wait until
    `health_path` answers 200 through it, and yield its URL; closed on exit."""
    url = f"http://127.0.0.1:{local_port}"
    try:
        forward = conn.forward_local(local_port, remote_port=remote_port, remote_host="127.0.0.1")
        forward.__enter__()
    except OSError as exc:
        raise TunnelError(
            f"Cannot listen on 127.0.0.1:{local_port} ({exc.strerror}): pick another --port."
        ) from None
    try:
        wait_for(
            lambda: _answers(f"{url}{health_path}"),
            what=f"{what} through the tunnel ({url})",
            timeout_s=READY_TIMEOUT_S,
            hint=hint,
        )
        yield url
    finally:
        # A connection the box refused (nothing listens there yet) ends its forwarding
        # thread with an error, which closing re-raises: the wait above already said it.
        with contextlib.suppress(ThreadException):
            forward.__exit__(None, None, None)


def _answers(url: str) -> bool | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return True if response.status == 200 else None
    except OSError:
        return None
