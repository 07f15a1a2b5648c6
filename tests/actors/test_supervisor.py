"""Per-shop supervision with a virtual clock: restarts, backoff timing, status, live settings,
each attempt's own ledger channel, and a shop listing the ledger refuses."""

from __future__ import annotations

from functools import partial

import msgspec
import trio
import trio.testing

from daemon.actors.supervisor import ActorSpec, Backoff, keep_running, run_shop, supervise_shops
from daemon.commands import LedgerRequest, ListShops, ShopsList
from daemon.wiring import ShopWiring
from protocols import control
from protocols.settings import ShopSettings

SHOP = msgspec.convert({"id": "r1", "mall": "rakuten"}, ShopSettings)
LedgerChannel = tuple[
    trio.MemorySendChannel[LedgerRequest], trio.MemoryReceiveChannel[LedgerRequest]
]


async def test_failing_actor_is_restarted_with_exponential_backoff(
    autojump_clock: trio.testing.MockClock, wiring: ShopWiring
) -> None:
    starts: list[float] = []
    fifth_start = trio.Event()

    async def flaky(ledger: object, *, task_status: trio.TaskStatus[None]) -> None:
        starts.append(trio.current_time())
        task_status.started()
        if len(starts) <= 4:
            raise RuntimeError(f"mall unreachable (attempt {len(starts)})")
        fifth_start.set()
        await trio.sleep_forever()

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            keep_running, "r1", ActorSpec("intake", flaky), wiring, Backoff(1.0, 300.0)
        )
        await fifth_start.wait()
        await trio.testing.wait_all_tasks_blocked()
        (status,) = wiring.board.actors("r1")
        assert status.state == "running"
        assert status.restarts == 4
        assert status.last_error == "RuntimeError: mall unreachable (attempt 4)"
        nursery.cancel_scope.cancel()
    # failures at 0, then waits 1, 2, 4, 8 seconds
    assert [t - start for t in starts] == [0.0, 1.0, 3.0, 7.0, 15.0]


async def test_backoff_is_capped(autojump_clock: trio.testing.MockClock) -> None:
    assert Backoff(1.0, 10.0).delay(0) == 1.0
    assert Backoff(1.0, 10.0).delay(3) == 8.0
    assert Backoff(1.0, 10.0).delay(10) == 10.0


async def test_failure_during_start_still_lets_the_daemon_start(
    autojump_clock: trio.testing.MockClock, wiring: ShopWiring
) -> None:
    async def broken(ledger: object, *, task_status: trio.TaskStatus[None]) -> None:
        raise OSError("credential file missing")

    async with trio.open_nursery() as nursery:
        await nursery.start(
            keep_running, "r1", ActorSpec("reflector", broken), wiring, Backoff(5.0, 60.0)
        )
        (status,) = wiring.board.actors("r1")
        assert status.state == "restarting"
        assert "credential file missing" in status.last_error
        nursery.cancel_scope.cancel()


async def test_each_attempt_gets_a_ledger_channel_of_its_own_closed_when_it_ends(
    autojump_clock: trio.testing.MockClock, wiring: ShopWiring
) -> None:
    channels: list[trio.MemorySendChannel[LedgerRequest]] = []
    second = trio.Event()

    async def actor(
        ledger: trio.MemorySendChannel[LedgerRequest], *, task_status: trio.TaskStatus[None]
    ) -> None:
        channels.append(ledger)
        task_status.started()
        if len(channels) == 1:
            raise RuntimeError("first attempt fails")
        second.set()
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        await nursery.start(keep_running, "r1", ActorSpec("a", actor), wiring, Backoff(1.0, 1.0))
        await second.wait()
        first, current = channels
        assert first is not current and first is not wiring.ledger
        # the failed attempt's end is closed; the running one's still sends
        try:
            first.send_nowait(LedgerRequest(ListShops(), "a", trio.open_memory_channel(1)[0]))
        except trio.ClosedResourceError:
            pass
        else:
            raise AssertionError("the first attempt's ledger channel is still open")
        current.send_nowait(LedgerRequest(ListShops(), "a", trio.open_memory_channel(1)[0]))
        nursery.cancel_scope.cancel()


async def test_new_settings_restart_the_shops_actors(
    autojump_clock: trio.testing.MockClock, wiring: ShopWiring
) -> None:
    seen: list[int] = []

    async def actor(
        shop: ShopSettings, ledger: object, *, task_status: trio.TaskStatus[None]
    ) -> None:
        seen.append(shop.send_interval_min)
        task_status.started()
        await trio.sleep_forever()

    send, receive = trio.open_memory_channel[ShopSettings](1)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            run_shop,
            SHOP,
            receive,
            lambda shop, wiring: [ActorSpec("a", partial(actor, shop))],
            wiring,
            Backoff(),
        )
        assert seen == [5]
        await send.send(msgspec.structs.replace(SHOP, send_interval_min=30))
        await trio.testing.wait_all_tasks_blocked()
        assert seen == [5, 30]
        await send.aclose()  # closing the channel ends the shop
    assert wiring.board.actors("r1")[0].state == "running"


async def test_a_shop_listing_the_ledger_refuses_is_retried_not_fatal(
    autojump_clock: trio.testing.MockClock, wiring: ShopWiring, ledger_channel: LedgerChannel
) -> None:
    """An internal error answering the supervisor's shop listing does not stop the daemon:
    it starts without shop actors and lists again after the backoff."""
    _, requests = ledger_channel
    asked_at: list[float] = []
    started: list[str] = []
    actor_started = trio.Event()

    async def ledger() -> None:
        async for request in requests:
            assert isinstance(request.command, ListShops)
            asked_at.append(trio.current_time())
            if len(asked_at) == 1:
                answer: object = control.Error(id=None, code="internal", message="internal error")
            else:
                answer = ShopsList(shops=(SHOP,))
            request.reply.send_nowait(answer)  # type: ignore[arg-type]
            request.reply.close()

    async def actor(
        shop: ShopSettings, ledger: object, *, task_status: trio.TaskStatus[None]
    ) -> None:
        started.append(shop.id)
        actor_started.set()
        task_status.started()
        await trio.sleep_forever()

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ledger)
        await nursery.start(
            supervise_shops,
            wiring,
            lambda shop, wiring: [ActorSpec("intake", partial(actor, shop))],
            Backoff(2.0, 60.0),
        )
        assert started == []  # ready, without shops
        await actor_started.wait()
        assert [t - start for t in asked_at] == [0.0, 2.0]
        assert started == ["r1"]
        nursery.cancel_scope.cancel()
