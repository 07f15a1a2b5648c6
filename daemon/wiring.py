"""What a shop's actors are given: everything they reach the rest of the daemon through,
passed in (no globals), so that a test can hand an actor a virtual clock and a ledger of
its own."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

import trio

from daemon.clock import WallClock
from daemon.commands import LedgerRequest
from daemon.config import IntakeSection
from daemon.events import EventBus, StatusBoard
from daemon.transports.aio import AsyncioThread
from daemon.transports.pickup import PickupRhythm


@dataclass(frozen=True)
class StatePaths:
    """The daemon's folders (SPEC §5)."""

    state_dir: Path
    database: Path
    downloads: Path
    uploads: Path
    maildir_root: Path
    credentials_dir: Path


@dataclass(frozen=True)
class ShopWiring:
    """A shop's connections to the daemon.

    ``ledger`` is the supervisor's send end: each actor attempt gets a ``.clone()`` of its
    own, closed when that attempt ends. ``clock`` is trio's (``trio.current_time``: a
    MockClock under test), for deadlines and ``sleep_until``; ``wall_clock`` gives the date
    and hour (bulk sync hours in the shop's time zone, journal times).
    """

    ledger: trio.MemorySendChannel[LedgerRequest]
    bus: EventBus
    board: StatusBoard
    clock: Callable[[], float]
    wall_clock: WallClock
    paths: StatePaths
    intake: IntakeSection
    # where order mails are parsed: a process beside the daemon's (None: on a thread)
    mail_parsers: Executor | None = None
    # the daemon's one asyncio thread, for asyncssh (SFTP uploads)
    aio: AsyncioThread | None = None
    # each file mall's batch rhythm, by shop and upload folder: learned over an hour, it
    # outlives a reflector restarted by a settings change or a failure
    pickup_rhythms: dict[tuple[str, str, str], PickupRhythm] = field(default_factory=dict)
