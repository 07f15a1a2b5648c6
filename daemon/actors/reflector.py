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

A file mall (a sender that can look for its file: ``HoldsFile``) takes one file of a name at a
time and applies it at its next batch run, with the counts it had when it was uploaded, over
any sale made there meanwhile. So its file goes up just before the batch: while a file waits
the reflector looks whether it is still there (soon after the upload, then every
``waiting_poll_s``; a file waiting is no error, and a pass whose upload finds it still there
holds until it is gone); what it sees teaches ``PickupRhythm`` the batch's period and phase;
once that is known, a pass or an urgent push holds until ``pickup_lead_s`` before the next
pickup, then reads the pending rows (the newest values) and uploads. While the rhythm is
unknown a file goes up as soon as the last one is gone. A bulk sync is not held.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable
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
from daemon.transports.pickup import PickupRhythm
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


@runtime_checkable
class HoldsFile(Protocol):
    """A sender whose mall takes files: it can tell whether its last file still waits there
    (a cheap look, no upload). API senders have no such thing."""

    async def mall_holds_file(self) -> bool: ...


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
    # a file mall: how often to look whether the waiting file was picked up (the precision
    # of what the rhythm learns), how long before the batch a file goes up (that precision,
    # the batch's jitter and the upload's time), how close to the batch an upload no longer
    # counts on making it (it waits for the next one, with newer values), and after how
    # long a file the mall does not pick up is said in the status
    waiting_poll_s: float = 15.0
    # the first look after an upload comes this soon, the next ones twice as late up to
    # waiting_poll_s: a mall that takes files as they come gets the next file of a long pass
    # within seconds, one with a batch every few minutes is asked a few times more
    first_look_s: float = 1.0
    pickup_lead_s: float = 45.0
    pickup_margin_s: float = 15.0
    waiting_warn_s: float = 1800.0


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
class _FileSlot:
    """A file mall's one file name: since when zaiko's last file waits there (None: it was
    picked up), and the batch rhythm that its comings and goings show."""

    probe: Callable[[], Awaitable[bool]]
    settings: ReflectSettings
    clock: Callable[[], float]
    rhythm: PickupRhythm = field(default_factory=PickupRhythm)
    waiting_since: float | None = None
    _changed: trio.Event = field(default_factory=trio.Event)

    @property
    def waiting(self) -> bool:
        return self.waiting_since is not None

    def _wait_from(self, since: float | None) -> None:
        self.waiting_since = since
        self._changed.set()
        self._changed = trio.Event()

    def uploaded(self, started: float) -> None:
        """The mall took a file: the name was free (the last file was gone), now it waits."""
        self.rhythm.observe(self.clock(), there=False)
        # there from the start of the upload on: a batch during the upload may have taken it
        self.rhythm.observe(started, there=True)
        self._wait_from(started)

    def refused(self, started: float) -> None:
        """The mall still holds the last file (after a restart: one zaiko did not know of)."""
        self.rhythm.observe(started, there=True)
        if not self.waiting:
            self._wait_from(started)

    def probed(self, started: float, there: bool) -> None:
        if there:
            self.rhythm.observe(started, there=True)
        else:
            self.rhythm.observe(self.clock(), there=False)
            self._wait_from(None)

    def unknown(self) -> None:
        """A look that failed says nothing: the next upload finds out (refused: waiting)."""
        self._wait_from(None)

    def moment(self) -> float | None:
        """When the next file should go up: ``pickup_lead_s`` before the next batch it can
        still make (one closer than ``pickup_margin_s`` waits for the following batch, with
        newer values, rather than miss it and wait a whole cycle with these), or None: now
        (the rhythm is unknown, or that moment has come)."""
        now = self.clock()
        pickup = self.rhythm.next_pickup(now + self.settings.pickup_margin_s)
        if pickup is None:
            return None
        at = pickup - self.settings.pickup_lead_s
        return at if at > now else None

    async def until(self, waiting: bool) -> None:
        while self.waiting != waiting:
            await self._changed.wait()


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
    bus: EventBus  # a hold before a file mall's batch hears reflect now on it
    slot: _FileSlot | None = None  # a file mall's, when its sender can look for its file
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


async def push_pending(shared: _Shared, *, urgent_only: bool, asked: bool = False) -> str:
    """Send every pending row (or every urgent one), a chunk at a time: read, sent and
    acknowledged under the shop's lock, so that two loops of the shop never send one row
    twice nor an older value after a newer one. A chunk the mall refused for good (an item
    it does not know, a request it cannot take) is left pending and said, and the pass goes
    on; a mall that is down ends the pass (PushFailed). A file mall's chunk waits, outside
    the lock, until the mall's last file is gone and the moment before its batch comes, and
    is read again then; one the operator asked for (``asked``: reflect now) only waits for the
    file to be gone. Returns the last refusal, or ""."""
    refused = ""
    after = ""
    on_time = False  # the hold before a file mall's batch ended: upload now
    # a file mall takes one file per batch: an urgent one carries every pending row, or the
    # others would wait a whole cycle more
    urgent_only = urgent_only and shared.slot is None
    while True:
        hold = False
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
            slot = shared.slot
            # a file thought to wait does not hold the upload: the upload looks for it anyway
            # (refused: then it holds), and a mall that takes files as they come has the next
            # file of a long pass at once, not at the watcher's next look
            if items and slot is not None and not (on_time or asked) and slot.moment() is not None:
                hold = True
            elif items:
                try:
                    await send_chunk(shared, items)
                except PushFailed as exc:
                    if exc.waiting and slot is not None:
                        hold = True  # not an error: sent once the mall took its last file
                    elif not exc.permanent:
                        raise
                    else:
                        log.warning("shop %s: %s; those SKUs stay pending", shared.shop.id, exc)
                        refused = str(exc)
                        shared.show(last_error=refused)
        if hold:
            assert slot is not None
            await _hold(shared, slot, asked)
            on_time = True
            continue
        on_time = False
        if len(items) < shared.sender.chunk:
            return refused
        after = items[-1].sku


