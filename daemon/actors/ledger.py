"""The stock ledger: the one task that owns the database.

Requests queue on a bounded channel. Whatever is queued when the worker thread is free is
applied as one transaction (group commit), acknowledged only after COMMIT returned, then
published. Replies use ``send_nowait`` on each caller's one-shot channel, so a caller that
went away can never stall the ledger. When every sender is closed the ledger drains what is
queued, closes the database and returns; a database error propagates and stops the daemon.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import trio

from daemon.commands import LedgerRequest
from daemon.events import EventBus
from daemon.ledger.engine import Engine

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BATCH = 2000
PACE_SLACK_S = 1.0  # a batch after a sale left the pace: its wall time is past the cutoff


async def ledger(
    database: Path,
    requests: trio.MemoryReceiveChannel[LedgerRequest],
    bus: EventBus,
    now: Callable[[], str],
    *,
    inline: bool = False,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``inline``: run the engine on trio's thread (tests with a virtual clock: while the
    ledger works on a thread, an autojump clock sees everyone asleep and jumps on)."""
    # a limiter of its own: however many threads others hold, the ledger always gets one
    own_thread = trio.CapacityLimiter(1)

    async def on_thread(fn: Callable[..., T], *args: object) -> T:
        if inline:
            await trio.lowlevel.checkpoint()
            return fn(*args)
        return await trio.to_thread.run_sync(fn, *args, limiter=own_thread)

    engine = await on_thread(Engine, database, now)
    try:
        task_status.started()
        async with requests:
            while True:
                batch: list[LedgerRequest] = []
                try:
                    # marked targets left to compute: an empty batch when nobody waits
                    if not engine.outbox_behind:
                        # a sale leaving a SKU's pace may raise its targets: a batch then
                        due = engine.pace_due_s
                        with trio.move_on_after(math.inf if due is None else due + PACE_SLACK_S):
                            batch.append(await requests.receive())
                    while len(batch) < MAX_BATCH:
                        batch.append(requests.receive_nowait())
                except trio.WouldBlock:
                    pass
                except trio.EndOfChannel:
                    if not batch:
                        break
                commands = [(request.command, request.actor) for request in batch]
                try:
                    # not abandoned on cancel: a batch that started finishes or rolls back
                    results, events = await on_thread(engine.apply_batch, commands)
                except BaseException:
                    # the ledger fails: its callers learn it at once instead of waiting
                    for request in batch:
                        request.reply.close()
                    raise
                for request, result in zip(batch, results, strict=True):
                    try:
                        request.reply.send_nowait(result)
                    except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                        log.debug(
                            "caller of %s left before its reply", type(request.command).__name__
                        )
                    request.reply.close()
                bus.publish(events)
    finally:
        bus.close()
        with trio.CancelScope(shield=True):
            await on_thread(engine.close)
