"""The drift audit of one shop (``ledger.audit``): what its mall shows, read back through the
mall's stock API a batch at a time, handed to the ledger, which compares it with the targets
and finishes the audit job.

It runs an audit when one is asked for (``AuditRequested``, from ``zaiko audit``), at each
``audit_hours`` hour in the shop's time zone (fixing when ``audit_fix``), and at start for
any audit job of the shop left running (asked while it was not running, or cut short). The
reads are paced by the shop's token bucket, so an urgent push waits one call at most.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import trio

from daemon.actors.reflector import clock_deadline, next_bulk_time, on_worker_thread
from daemon.clock import WallClock, stamp
from daemon.commands import (
    AuditDone,
    AuditJobs,
    AuditSeen,
    CreateJob,
    LedgerRequest,
    LedgerUnavailable,
    PushItem,
    RunningAudits,
    call,
)
from daemon.events import EventBus
from daemon.ledger.snapshots import OutboxSnapshot
from daemon.transports.stock import ReadFailed
from protocols import control
from protocols.settings import ShopSettings

log = logging.getLogger(__name__)


class StockReader(Protocol):
    async def read(
        self, items: list[tuple[str, tuple[str, ...]]]
    ) -> list[tuple[str, tuple[str, ...], int | None]]: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class AuditSettings:
    batch: int = 1000  # items read and handed to the ledger at a time
    # where the snapshot of linked SKUs is read (a test with a virtual clock runs it inline)
    off_thread: Callable[..., Awaitable[Any]] = field(default=on_worker_thread)


async def auditor(
    shop: ShopSettings,
    connect: Callable[[], StockReader],
    bus: EventBus,
    clock: Callable[[], float],
    wall_clock: WallClock,
    settings: AuditSettings,
    database: Path,
    ledger: trio.MemorySendChannel[LedgerRequest],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    reader = await trio.to_thread.run_sync(connect)  # reads credential files
    subscription = bus.subscribe(frozenset({"audit"}))
    actor = f"shop:{shop.id}"
    try:
        task_status.started()
        left = await call(ledger, RunningAudits(shop=shop.id), actor, AuditJobs)
        if isinstance(left, control.Error):
            raise RuntimeError(f"cannot read the audit jobs: {left.message}")
        handled: set[int] = set()  # a job asked for as the auditor started comes twice
        for job, fix in left.jobs:
            handled.add(job)
            await _audit(shop, wall_clock, reader, settings, database, ledger, job, fix)
        previous = wall_clock()
        while True:
            at = next_bulk_time(max(previous, wall_clock()), shop.audit_hours, shop.timezone)
            deadline = clock_deadline(at, clock, wall_clock)
            asked: control.AuditRequested | None = None
            with trio.move_on_at(deadline):
                while asked is None:
                    try:
                        batch = await subscription.receive.receive()
                    except trio.EndOfChannel:  # fell behind the bus: ask the ledger instead
                        subscription = bus.subscribe(frozenset({"audit"}))
                        left = await call(ledger, RunningAudits(shop=shop.id), actor, AuditJobs)
                        if isinstance(left, AuditJobs) and left.jobs:
                            job, fix = left.jobs[0]
                            asked = control.AuditRequested(shop=shop.id, job=job, fix=fix)
                        continue
                    asked = next(
                        (
                            event
                            for event in batch
                            if isinstance(event, control.AuditRequested) and event.shop == shop.id
                        ),
                        None,
                    )
            if asked is not None:
                if asked.job not in handled:
                    handled.add(asked.job)
                    await _audit(
                        shop, wall_clock, reader, settings, database, ledger, asked.job, asked.fix
                    )
                continue
            assert at is not None
            previous = at
            job_doc = await call(
                ledger,
                CreateJob(kind="audit", shop=shop.id, detail="fix" if shop.audit_fix else ""),
                actor,
                control.Job,
            )
            if isinstance(job_doc, control.Error):
                raise RuntimeError(f"cannot record the audit: {job_doc.message}")
            await _audit(
                shop, wall_clock, reader, settings, database, ledger, job_doc.id, shop.audit_fix
            )
    finally:
        bus.unsubscribe(subscription)
        with trio.CancelScope(shield=True):
            await reader.aclose()


async def _audit(
    shop: ShopSettings,
    wall_clock: WallClock,
    reader: StockReader,
    settings: AuditSettings,
    database: Path,
    ledger: trio.MemorySendChannel[LedgerRequest],
    job: int,
    fix: bool,
) -> None:
    """Read every linked SKU's mall item, hand it over, and have the ledger finish the job
    (failed, saying why, when the mall could not be read or the audit was cut short)."""
    actor = f"shop:{shop.id}"
    outcome = AuditDone(shop=shop.id, job=job, fix=fix, error="cut short: the auditor stopped")
    try:
        after = ""
        while True:
            # a short read per page: a long audit (Amazon: one SKU a call) holds no snapshot
            items = await settings.off_thread(_page, database, shop.id, after, settings.batch)
            at = stamp(wall_clock())  # before the reads: a push acknowledged since is newer
            read = await reader.read([(item.item_id, item.variation) for item in items])
            seen = await call(
                ledger, AuditSeen(job=job, items=tuple(read), at=at), actor, AuditJobs
            )
            if isinstance(seen, control.Error):
                raise RuntimeError(f"cannot record what the mall shows: {seen.message}")
            if len(items) < settings.batch:
                break
            after = items[-1].sku
        outcome = AuditDone(shop=shop.id, job=job, fix=fix)
    except ReadFailed as exc:
        log.warning("shop %s: audit %d: %s", shop.id, job, exc)
        outcome = AuditDone(
            shop=shop.id, job=job, fix=fix, error=f"the mall could not be read: {exc}"
        )
    finally:
        done: control.Job | control.Error | None = None
        with trio.CancelScope(shield=True, deadline=trio.current_time() + 10):
            try:
                done = await call(ledger, outcome, actor, control.Job)
            except LedgerUnavailable:
                done = None  # the daemon stops: the job is failed as interrupted at start
    if isinstance(done, control.Error):
        # finished already (asked twice while the auditor started): nothing is lost
        log.warning("shop %s: audit %d: %s", shop.id, job, done.message)


def _page(database: Path, shop: str, after: str, limit: int) -> list[PushItem]:
    snapshot = OutboxSnapshot(database, shop)
    try:
        return snapshot.page(after, limit)
    finally:
        snapshot.close()
