"""A SKU's sales pace: the units of it that orders took in the last ``PACE_WINDOW_S`` seconds
(counted from when zaiko took each order in).

A shop that meets a change late (a sale elsewhere reaches zaiko only with its order mail; a
stock file only at the mall's batch) is not shown the units a SKU's pace would sell in that
time (``protocols.quantity.floor``): they would be sold twice. The pace is kept in
``recent_sales``, one row per SKU an order line took stock of (a set's line: the set and each
of its children), at the time zaiko took the order in (one placed before the window is left
out); each row leaves after the window and its SKU is marked, so its targets rise again as
its sales calm down.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from daemon.ledger import outbox
from daemon.ledger.tx import Tx
from protocols.quantity import PACE_WINDOW_S


def seconds(moment: str) -> float:
    """A journal time (ISO 8601) as POSIX seconds."""
    return datetime.fromisoformat(moment).timestamp()


def record(tx: Tx, sold: Sequence[tuple[str, int]], ordered_at: str) -> None:
    """An order line placed at ``ordered_at`` took these (SKU, units): counted from now, when
    zaiko learned of it (the other shops learn of it from now on), unless it was placed
    before the window (a backlog taken in at once, an order applied by hand later: no pace)."""
    now = seconds(tx.now())
    try:
        placed = seconds(ordered_at)
    except ValueError:  # a time no mall should send: taken as placed now
        placed = now
    if placed > now - PACE_WINDOW_S:
        tx.db.executemany(
            "INSERT INTO recent_sales(at, sku, units) VALUES (?, ?, ?)",
            [(now, code, units) for code, units in sold],
        )


def expire(tx: Tx) -> float | None:
    """Drop the sales older than the window and mark their SKUs; the seconds until the next
    one leaves (None: none left)."""
    now = seconds(tx.now())
    cutoff = now - PACE_WINDOW_S
    calmer = [
        code
        for (code,) in tx.db.execute(
            "SELECT DISTINCT sku FROM recent_sales WHERE at <= ?", (cutoff,)
        ).fetchall()
    ]
    if calmer:
        sets = [  # a set's pace follows its children's
            parent
            for (parent,) in tx.db.execute(
                "SELECT DISTINCT parent FROM set_components WHERE child IN "
                "(SELECT sku FROM recent_sales WHERE at <= ?)",
                (cutoff,),
            )
        ]
        tx.db.execute("DELETE FROM recent_sales WHERE at <= ?", (cutoff,))
        outbox.mark(tx, [*calmer, *sets])
    oldest: float | None = tx.db.execute("SELECT min(at) FROM recent_sales").fetchone()[0]
    if oldest is None:
        return None
    return max(0.0, oldest + PACE_WINDOW_S - now)
