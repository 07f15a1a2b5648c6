"""The reflector with a virtual clock against the real ledger task: the interval pass at start
and every send_interval_min to the second, an urgent drop at once, latest value wins, a
failing mall retried with backoff and nothing lost, and the pushes acknowledged."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import msgspec
import pytest
import trio
import trio.testing

from daemon.actors.ledger import ledger
from daemon.actors.reflector import ReflectSettings, next_bulk_time, reflector
from daemon.commands import IncomingOrder, LedgerRequest, PendingPushes, Pushes, TakeOrders, submit
from daemon.events import EventBus, StatusBoard
from daemon.shop_actors import actors_for
from daemon.transports.pickup import PickupRhythm
from daemon.transports.stock import PushFailed
from daemon.wiring import ShopWiring
from protocols import control
from protocols.malls.base import MallOrder, OrderLine, StockUpdate
from protocols.settings import ShopSettings

START = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)


def wall() -> datetime:
    return START + timedelta(seconds=trio.current_time())


def ledger_now() -> str:
    return START.isoformat(timespec="milliseconds")


class FakeMall:
    """A mall that takes quantities (or fails while ``failures`` lasts) and remembers when."""

    def __init__(self, chunk: int = 100) -> None:
        self.chunk = chunk
        self.received: list[tuple[float, dict[str, int]]] = []
        self.failures = 0
        self.shows: dict[str, int] = {}
        self.arrived = trio.Event()

    bulk_exclusive = True
    bulk_parallel = 1

    @property
    def bulk_chunk(self) -> int:
        return self.chunk

    async def wait_turn(self) -> None:
        pass

    async def send_bulk(self, updates: Sequence[StockUpdate]) -> Mapping[int, str]:
        await self.send(updates)
        return {}

    async def send(self, updates: Sequence[StockUpdate]) -> None:
        if self.failures:
            self.failures -= 1
            raise PushFailed("HTTP 503: down")
        got = {u.item_id: u.quantity for u in updates}
        self.received.append((trio.current_time(), got))
        self.shows.update(got)
        self.arrived.set()
        self.arrived = trio.Event()

    async def aclose(self) -> None:
        pass


class Board(StatusBoard):
    def __init__(self, bus: EventBus) -> None:
        super().__init__(bus, ledger_now)
        self.reports: list[control.ReflectStatus] = []

    def report_reflect(self, shop: str, report: control.ReflectStatus) -> None:
        super().report_reflect(shop, report)
        self.reports.append(report)


def settings(**changes: object) -> ShopSettings:
    return msgspec.convert(
        {"id": "r1", "mall": "rakuten", "reflect": "active", "send_interval_min": 5, **changes},
        ShopSettings,
    )


async def ok(send: trio.MemorySendChannel[LedgerRequest], command: object) -> object:
    result = await submit(send, command, "test")  # type: ignore[arg-type]
    assert not isinstance(result, control.Error), result
    return result


def order(number: str, sku: str, quantity: int) -> TakeOrders:
    mall_order = MallOrder(
        order_no=number,
        ordered_at="2026-11-30T09:00:00+09:00",
        lines=(OrderLine(line_no=1, item_id=sku, sku=sku, quantity=quantity),),
    )
    return TakeOrders(shop="y1", orders=(IncomingOrder(mall_order),))


async def inline(fn: Callable[..., object], *args: object) -> object:
    return fn(*args)


Body = Callable[[trio.MemorySendChannel[LedgerRequest], FakeMall, Board], Awaitable[None]]


async def run_with(
    tmp_path: Path, mall: FakeMall, shop: ShopSettings, body: Body, **reflect: float
) -> None:
    send, receive = trio.open_memory_channel[LedgerRequest](64)
    bus = EventBus()
    board = Board(bus)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(ledger, tmp_path / "z.sqlite3", receive, bus, ledger_now, inline=True)
        )
        async with send:
            yahoo = msgspec.convert(
                {"id": "y1", "mall": "yahoo", "order_intake": "active"}, ShopSettings
            )
            await ok(send, control.ShopsApply(id=1, shops=(shop, yahoo)))
            for code, expected in (("A", 10), ("B", 5)):
                await ok(send, control.SkuAdd(id=1, code=code))
                await ok(send, control.StockSet(id=1, code=code, field="expected", value=expected))
            with trio.CancelScope() as scope:
                await nursery.start(
                    reflector,
                    shop,
                    lambda: mall,
                    bus,
                    board,
                    trio.current_time,
                    wall,
                    ReflectSettings(
                        backoff_s=5,
                        backoff_max_s=60,
                        jitter=lambda delay: delay,
                        off_thread=inline,
                        **reflect,
                    ),
                    tmp_path / "z.sqlite3",
                    send.clone(),
                )
                await body(send, mall, board)
                scope.cancel()
            nursery.cancel_scope.cancel()


async def test_interval_at_start_and_every_period_urgent_at_once(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async def body(
        send: trio.MemorySendChannel[LedgerRequest], mall: FakeMall, board: Board
    ) -> None:
        await mall.arrived.wait()  # the pass at start
        assert mall.received == [(0.0, {"A": 10, "B": 5})]
        await trio.sleep_until(30.0)
        await ok(send, order("1", "A", 4))  # sold on y1: r1 shows 10 of 6
        await mall.arrived.wait()
        assert mall.received[-1] == (30.0, {"A": 6})
        await trio.sleep_until(100.0)
        # a rise is not urgent; two changes before the next pass are one push of the last
        await ok(send, control.StockSet(id=1, code="B", field="expected", value=7))
        await ok(send, control.StockSet(id=1, code="B", field="expected", value=8))
        await mall.arrived.wait()
        assert mall.received[-1] == (300.0, {"B": 8})
        await trio.sleep_until(650.0)
        assert len(mall.received) == 3  # the pass at 600 had nothing to send
        pushes = await ok(send, PendingPushes(shop="r1"))
        assert isinstance(pushes, Pushes) and pushes.items == ()
        assert board.reports[-1].pushed == 4
        assert board.reports[-1].next_run == (START + timedelta(seconds=900)).isoformat(
            timespec="milliseconds"
        )

    await run_with(tmp_path, FakeMall(), settings(), body)


async def test_without_urgent_push_a_drop_waits_for_the_interval(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async def body(
        send: trio.MemorySendChannel[LedgerRequest], mall: FakeMall, board: Board
    ) -> None:
        await mall.arrived.wait()
        await trio.sleep_until(30.0)
        await ok(send, order("1", "A", 10))
        await mall.arrived.wait()
        assert mall.received[-1] == (300.0, {"A": 0})

    await run_with(tmp_path, FakeMall(), settings(urgent_push=False), body)


async def test_a_failing_mall_is_retried_with_backoff_and_loses_nothing(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    mall = FakeMall(chunk=1)
    mall.failures = 3

    async def body(
        send: trio.MemorySendChannel[LedgerRequest], mall: FakeMall, board: Board
    ) -> None:
        await mall.arrived.wait()
        # failed at 0, 5, 15; at 35 the mall is back: A, then B, one chunk each
        assert mall.received == [(35.0, {"A": 10})]
        assert any(report.last_error == "HTTP 503: down" for report in board.reports)
        await mall.arrived.wait()
        assert mall.received[-1] == (35.0, {"B": 5})
        await trio.sleep_until(36.0)
        assert board.reports[-1].last_error == ""

    await run_with(tmp_path, mall, settings(), body)


async def test_reflect_now_sends_at_once_and_keeps_the_interval(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async def body(
        send: trio.MemorySendChannel[LedgerRequest], mall: FakeMall, board: Board
    ) -> None:
        await mall.arrived.wait()
        await trio.sleep_until(40.0)
        await ok(send, control.StockSet(id=1, code="B", field="expected", value=9))
        reply = await ok(send, control.ReflectNow(id=1, shop="r1"))
        assert isinstance(reply, control.ReflectReply) and reply.pending == 1
        await mall.arrived.wait()
        assert mall.received[-1] == (40.0, {"B": 9})
        await ok(send, control.StockSet(id=1, code="B", field="expected", value=11))
        await mall.arrived.wait()
        assert mall.received[-1] == (300.0, {"B": 11})  # the interval did not move

    await run_with(tmp_path, FakeMall(), settings(), body)


async def test_bulk_sync_sends_every_linked_sku_at_its_hour_as_a_job(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async def body(
        send: trio.MemorySendChannel[LedgerRequest], mall: FakeMall, board: Board
    ) -> None:
        await mall.arrived.wait()  # the pass at start (09:00 in Tokyo)
        mall.shows["A"] = 99  # someone edited the mall's quantity by hand
        await mall.arrived.wait()
        # 10:00 in Tokyo: everything again, pending or not
        assert mall.received[-1] == (3600.0, {"A": 10, "B": 5})
        await trio.sleep_until(3601.0)
        jobs = await ok(send, control.JobsList(id=1))
        assert isinstance(jobs, control.JobsReply)
        bulk = next(job for job in jobs.jobs if job.kind == "bulk_sync")
        assert (bulk.shop, bulk.result, bulk.count, bulk.success) == ("r1", "ok", 2, 2)
        assert board.reports[-1].next_bulk_sync == "2026-12-01T01:00:00.000+00:00"

    await run_with(tmp_path, FakeMall(), settings(bulk_sync_hours=[10]), body)


def test_the_next_bulk_hour_is_in_the_shop_s_zone_and_a_missed_one_is_not_made_up() -> None:
    tokyo_0930 = datetime(2026, 11, 30, 0, 30, tzinfo=UTC)
    assert next_bulk_time(tokyo_0930, (3, 9), "Asia/Tokyo") == datetime(
        2026, 11, 30, 18, 0, tzinfo=UTC
    )
    assert next_bulk_time(tokyo_0930, (9, 10), "Asia/Tokyo") == datetime(
        2026, 11, 30, 1, 0, tzinfo=UTC
    )
    assert next_bulk_time(tokyo_0930, (), "Asia/Tokyo") is None
    # New York springs forward on 2026-03-08: 02:00 does not exist, 03:00 is 07:00 UTC
    before = datetime(2026, 3, 8, 6, 0, tzinfo=UTC)
    assert next_bulk_time(before, (3,), "America/New_York") == datetime(
        2026, 3, 8, 7, 0, tzinfo=UTC
    )


async def test_reflect_now_all_is_a_bulk_sync_now(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async def body(
        send: trio.MemorySendChannel[LedgerRequest], mall: FakeMall, board: Board
    ) -> None:
        await mall.arrived.wait()
        await trio.sleep_until(40.0)
        dry = await ok(send, control.ReflectNow(id=1, shop="r1", bulk=True, dry_run=True))
        assert isinstance(dry, control.ReflectReply) and dry.pending == 2  # sent or not
        await ok(send, control.ReflectNow(id=1, shop="r1", bulk=True))
        await mall.arrived.wait()
        assert mall.received[-1] == (40.0, {"A": 10, "B": 5})
        assert board.reports[-1].next_bulk_sync == ""  # no bulk hours

    await run_with(tmp_path, FakeMall(), settings(), body)


class FeedMall(FakeMall):
    """A mall whose bulk path is a feed processed for ``processing_s`` (Amazon): pushes go
    per item meanwhile, and the feed's value lands when it is processed. ``refuse`` SKUs are
    named in its report."""

    bulk_exclusive = False
    bulk_parallel = 2

    def __init__(self, processing_s: float, refuse: frozenset[str] = frozenset()) -> None:
        super().__init__(chunk=1)
        self.processing_s = processing_s
        self.refuse = refuse
        self.feeds: list[tuple[float, dict[str, int]]] = []

    @property
    def bulk_chunk(self) -> int:
        return 10

    async def send_bulk(self, updates: Sequence[StockUpdate]) -> Mapping[int, str]:
        await trio.sleep(self.processing_s)  # the mall's processing, not zaiko's waiting
        got = {u.item_id: u.quantity for u in updates if u.item_id not in self.refuse}
        self.feeds.append((trio.current_time(), got))
        self.shows.update(got)
        return {n: "90220: no such SKU" for n, u in enumerate(updates) if u.item_id in self.refuse}


async def test_a_bulk_feed_never_holds_back_an_urgent_push_and_its_late_value_is_corrected(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    mall = FeedMall(processing_s=300.0, refuse=frozenset({"B"}))

    async def body(send: trio.MemorySendChannel[LedgerRequest], _: FakeMall, board: Board) -> None:
        await trio.sleep_until(10.0)  # the pass at start sent A 10 and B 5, one call each
        assert mall.shows == {"A": 10, "B": 5}
        await ok(send, control.ReflectNow(id=1, shop="r1", bulk=True))  # a feed of A 10, B 5
        await trio.sleep_until(20.0)
        await ok(send, order("1", "A", 4))  # a sale at another shop: A 6, urgent
        await mall.arrived.wait()
        assert mall.received[-1] == (20.0, {"A": 6})  # at once, the feed still processing
        await trio.sleep_until(311.0)
        # the feed landed at 310 with its older value (A 10): A 6 is sent again at once
        assert mall.feeds == [(310.0, {"A": 10})]
        assert mall.received[-1] == (310.0, {"A": 6}) and mall.shows["A"] == 6
        jobs = await ok(send, control.JobsList(id=1))
        assert isinstance(jobs, control.JobsReply)
        bulk = next(job for job in jobs.jobs if job.kind == "bulk_sync")
        assert (bulk.result, bulk.count, bulk.success, bulk.failure) == ("failed", 2, 1, 1)
        shown = await ok(send, control.JobShow(id=1, job=bulk.id))
        assert isinstance(shown, control.JobReply)
        assert "B: 90220: no such SKU" in shown.job.messages[0]
        # said while it was the news (the urgent push's success cleared it since)
        assert any("B: 90220" in report.last_error for report in board.reports)

    await run_with(tmp_path, mall, settings(), body)


class BatchMall(FakeMall):
    """A file mall: one file at a time waits on its server (a second is refused as still
    there) until the mall's batch runs, every ``cycle_s`` from ``phase_s``; the reflector can
    look whether the file still waits (``mall_holds_file``)."""

    def __init__(self, cycle_s: float, phase_s: float) -> None:
        super().__init__()
        self.cycle_s = cycle_s
        self.phase_s = phase_s
        self.waiting = False
        self.refused = 0
        self.pickups: list[float] = []

    async def send(self, updates: Sequence[StockUpdate]) -> None:
        if self.waiting:
            self.refused += 1
            raise PushFailed("quantity.csv is still there", waiting=True)
        await super().send(updates)
        self.waiting = True

    async def mall_holds_file(self) -> bool:
        await trio.lowlevel.checkpoint()
        return self.waiting

    async def run_batches(self) -> None:
        at = self.phase_s
        while True:
            await trio.sleep_until(at)
            if self.waiting:
                self.waiting = False
                self.pickups.append(at)
            at += self.cycle_s


async def test_a_file_mall_s_batch_rhythm_is_learned_and_files_go_up_just_before_it(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    mall = BatchMall(cycle_s=300.0, phase_s=97.5)  # batches at 97.5, 397.5, 697.5, …
    send, receive = trio.open_memory_channel[LedgerRequest](64)
    bus = EventBus()
    board = Board(bus)
    shop = settings()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(ledger, tmp_path / "z.sqlite3", receive, bus, ledger_now, inline=True)
        )
        async with send:
            yahoo = msgspec.convert(
                {"id": "y1", "mall": "yahoo", "order_intake": "active"}, ShopSettings
            )
            await ok(send, control.ShopsApply(id=1, shops=(shop, yahoo)))
            for code, expected in (("A", 10), ("B", 5)):
                await ok(send, control.SkuAdd(id=1, code=code))
                await ok(send, control.StockSet(id=1, code=code, field="expected", value=expected))
            await nursery.start(
                reflector,
                shop,
                lambda: mall,
                bus,
                board,
                trio.current_time,
                wall,
                ReflectSettings(
                    jitter=lambda delay: delay,
                    off_thread=inline,
                    waiting_poll_s=15.0,
                    # 15 s looks from an upload 37.5 s before a batch straddle it evenly:
                    # what the reflector learns stays exactly the mall's rhythm
                    pickup_lead_s=37.5,
                ),
                tmp_path / "z.sqlite3",
                send.clone(),
            )
            # the batches only now: the reflector read its sender on a worker thread, and
            # the clock would have jumped from batch to batch meanwhile
            nursery.start_soon(mall.run_batches)
            # rhythm unknown: each pass uploads at once; every file is looked at every 15 s
            # while it waits (seen there at 90, gone at 105: the batch ran in between)
            for n, at in enumerate((150.0, 450.0, 750.0, 1050.0)):
                await trio.sleep_until(at)
                await ok(send, control.StockSet(id=1, code="B", field="expected", value=6 + n))
            await trio.sleep_until(1350.0)
            assert [at for at, _ in mall.received] == [0.0, 300.0, 600.0, 900.0, 1200.0]
            assert mall.pickups == [97.5, 397.5, 697.5, 997.5, 1297.5]
            # five pickups agree: the pass at 1500 holds until 37.5 s before the batch of 1597.5
            await ok(send, control.StockSet(id=1, code="B", field="expected", value=11))
            await mall.arrived.wait()
            assert mall.received[-1] == (pytest.approx(1560.0, abs=1e-6), {"B": 11})
            # an urgent drop (a sale at another shop) holds the same way, for the batch of
            # 1897.5, and goes with the values of that moment
            await trio.sleep_until(1700.0)
            await ok(send, order("1", "A", 8))
            await trio.sleep_until(1800.0)
            await ok(send, order("2", "A", 2))
            await mall.arrived.wait()
            assert mall.received[-1] == (pytest.approx(1860.0, abs=1e-6), {"A": 0})
            await trio.sleep_until(1900.0)
            assert [at for at, _ in mall.received][-2:] == pytest.approx([1560.0, 1860.0])
            assert mall.pickups[-2:] == [1597.5, 1897.5]
            # the operator's reflect now is not held for the batch: it goes once the last
            # file is gone (taken at 1897.5: a look when the pass starts sees it gone)
            await ok(send, control.StockSet(id=1, code="B", field="expected", value=12))
            await ok(send, control.ReflectNow(id=1, shop=shop.id))
            await mall.arrived.wait()
            assert mall.received[-1] == (pytest.approx(1900.0, abs=1e-6), {"B": 12})
            # nor is one asked while a pass holds (the pass of 2400 holds for 2460)
            await trio.sleep_until(2200.0)
            await ok(send, control.StockSet(id=1, code="B", field="expected", value=13))
            await trio.sleep_until(2420.0)
            assert mall.received[-1][0] == pytest.approx(1900.0)
            await ok(send, control.ReflectNow(id=1, shop=shop.id))
            await mall.arrived.wait()
            assert mall.received[-1] == (pytest.approx(2420.0, abs=1e-6), {"B": 13})
            # no upload was tried while a file waited, and a waiting file is no error
            assert mall.refused == 0
            assert all(report.last_error == "" for report in board.reports)
            nursery.cancel_scope.cancel()


async def test_a_file_still_waiting_is_no_error_until_the_mall_leaves_it_too_long(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    mall = BatchMall(cycle_s=300.0, phase_s=97.5)
    mall.waiting = True  # left from before a restart: the pass at start is refused

    async def body(
        send: trio.MemorySendChannel[LedgerRequest], mall_: FakeMall, board: Board
    ) -> None:
        await trio.sleep_until(50.0)
        assert mall.refused == 1 and mall.received == []
        assert all(report.last_error == "" for report in board.reports)
        await trio.sleep_until(61.0)  # the look at 60: waiting for waiting_warn_s
        assert board.reports[-1].last_error.startswith(
            "the mall has not picked up the stock file waiting since 2026-11-30T00:00:00"
        )
        async with trio.open_nursery() as batches:
            batches.start_soon(mall.run_batches)
            # picked up at 97.5, seen gone at 105: the rows go at once (no rhythm yet)
            await mall.arrived.wait()
            assert mall.received == [(105.0, {"A": 10, "B": 5})]
            assert board.reports[-1].last_error == ""
            batches.cancel_scope.cancel()

    await run_with(tmp_path, mall, settings(), body, waiting_warn_s=60.0)


async def test_a_file_mall_s_rhythm_outlives_its_reflector(wiring: ShopWiring) -> None:
    """The supervisor lists a shop's actors again at every settings change: the reflector
    of the same shop and folder gets the rhythm learned so far, another folder a new one,
    and an API shop none."""

    def rhythm_of(shop: ShopSettings) -> object:
        (spec,) = [spec for spec in actors_for(shop, wiring) if spec.name == "reflector"]
        assert isinstance(spec.run, partial)
        return spec.run.keywords["rhythm"]

    def shop(**changes: object) -> ShopSettings:
        return msgspec.convert(
            {
                "id": "y1",
                "mall": "yahoo",
                "reflect": "active",
                "transport": "ftp",
                "ftp_url": "sftp://y1@127.0.0.1:2222/",
                **changes,
            },
            ShopSettings,
        )

    learned = rhythm_of(shop())
    assert isinstance(learned, PickupRhythm)
    assert rhythm_of(shop(send_interval_min=10)) is learned
    assert rhythm_of(shop(ftp_dir="/other")) is not learned
    assert rhythm_of(shop(transport="api")) is None


async def test_a_long_pass_to_a_mall_that_takes_files_as_they_come_goes_in_seconds(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """A pass of several files (one per chunk) to a mall that takes each within a second: the
    first look comes a second after the upload, so the next file goes then, not a whole
    ``waiting_poll_s`` later; and such pickups teach no rhythm (nothing is held after)."""
    mall = BatchMall(cycle_s=0.5, phase_s=0.25)
    mall.chunk = 1

    async def body(
        send: trio.MemorySendChannel[LedgerRequest], mall_: FakeMall, board: Board
    ) -> None:
        async with trio.open_nursery() as batches:
            batches.start_soon(mall.run_batches)
            while len(mall.received) < 2:
                await mall.arrived.wait()
            # A at start, seen gone at the first look (1 s): B
            assert [(at, rows) for at, rows in mall.received] == [
                (0.0, {"A": 10}),
                (1.0, {"B": 5}),
            ]
            await trio.sleep_until(100.0)
            await ok(send, order("1", "A", 10))  # a drop: goes at once, nothing is held
            await mall.arrived.wait()
            assert mall.received[-1] == (100.0, {"A": 0})
            batches.cancel_scope.cancel()

    await run_with(tmp_path, mall, settings(), body)
