"""What one command carries through the domain functions: the connection, the time, who asks,
and what the command did so far (events, touched SKUs, journal contexts).

A ``Tx`` lives for one command inside a batch's transaction; the engine makes a fresh one
for every command (and for the outcome an ``Undo`` records), so nothing of one command's
state can leak into the next.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from daemon.commands import FinishJob
from protocols import control


class DomainError(Exception):
    """A command refused for a reason the caller can act on; nothing of it is applied."""

    def __init__(
        self,
        code: control.ErrorCode,
        message: str,
        field: str = "",
        details: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.code: control.ErrorCode = code
        self.field = field
        self.details = tuple(details)


class Undo(Exception):
    """Roll a command back but still record an outcome (dry runs, refused all-or-nothing)."""

    def __init__(self, outcome: FinishJob) -> None:
        super().__init__("undo")
        self.outcome = outcome


class Tx:
    """One command's view of the open transaction. Not thread-safe: the ledger's thread only."""

    def __init__(self, db: sqlite3.Connection, now: Callable[[], str], actor: str) -> None:
        self.db = db
        self._clock = now
        self._now = ""
        self.actor = actor
        # events to publish after COMMIT, besides the stock events of ``touched``
        self.events: list[control.Event] = []
        # SKU → (reason, ref) of its last change; levels are read once, when the command ends
        self.touched: dict[str, tuple[str, str]] = {}
        # (reason, ref, actor) → journal_contexts.id, one context per command and cause
        self.contexts: dict[tuple[str, str, str], int] = {}

    def now(self) -> str:
        """The command's time: one instant for all it writes (read once, when first asked;
        an order's lines asked it a dozen times)."""
        if not self._now:
            self._now = self._clock()
        return self._now

    def publish(self, event: control.Event) -> None:
        self.events.append(event)

    @contextmanager
    def savepoint(self, name: str) -> Iterator[None]:
        """A part of the command that may fail on its own (one order of an intake batch): on
        an exception its writes are rolled back and what it noted (events, touched SKUs,
        journal contexts, whose rows are gone) is forgotten; the exception goes on."""
        events, touched, contexts = len(self.events), dict(self.touched), dict(self.contexts)
        self.db.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.db.execute(f"ROLLBACK TO {name}")
            self.db.execute(f"RELEASE {name}")
            del self.events[events:]
            self.touched, self.contexts = touched, contexts
            raise
        self.db.execute(f"RELEASE {name}")
