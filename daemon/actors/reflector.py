"""Stock reflection (在庫反映) of one shop: the outbox's pending quantities out to the mall.

Two loops share the shop's sender (one chunk at a time, so that a file mall never gets two
uploads racing for one file name, and an urgent push waits for one chunk at most, never for a
whole pass):

- the interval reflector: at start, then every ``send_interval_min``, every pending row;
- urgent push (``urgent_push``): woken by the ledger's ``PushesPending(urgent=True)`` for this
  shop, only the rows that fell below what the shop shows, at once (the mall's rate limit
  still paces each call).

Each chunk is acknowledged to the ledger after the mall took it (``PushesSent``), with the
versions read, so a row that changed meanwhile stays pending and nothing is lost or sent
twice for one change. A failed chunk leaves its rows pending; the loop tries again after an
exponential backoff with jitter. Bulk sync runs beside them (``bulk_sync``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

import msgspec
import trio

from daemon.clock import WallClock, stamp
from daemon.commands import (
    CreateJob,
    FinishJob,
    LedgerRequest,
    LedgerUnavailable,
    PendingPushes,
    Pushes,
    PushesSent,
    PushItem,
    call,
)
from daemon.events import EventBus, StatusBoard
from daemon.ledger.snapshots import OutboxSnapshot
from daemon.transports.stock import PushFailed
from protocols import control
from protocols.malls.base import StockUpdate
from protocols.settings import ShopSettings

log = logging.getLogger(__name__)
T = TypeVar("T")


class StockSender(Protocol):
    """Sends quantities to one shop's mall: API calls or a file upload. ``chunk`` is how many
    go in one acknowledged step (an API's batch size; a file's rows); a bulk sync sends
    ``bulk_chunk`` at a time with ``send_bulk`` (the mall's feed, where it has one), up to
    ``bulk_parallel`` at once, under the shop's turn when ``bulk_exclusive``
    (``daemon.transports.stock``)."""

    @property
    def chunk(self) -> int: ...

    @property
    def bulk_chunk(self) -> int: ...

    @property
    def bulk_parallel(self) -> int: ...

    @property
    def bulk_exclusive(self) -> bool: ...

    async def wait_turn(self) -> None: ...

    async def send(self, updates: Sequence[StockUpdate]) -> None: ...

    async def send_bulk(self, updates: Sequence[StockUpdate]) -> Mapping[int, str]:
        """Positions of the updates the mall refused, with its reason."""
        ...

    async def aclose(self) -> None: ...


def full_jitter(delay: float) -> float:
    """A delay between half and all of ``delay``: shops that failed together retry apart."""
    return delay * random.uniform(0.5, 1.0)


async def on_worker_thread(fn: Callable[..., T], *args: object) -> T:
    return await trio.to_thread.run_sync(fn, *args)


@dataclass(frozen=True)
class ReflectSettings:
    page: int = 10_000  # pending rows read from the ledger at a time
    backoff_s: float = 5.0
    backoff_max_s: float = 600.0
    jitter: Callable[[float], float] = field(default=full_jitter)
    # where a bulk sync reads its snapshot (a test with a virtual clock runs it inline)
    off_thread: Callable[..., Awaitable[Any]] = field(default=on_worker_thread)


def next_bulk_time(now: datetime, hours: Sequence[int], zone: str) -> datetime | None:
    """The first of ``hours`` (in the shop's time zone) strictly after ``now``; None without
    hours. A run missed while the daemon was down is not made up: the next one counts."""
    if not hours:
        return None
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    for days in range(3):
        day = (local + timedelta(days=days)).date()
        for hour in sorted(set(hours)):
            at = datetime(day.year, day.month, day.day, hour, tzinfo=tz)
            if at > local:
                return at.astimezone(now.tzinfo)
    return None


def clock_deadline(at: datetime | None, clock: Callable[[], float], wall_clock: WallClock) -> float:
    """The trio-clock deadline of a wall-clock moment (never, for None)."""
    return math.inf if at is None else clock() + (at - wall_clock()).total_seconds()


@dataclass
class _Shared:
    """What the shop's loops share: one sender, one chunk at a time, one status."""

    shop: ShopSettings
    sender: StockSender
    board: StatusBoard
    ledger: trio.MemorySendChannel[LedgerRequest]
    settings: ReflectSettings
    wall_clock: WallClock
    clock: Callable[[], float]
    lock: trio.Lock = field(default_factory=trio.Lock)
    report: control.ReflectStatus = field(default_factory=control.ReflectStatus)

    @property
    def actor(self) -> str:
        return f"shop:{self.shop.id}"

    def show(self, **changes: object) -> None:
        self.report = msgspec.structs.replace(self.report, **changes)
        self.board.report_reflect(self.shop.id, self.report)

    def wall_at(self, deadline: float) -> str:
        return stamp(self.wall_clock() + timedelta(seconds=deadline - self.clock()))

    def backoff(self, failures: int) -> float:
        delay = min(self.settings.backoff_max_s, self.settings.backoff_s * 2 ** min(failures, 20))
        return self.settings.jitter(delay)


async def push_pending(shared: _Shared, *, urgent_only: bool) -> str:
    """Send every pending row (or every urgent one), a chunk at a time: read, sent and
    acknowledged under the shop's lock, so that two loops of the shop never send one row
    twice nor an older value after a newer one. A chunk the mall refused for good (an item
    it does not know, a request it cannot take) is left pending and said, and the pass goes
    on; a mall that is down ends the pass (PushFailed). Returns the last refusal, or ""."""
    refused = ""
    after = ""
    while True:
        async with shared.lock:
            pushes = await call(
                shared.ledger,
                PendingPushes(
                    shop=shared.shop.id,
                    urgent_only=urgent_only,
                    after=after,
                    limit=shared.sender.chunk,
                ),
                shared.actor,
                Pushes,
            )
            if isinstance(pushes, control.Error):
                raise RuntimeError(f"cannot read the outbox: {pushes.message}")
            items = pushes.items
            if items:
                try:
                    await send_chunk(shared, items)
                except PushFailed as exc:
                    if not exc.permanent:
                        raise
                    log.warning("shop %s: %s; those SKUs stay pending", shared.shop.id, exc)
                    refused = str(exc)
                    shared.show(last_error=refused)
        if len(items) < shared.sender.chunk:
            return refused
        after = items[-1].sku


async def send_chunk(shared: _Shared, chunk: Sequence[PushItem]) -> int:
    """Send one chunk and acknowledge it (the caller holds the shop's lock)."""
    await shared.sender.send([_update(item) for item in chunk])
    await _acknowledge(shared, chunk)
    return len(chunk)


def _update(item: PushItem) -> StockUpdate:
    return StockUpdate(item.item_id, item.variation, item.quantity)


async def _acknowledge(shared: _Shared, chunk: Sequence[PushItem]) -> None:
    if not chunk:
        return
    at = stamp(shared.wall_clock())
    done = await call(
        shared.ledger,
        PushesSent(shop=shared.shop.id, items=tuple(chunk), at=at),
        shared.actor,
        Pushes,
    )
    if isinstance(done, control.Error):
        raise RuntimeError(f"cannot acknowledge a push: {done.message}")
    shared.show(pushed=shared.report.pushed + len(chunk))


@dataclass
class _BulkTally:
    sent: int = 0
    refused: int = 0  # SKUs the mall did not take (a chunk that failed, a feed's refusals)
    last_refusal: str = ""


async def bulk_sync(shared: _Shared, database: Path) -> _BulkTally:
    """Send every linked SKU its target (a full file, all API batches, or the mall's feeds)
    from a read-only snapshot, so that the ledger is never held; each chunk acknowledged like
    any push (a row sent an older value than a push sent meanwhile is corrected then)."""
    off_thread = shared.settings.off_thread
    sender = shared.sender
    snapshot = await off_thread(OutboxSnapshot, database, shared.shop.id)
    tally = _BulkTally()
    slots = trio.Semaphore(max(1, sender.bulk_parallel))
    try:
        async with trio.open_nursery() as nursery:
            after = ""
            while True:
                items = await off_thread(snapshot.page, after, shared.settings.page)
                for start in range(0, len(items), sender.bulk_chunk):
                    await slots.acquire()
                    chunk = items[start : start + sender.bulk_chunk]
                    nursery.start_soon(_bulk_chunk, shared, chunk, slots, tally)
                if len(items) < shared.settings.page:
                    break
                after = items[-1].sku
    finally:
        with trio.CancelScope(shield=True):
            await off_thread(snapshot.close)
    return tally


async def _bulk_chunk(
    shared: _Shared, chunk: Sequence[PushItem], slots: trio.Semaphore, tally: _BulkTally
) -> None:
    sender = shared.sender
    updates = [_update(item) for item in chunk]
    # the shop's turn when the chunk goes the way pushes go; a feed goes its own way
    turn: AbstractAsyncContextManager[object] = (
        shared.lock if sender.bulk_exclusive else contextlib.nullcontext()
    )
    try:
        async with turn:
            try:
                refused = await sender.send_bulk(updates)
            except BaseException as exc:
                # a feed the mall may have (it failed after it was submitted, or the
                # reflector stopped while it was processed) can still land with these
                # older values: each is sent again once it is certain
                if not sender.bulk_exclusive and (
                    not isinstance(exc, PushFailed) or exc.maybe_applied
                ):
                    await _acknowledge_uncertain(shared, chunk)
                raise
            taken = [item for n, item in enumerate(chunk) if n not in refused]
            await _acknowledge(shared, taken)
    except PushFailed as exc:
        # the rest still goes: what the mall did not take stays as it was, and a pending row
        # is sent again by the interval reflector
        tally.refused += len(chunk)
        tally.last_refusal = str(exc)
        shared.show(last_error=str(exc))
    else:
        tally.sent += len(taken)
        if refused:
            tally.refused += len(refused)
            position, why = next(iter(refused.items()))
            tally.last_refusal = f"{chunk[position].sku}: {why}" + (
                f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
            )
            shared.show(last_error=tally.last_refusal)
    finally:
        slots.release()


async def _acknowledge_uncertain(shared: _Shared, chunk: Sequence[PushItem]) -> None:
    # shielded, but bounded: a ledger that is gone never answers (then the rows are as
    # they were, and the next bulk sync sends them again)
    with trio.CancelScope(shield=True, deadline=trio.current_time() + 10):
        try:
            await call(
                shared.ledger,
                PushesSent(
                    shop=shared.shop.id,
                    items=tuple(chunk),
                    at=stamp(shared.wall_clock()),
                    uncertain=True,
                ),
                shared.actor,
                Pushes,
            )
        except LedgerUnavailable:
            pass


async def reflector(
    shop: ShopSettings,
    connect: Callable[[], StockSender],
    bus: EventBus,
    board: StatusBoard,
    clock: Callable[[], float],
    wall_clock: WallClock,
    settings: ReflectSettings,
    database: Path,
    ledger: trio.MemorySendChannel[LedgerRequest],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    sender = await trio.to_thread.run_sync(connect)  # reads credential files
    try:
        shared = _Shared(shop, sender, board, ledger, settings, wall_clock, clock)
        shared.show()
        async with trio.open_nursery() as nursery:
            if shop.urgent_push:
                await nursery.start(_urgent, shared, bus)
            await nursery.start(_interval, shared, bus)
            await nursery.start(_bulk, shared, bus, database)
            task_status.started()
    finally:
        with trio.CancelScope(shield=True):
            await sender.aclose()


async def _bulk(
    shared: _Shared, bus: EventBus, database: Path, *, task_status: trio.TaskStatus[None]
) -> None:
    """At each ``bulk_sync_hours`` hour, and when an operator asks (``reflect now --all``), a
    bulk sync; each is a job in the job log."""
    shop = shared.shop
    wakes = _Wakes(bus, shop.id)
    task_status.started()
    previous = shared.wall_clock()
    try:
        while True:
            at = next_bulk_time(
                max(previous, shared.wall_clock()), shop.bulk_sync_hours, shop.timezone
            )
            shared.show(next_bulk_sync=stamp(at) if at is not None else "")
            deadline = clock_deadline(at, shared.clock, shared.wall_clock)
            asked = False
            with trio.move_on_at(deadline):
                # only an operator's request: a subscription that fell behind is no reason
                while not await wakes.wait(lambda event: event.bulk):
                    pass
                asked = True
            if at is not None and not asked:
                previous = at
            await _bulk_job(shared, database)
    finally:
        wakes.close()


async def _bulk_job(shared: _Shared, database: Path) -> None:
    """One bulk sync, recorded as a job of kind ``bulk_sync`` (failed if it is cut short:
    the shop's settings changed, the daemon stops)."""
    shop = shared.shop
    job = await call(
        shared.ledger, CreateJob(kind="bulk_sync", shop=shop.id), shared.actor, control.Job
    )
    if isinstance(job, control.Error):
        raise RuntimeError(f"cannot record the bulk sync: {job.message}")
    outcome = FinishJob(
        job=job.id, result="failed", messages=("cut short: the reflector stopped or restarted",)
    )
    try:
        tally = await bulk_sync(shared, database)
        outcome = FinishJob(
            job=job.id,
            result="failed" if tally.refused else "ok",
            count=tally.sent + tally.refused,
            success=tally.sent,
            failure=tally.refused,
            messages=(
                (
                    f"{tally.refused} SKU(s) were not taken by the mall (they are sent again "
                    f"when they are pending): {tally.last_refusal}",
                )
                if tally.refused
                else ()
            ),
        )
    finally:
        done: control.Job | control.Error | None = None
        # shielded, but bounded: a ledger that is gone never answers
        with trio.CancelScope(shield=True, deadline=trio.current_time() + 10):
            try:
                done = await call(shared.ledger, outcome, shared.actor, control.Job)
            except LedgerUnavailable:
                # the daemon stops: the job is failed as interrupted at the next start
                done = None
    if isinstance(done, control.Error):
        raise RuntimeError(f"cannot record the bulk sync: {done.message}")


class _Wakes:
    """The ledger's ``pushes_pending`` events for one shop, from a subscription of the
    reflector's own (topic ``outbox``: the reflectors' own reports go elsewhere)."""

    def __init__(self, bus: EventBus, shop: str) -> None:
        self._bus = bus
        self._shop = shop
        self._subscription = bus.subscribe(frozenset({"outbox"}))

    async def wait(self, wanted: Callable[[control.PushesPending], bool]) -> bool:
        """Until an event ``wanted`` comes for the shop (True), or the subscription fell
        behind the bus and was taken again (False: something may have been missed)."""
        while True:
            try:
                batch = await self._subscription.receive.receive()
            except trio.EndOfChannel:
                self._subscription = self._bus.subscribe(frozenset({"outbox"}))
                return False
            if any(
                isinstance(event, control.PushesPending)
                and event.shop == self._shop
                and wanted(event)
                for event in batch
            ):
                return True

    def close(self) -> None:
        self._bus.unsubscribe(self._subscription)


async def _interval(shared: _Shared, bus: EventBus, *, task_status: trio.TaskStatus[None]) -> None:
    interval = shared.shop.send_interval_min * 60.0
    failures = 0
    deadline = shared.clock()  # what waited while the daemon was down goes out at start
    wakes = _Wakes(bus, shared.shop.id)
    task_status.started()
    try:
        while True:
            asked = False
            with trio.move_on_at(deadline):
                # reflect now (a missed request is lost at worst: the interval still comes)
                while not await wakes.wait(lambda event: event.now):
                    pass
                asked = True
            try:
                refused = await push_pending(shared, urgent_only=False)
            except PushFailed as exc:
                delay = shared.backoff(failures)
                failures += 1
                log.warning("shop %s: push failed (%s); again in %.0fs", shared.shop.id, exc, delay)
                deadline = shared.clock() + delay
                shared.show(last_error=str(exc), next_run=shared.wall_at(deadline))
                continue
            failures = 0
            if not asked:
                # the next interval from the last deadline, not from now: no drift
                deadline = max(deadline + interval, shared.clock())
            shared.show(last_error=refused, next_run=shared.wall_at(deadline))
    finally:
        wakes.close()


async def _urgent(shared: _Shared, bus: EventBus, *, task_status: trio.TaskStatus[None]) -> None:
    wakes = _Wakes(bus, shared.shop.id)
    task_status.started()
    failures = 0
    try:
        while True:
            # a subscription that fell behind may have missed one: a pass looks anyway
            await wakes.wait(lambda event: event.urgent)
            while True:
                try:
                    # the mall's next free moment first, then read: what is sent is the
                    # newest, not what was pending a rate-limit interval ago
                    async with shared.lock:
                        await shared.sender.wait_turn()
                    refused = await push_pending(shared, urgent_only=True)
                except PushFailed as exc:
                    delay = shared.backoff(failures)
                    failures += 1
                    shared.show(last_error=str(exc))
                    await trio.sleep_until(shared.clock() + delay)
                    continue
                failures = 0
                if shared.report.last_error and not refused:
                    shared.show(last_error="")
                break
    finally:
        wakes.close()