async def _hold(shared: _Shared, slot: _FileSlot, asked: bool) -> None:
    """Until the mall's last file is gone, then (unless the operator asked for it now) until
    the moment before its next batch (never holding the shop's lock: an urgent push, a look
    at the file go meanwhile)."""
    await slot.until(waiting=False)
    at = None if asked else slot.moment()
    if at is None:
        return
    shared.show(next_run=shared.wall_at(at))
    # the operator's reflect now, asked while this pass holds, ends the hold
    wakes = _Wakes(shared.bus, shared.shop.id)
    try:
        with trio.move_on_at(at):
            while not await wakes.wait(lambda event: event.now):
                pass
    finally:
        wakes.close()


async def send_chunk(shared: _Shared, chunk: Sequence[PushItem]) -> int:
    """Send one chunk and acknowledge it (the caller holds the shop's lock)."""
    with _upload_seen(shared):
        await shared.sender.send([_update(item) for item in chunk])
    await _acknowledge(shared, chunk)
    return len(chunk)


@contextlib.contextmanager
def _upload_seen(shared: _Shared) -> Iterator[None]:
    """What a send tells a file mall's slot: its file was taken (and now waits), or the mall
    still holds the last one."""
    slot = shared.slot
    started = shared.clock()
    try:
        yield
    except PushFailed as exc:
        if slot is not None and exc.waiting:
            slot.refused(started)
        raise
    if slot is not None:
        slot.uploaded(started)


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
                with _upload_seen(shared):
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
    rhythm: PickupRhythm | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``rhythm``: what is known of a file mall's batch rhythm (kept by the caller across
    restarts of this actor; a fresh one when None)."""
    sender = await trio.to_thread.run_sync(connect)  # reads credential files
    try:
        slot = (
            _FileSlot(sender.mall_holds_file, settings, clock, rhythm or PickupRhythm())
            if isinstance(sender, HoldsFile)
            else None
        )
        shared = _Shared(shop, sender, board, ledger, settings, wall_clock, clock, bus, slot)
        shared.show()
        async with trio.open_nursery() as nursery:
            if slot is not None:
                await nursery.start(_watch_file, shared, slot)
            if shop.urgent_push:
                await nursery.start(_urgent, shared, bus)
            await nursery.start(_interval, shared, bus)
            await nursery.start(_bulk, shared, bus, database)
            task_status.started()
    finally:
        with trio.CancelScope(shield=True):
            await sender.aclose()


async def _watch_file(
    shared: _Shared, slot: _FileSlot, *, task_status: trio.TaskStatus[None]
) -> None:
    """While zaiko's file waits at the mall, look whether it is still there: ``first_look_s``
    after the upload, then twice as late each time up to every ``waiting_poll_s`` (a file
    waiting for the batch is no error: no failure's backoff), said in the status only when
    the mall has not taken it for ``waiting_warn_s``."""
    settings = shared.settings
    said = ""
    looking_since: float | None = None  # the wait the looks' pace belongs to
    gap = settings.first_look_s
    task_status.started()
    while True:
        await slot.until(waiting=True)
        if slot.waiting_since != looking_since:
            looking_since, gap = slot.waiting_since, settings.first_look_s
        await trio.sleep_until(shared.clock() + gap)
        gap = min(gap * 2, settings.waiting_poll_s)
        async with shared.lock:
            await _look(shared, slot)
        since = slot.waiting_since
        if since is not None and shared.clock() - since >= settings.waiting_warn_s:
            said = (
                f"the mall has not picked up the stock file waiting since {shared.wall_at(since)}"
            )
            if shared.report.last_error != said:
                shared.show(last_error=said)
        elif said and shared.report.last_error == said:
            said = ""
            shared.show(last_error="")


async def _look(shared: _Shared, slot: _FileSlot) -> None:
    """Whether the mall still holds zaiko's file (the caller holds the shop's lock: an upload
    and a look never cross, so each look is about the file the slot thinks waits)."""
    started = shared.clock()
    try:
        there = await slot.probe()
    except PushFailed as exc:
        # uploads are not held on a look that cannot be made: a mall that is down fails
        # them, and they retry with the failure's backoff
        log.info("shop %s: cannot look for the stock file: %s", shared.shop.id, exc)
        slot.unknown()
        return
    slot.probed(started, there)


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
                refused = await push_pending(shared, urgent_only=False, asked=asked)
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
