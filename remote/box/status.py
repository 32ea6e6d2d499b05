"""How `fab box.status` shows a box: pure functions, so they are tested without mocks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from remote.providers.base import BoxState, State
from remote.settings import BoxSettings


def format_uptime(elapsed: timedelta) -> str:
    """`3d 4h`, `2h 13m`, `5m` or `<1m`: the two largest units are enough to read."""
    minutes = max(0, int(elapsed.total_seconds()) // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else "<1m"


def format_status(
    settings: BoxSettings,
    box: BoxState,
    now: datetime | None = None,
    extra: Sequence[tuple[str, str]] = (),
) -> str:
    """The status lines: box, state, id, type, address, uptime, then `extra` rows."""
    now = now or datetime.now(UTC)
    uptime = "-"
    if box.state is State.RUNNING and box.started_at is not None:
        started = box.started_at
        # A naive time from a provider is UTC; an aware one is shown in UTC too.
        started = started.replace(tzinfo=UTC) if started.tzinfo is None else started.astimezone(UTC)
        uptime = f"{format_uptime(now - started)} (since {started:%Y-%m-%d %H:%M} UTC)"
    rows = [
        ("box", f"{settings.name} ({settings.provider}, stack {settings.stack})"),
        ("state", box.state.value),
        ("id", box.box_id),
        ("type", box.instance_type or "-"),
        ("address", box.address or "-"),
        ("uptime", uptime),
        *extra,
    ]
    return "\n".join(f"{label + ':':<10} {value}" for label, value in rows)
