from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio

from daemon.commands import LedgerRequest
from daemon.config import IntakeSection
from daemon.events import EventBus, StatusBoard
from daemon.wiring import ShopWiring, StatePaths

WALL_TIME = datetime(2026, 11, 26, tzinfo=UTC)


def wall_text() -> str:
    return WALL_TIME.isoformat(timespec="milliseconds")


@pytest.fixture
def ledger_channel() -> Iterator[
    tuple[trio.MemorySendChannel[LedgerRequest], trio.MemoryReceiveChannel[LedgerRequest]]
]:
    send, receive = trio.open_memory_channel[LedgerRequest](16)
    with send, receive:
        yield send, receive


@pytest.fixture
def wiring(
    tmp_path: Path,
    ledger_channel: tuple[
        trio.MemorySendChannel[LedgerRequest], trio.MemoryReceiveChannel[LedgerRequest]
    ],
) -> ShopWiring:
    """A shop's wiring with a ledger channel the test answers itself (``ledger_channel``)."""
    bus = EventBus()
    state = tmp_path / "state"
    return ShopWiring(
        ledger=ledger_channel[0],
        bus=bus,
        board=StatusBoard(bus, wall_text),
        clock=trio.current_time,
        wall_clock=lambda: WALL_TIME,
        paths=StatePaths(
            state_dir=state,
            database=state / "zaiko.sqlite3",
            downloads=state / "downloads",
            uploads=state / "uploads",
            maildir_root=state / "mail",
            credentials_dir=state / "credentials",
        ),
        intake=IntakeSection(),
    )
