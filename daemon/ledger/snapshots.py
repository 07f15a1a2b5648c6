"""Read-only snapshots for big reads (the stock download; a bulk sync's full push).

Each runs on a connection of its own, opened read-only on a worker thread, inside one read
transaction: a WAL snapshot of the moment it began, so writing a large file never holds up
the ledger, and the ledger's commits meanwhile do not tear what is read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from daemon.commands import PushItem
from daemon.ledger import outbox
from protocols.tempostar import StockRecord


@contextmanager
def snapshot(database: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection inside one read transaction, closed at exit."""
    # as a URI, so that a path with # or ? in it stays one path
    db = sqlite3.connect(f"{database.absolute().as_uri()}?mode=ro", uri=True)
    try:
        db.execute("BEGIN")
        yield db
    finally:
        db.close()


def stock_records(db: sqlite3.Connection) -> Iterator[StockRecord]:
    """Every SKU with stock of its own, by code: (code, expected, reserve, actual or None
    when the actual count was never set) — what the TEMPOSTAR download writes."""
    yield from db.execute(
        "SELECT s.sku, s.expected, s.reserve, CASE WHEN s.actual != 0 THEN s.actual END "
        "FROM stock s ORDER BY s.sku"
    )


class OutboxSnapshot:
    """One shop's linked SKUs and their targets as of one moment (a bulk sync's full push),
    read page by page on worker threads from a read-only connection of its own."""

    def __init__(self, database: Path, shop: str) -> None:
        self._shop = shop
        # opened on one worker thread, read on others: never two at once
        self._db = sqlite3.connect(
            f"{database.absolute().as_uri()}?mode=ro", uri=True, check_same_thread=False
        )
        try:
            self._db.execute("BEGIN")
            # the read transaction starts with the first read
            self._db.execute("SELECT count(*) FROM outbox WHERE shop = ?", (shop,)).fetchone()
        except BaseException:
            self._db.close()
            raise

    def page(self, after: str, limit: int) -> list[PushItem]:
        return outbox.push_items(self._db, self._shop, after, limit)

    def close(self) -> None:
        self._db.close()
