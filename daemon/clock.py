"""Wall-clock time: as the daemon reads it (an aware UTC datetime, from a function passed to
whatever needs it, so that tests can set it) and as the journal writes it (ISO 8601 UTC,
milliseconds)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

WallClock = Callable[[], datetime]


def utc_wall_clock() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def stamps(wall_clock: WallClock) -> Callable[[], str]:
    """The journal's ``now()``: the wall clock's time as text."""
    return lambda: stamp(wall_clock())


def utc_now() -> str:
    return stamp(utc_wall_clock())
