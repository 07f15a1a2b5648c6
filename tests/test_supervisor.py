"""Per-shop supervision with a virtual clock: restarts, backoff timing, status, live settings."""

from __future__ import annotations

import msgspec
import trio
import trio.testing

from daemon.actors.supervisor import ActorSpec, Backoff, StatusBoard, keep_running, run_shop
from daemon.events import EventBus
from protocols.settings import ShopSettings

SHOP = msgspec.convert({"id": "r1", "mall": "rakuten"}, ShopSettings)


def wall() -> str:
    return "2026-11-26T00:00:00.000+00:00"


async def test_failing_actor_is_restarted_with_exponential_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[float] = []
    board = StatusBoard(EventBus(), wall)
    fifth_start = trio.Event()

    async def flaky(shop: ShopSettings, *, task_status: trio.TaskStatus[None]) -> None:
        starts.append(trio.current_time())
        task_status.started()
        if len(starts) <= 4:
            raise RuntimeError(f"mall unreachable (attempt {len(starts)})")
        fifth_start.set()
        await trio.sleep_forever()

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            keep_running, SHOP, ActorSpec("intake", flaky), board, Backoff(1.0, 300.0)
        )
        await fifth_start.wait()
        await trio.testing.wait_all_tasks_blocked()
        (status,) = board.actors("r1")
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
    autojump_clock: trio.testing.MockClock,
) -> None:
    board = StatusBoard(EventBus(), wall)

    async def broken(shop: ShopSettings, *, task_status: trio.TaskStatus[None]) -> None:
        raise OSError("credential file missing")

    async with trio.open_nursery() as nursery:
        await nursery.start(
            keep_running, SHOP, ActorSpec("reflector", broken), board, Backoff(5.0, 60.0)
        )
        (status,) = board.actors("r1")
        assert status.state == "restarting"
        assert "credential file missing" in status.last_error
        nursery.cancel_scope.cancel()


async def test_new_settings_restart_the_shops_actors(
    autojump_clock: trio.testing.MockClock,
) -> None:
    board = StatusBoard(EventBus(), wall)
    seen: list[int] = []

    async def actor(shop: ShopSettings, *, task_status: trio.TaskStatus[None]) -> None:
        seen.append(shop.send_interval_min)
        task_status.started()
        await trio.sleep_forever()

    send, receive = trio.open_memory_channel[ShopSettings](1)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            run_shop, SHOP, receive, lambda shop: [ActorSpec("a", actor)], board, Backoff()
        )
        assert seen == [5]
        await send.send(msgspec.structs.replace(SHOP, send_interval_min=30))
        await trio.testing.wait_all_tasks_blocked()
        assert seen == [5, 30]
        await send.aclose()  # closing the channel ends the shop
    assert board.actors("r1")[0].state == "running"
