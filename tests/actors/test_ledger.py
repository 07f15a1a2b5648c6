"""The ledger task: group commit, acknowledgement after commit, events, draining."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import trio
import trio.testing

from daemon.actors.ledger import PACE_SLACK_S, ledger
from daemon.clock import stamp
from daemon.commands import IncomingOrder, LedgerRequest, Result, TakeOrders, submit
from daemon.events import EventBus
from protocols import control
from protocols.malls.base import MallOrder, OrderLine
from protocols.settings import ShopSettings


def now() -> str:
    return "2026-11-26T00:00:00.000+00:00"


async def test_concurrent_requests_are_group_committed(tmp_path: Path) -> None:
    database = tmp_path / "z.sqlite3"
    bus = EventBus()
    send, receive = trio.open_memory_channel[LedgerRequest](256)
    async with trio.open_nursery() as nursery:
        await nursery.start(ledger, database, receive, bus, now)
        async with send:
            await submit(send, control.SkuAdd(id=1, code="A"), "test")
            replies: list[control.StockReply] = []

            async def one_change(sender: trio.MemorySendChannel[LedgerRequest], n: int) -> None:
                async with sender:
                    replies.append(
                        await submit(
                            sender,
                            control.StockAdd(id=n, code="A", field="expected", delta=1),
                            "test",
                        )
                    )

            async with trio.open_nursery() as clients:
                for n in range(200):
                    clients.start_soon(one_change, send.clone(), n)
    # every acknowledged change is on disk (the ledger closed the database after draining)
    db = sqlite3.connect(database)
    assert db.execute("SELECT expected FROM stock WHERE sku = 'A'").fetchone() == (200,)
    assert db.execute("SELECT count(*), sum(delta) FROM journal WHERE sku = 'A'").fetchone() == (
        200,
        200,
    )
    assert sorted(r.stock.expected for r in replies) == list(range(1, 201))


async def test_batches_share_one_transaction(tmp_path: Path) -> None:
    """Requests queued while the worker is busy are applied together: fewer commits than requests."""
    bus = EventBus()
    subscription = bus.subscribe()
    send, receive = trio.open_memory_channel[LedgerRequest](256)
    replies = []
    async with trio.open_nursery() as nursery:
        await nursery.start(ledger, tmp_path / "z.sqlite3", receive, bus, now)
        await submit(send, control.SkuAdd(id=1, code="A"), "test")
        reply_channels = []
        for n in range(100):
            reply_send, reply_receive = trio.open_memory_channel[Result](1)
            send.send_nowait(
                LedgerRequest(
                    control.StockAdd(id=n, code="A", field="expected", delta=1), "t", reply_send
                )
            )
            reply_channels.append(reply_receive)
        for channel in reply_channels:
            replies.append(await channel.receive())
        await send.aclose()
    batches = []
    async for batch in subscription.receive:
        batches.append(batch)
    # one commit for the SkuAdd, then the 100 queued adds in one batch: one coalesced event
    assert len(batches) == 2
    assert batches[1][0].stock.expected == 100  # type: ignore[union-attr]
    assert all(isinstance(r, control.StockReply) for r in replies)


async def test_slow_subscriber_is_dropped_not_waited_for(tmp_path: Path) -> None:
    bus = EventBus(buffer=2)
    slow = bus.subscribe()
    send, receive = trio.open_memory_channel[LedgerRequest](16)
    async with trio.open_nursery() as nursery:
        await nursery.start(ledger, tmp_path / "z.sqlite3", receive, bus, now)
        await submit(send, control.SkuAdd(id=1, code="A"), "test")
        for n in range(5):
            await submit(send, control.StockAdd(id=n, code="A", field="expected", delta=1), "test")
        await send.aclose()
    received = [batch async for batch in slow.receive]
    assert slow.dropped
    assert len(received) == 2


async def test_caller_that_left_does_not_stall_the_ledger(tmp_path: Path) -> None:
    send, receive = trio.open_memory_channel[LedgerRequest](16)
    async with trio.open_nursery() as nursery:
        await nursery.start(ledger, tmp_path / "z.sqlite3", receive, EventBus(), now)
        reply_send, reply_receive = trio.open_memory_channel[Result](1)
        reply_receive.close()  # the caller went away
        await send.send(LedgerRequest(control.SkuAdd(id=1, code="A"), "t", reply_send))
        result = await submit(send, control.SkuShow(id=2, code="A"), "test")
        assert result.sku.code == "A"
        await send.aclose()


async def test_callers_learn_at_once_when_the_ledger_fails(tmp_path: Path) -> None:
    """A database failure stops the ledger; the callers of that batch are not left waiting."""
    from daemon.commands import LedgerUnavailable

    database = tmp_path / "z.sqlite3"
    send, receive = trio.open_memory_channel[LedgerRequest](16)
    outcome: list[str] = []

    async def caller() -> None:
        try:
            await submit(send, control.SkuAdd(id=1, code="A"), "test")
        except LedgerUnavailable:
            outcome.append("told")

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(ledger, database, receive, EventBus(), now)
            sqlite3.connect(database).execute("DROP TABLE skus")  # the database breaks under it
            nursery.start_soon(caller)
    except BaseExceptionGroup as group:
        assert group.subgroup(sqlite3.DatabaseError) is not None
    assert outcome == ["told"]


async def test_the_last_units_come_back_when_the_sales_pace_calms_without_a_request(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """A SKU selling fast is not shown to a file shop while few are left (the pace floor);
    ten minutes after its last sale the ledger, asked nothing, raises the target again."""
    start = datetime(2026, 11, 26, tzinfo=UTC)

    def wall_now() -> str:
        return stamp(start + timedelta(seconds=trio.current_time()))

    bus = EventBus()
    send, receive = trio.open_memory_channel[LedgerRequest](16)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(ledger, tmp_path / "z.sqlite3", receive, bus, wall_now, inline=True)
        )
        async with send:
            await submit(send, control.SkuAdd(id=1, code="A"), "test")
            await submit(send, control.StockSet(id=2, code="A", field="expected", value=12), "test")
            shops = (
                ShopSettings(id="r1", mall="rakuten", order_intake="active"),
                ShopSettings(id="y1", mall="yahoo", transport="ftp", ftp_url="ftps://u@127.0.0.1/"),
            )
            assert not isinstance(
                await submit(send, control.ShopsApply(id=3, shops=shops), "t"), control.Error
            )
            await trio.sleep_until(100.0)
            order = MallOrder(
                order_no="1",
                ordered_at=wall_now(),
                lines=(OrderLine(line_no=1, item_id="A", sku="A", quantity=6),),
            )
            await submit(send, TakeOrders(shop="r1", orders=(IncomingOrder(order),)), "test")

            async def targets() -> dict[str, int]:
                reply = await submit(send, control.SkuShow(id=4, code="A"), "test")
                assert isinstance(reply, control.SkuReply)
                return {q.shop: q.target for q in reply.sku.shops}

            # 6 sold in the last 10 minutes: the file shop (60 s + its batch's 15 min) would
            # sell 9.6 more before it learns of a sale elsewhere; with its own floor of 2 it is
            # shown nothing of the 6 left, the API shop (0.6: 1 more, floor 2) all of them
            assert await targets() == {"r1": 6, "y1": 0}
            # the sale leaves the pace at 700 s: the ledger, asked nothing, runs just after
            with closing(sqlite3.connect(tmp_path / "z.sqlite3")) as reader:

                def stored(shop: str) -> int:
                    query = "SELECT target FROM outbox WHERE shop = ? AND sku = 'A'"
                    found: int = reader.execute(query, (shop,)).fetchone()[0]
                    return found

                await trio.sleep_until(700.0 + PACE_SLACK_S - 0.001)
                assert stored("y1") == 0
                await trio.sleep_until(700.0 + PACE_SLACK_S)
                await trio.testing.wait_all_tasks_blocked()
                assert stored("y1") == 6
            assert await targets() == {"r1": 6, "y1": 6}
            nursery.cancel_scope.cancel()
