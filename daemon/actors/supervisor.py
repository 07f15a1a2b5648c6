"""Per-shop supervision: each shop's actors run in that shop's nursery and are restarted
with exponential backoff when they fail; a change of the shop's settings restarts them with
the new settings. A shop's failure never reaches the ledger or the other shops.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

import trio

from daemon.commands import LedgerRequest, LedgerUnavailable, ListShops, ShopsList, call
from daemon.wiring import ShopWiring
from protocols import control
from protocols.settings import ShopSettings

log = logging.getLogger(__name__)


class ActorSpec(NamedTuple):
    """An actor of a shop: ``run(ledger, task_status=...)`` gets a ledger send end of its
    own for this attempt, calls ``task_status.started()`` once ready and runs until
    cancelled; raising means it failed and will be restarted. Everything else it needs (the
    shop's settings, clocks, paths) is bound by ``actors_for``."""

    name: str
    run: Callable[..., Awaitable[None]]


ActorsFor = Callable[[ShopSettings, ShopWiring], Sequence[ActorSpec]]


class Backoff(NamedTuple):
    initial_s: float = 1.0
    max_s: float = 300.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_s, self.initial_s * 2 ** min(attempt, 32)))


def describe(exc: BaseException) -> str:
    """One line for an actor's failure, unwrapping the exception groups nurseries raise."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def keep_running(
    shop_id: str,
    spec: ActorSpec,
    wiring: ShopWiring,
    backoff: Backoff,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one actor, restarting it after failures; ready once its first start settled."""
    board = wiring.board
    restarts = 0
    attempt = 0
    ready_told = False
    last_error = ""
    while True:
        board.update(shop_id, spec.name, "starting", restarts=restarts, error=last_error)
        started_at = trio.current_time()
        try:
            with wiring.ledger.clone() as ledger:
                async with trio.open_nursery() as nursery:
                    await nursery.start(spec.run, ledger)
                    board.update(shop_id, spec.name, "running", restarts=restarts, error=last_error)
                    if not ready_told:
                        ready_told = True
                        task_status.started()
        except Exception as exc:
            last_error = describe(exc)
            restarts += 1
            # an actor that ran a long time before failing starts its backoff afresh
            if trio.current_time() - started_at >= backoff.max_s:
                attempt = 0
            delay = backoff.delay(attempt)
            attempt += 1
            log.warning(
                "shop %s actor %s failed (%s); restart %d in %.1fs",
                shop_id,
                spec.name,
                last_error,
                restarts,
                delay,
            )
            board.update(shop_id, spec.name, "restarting", restarts=restarts, error=last_error)
            if not ready_told:
                ready_told = True
                task_status.started()
            await trio.sleep(delay)
        else:
            board.update(shop_id, spec.name, "stopped", restarts=restarts, error=last_error)
            if not ready_told:
                task_status.started()
            return


async def run_shop(
    shop: ShopSettings,
    updates: trio.MemoryReceiveChannel[ShopSettings],
    actors_for: ActorsFor,
    wiring: ShopWiring,
    backoff: Backoff,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """One shop's nursery; new settings restart its actors, a closed channel ends it."""
    async with updates:
        while True:
            async with trio.open_nursery() as nursery:
                for spec in actors_for(shop, wiring):
                    await nursery.start(keep_running, shop.id, spec, wiring, backoff)
                task_status.started()
                task_status = trio.TASK_STATUS_IGNORED
                try:
                    shop = await updates.receive()
                except trio.EndOfChannel:
                    return
                finally:
                    nursery.cancel_scope.cancel()
            # the new settings may run other actors: the old ones' entries go
            wiring.board.forget(shop.id)
            log.info("shop %s: settings changed, actors restarted", shop.id)


async def supervise_shops(
    wiring: ShopWiring,
    actors_for: ActorsFor,
    backoff: Backoff,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Start every shop's actors, then follow shop changes published by the ledger.

    ``wiring.ledger`` is this task's own send end, closed when it returns. A shop listing the
    ledger refuses (an internal error) is retried with backoff; it never stops the daemon.
    """
    channels: dict[str, trio.MemorySendChannel[ShopSettings]] = {}
    current: dict[str, ShopSettings] = {}

    async def reconcile(nursery: trio.Nursery, shops: Sequence[ShopSettings]) -> None:
        for shop in shops:
            if shop.id not in channels:
                send, receive = trio.open_memory_channel[ShopSettings](4)
                channels[shop.id] = send
                current[shop.id] = shop
                await nursery.start(run_shop, shop, receive, actors_for, wiring, backoff)
            elif current[shop.id] != shop:
                current[shop.id] = shop
                await channels[shop.id].send(shop)

    async with wiring.ledger, trio.open_nursery() as nursery:
        try:
            failures = 0
            while True:
                subscription = wiring.bus.subscribe(frozenset({"shops"}))
                listed = await _list_shops(wiring.ledger)
                if isinstance(listed, control.Error):
                    wiring.bus.unsubscribe(subscription)
                    delay = backoff.delay(failures)
                    failures += 1
                    log.error(
                        "cannot list the shops (%s); retrying in %.1fs", listed.message, delay
                    )
                    # the daemon starts without shop actors rather than not at all
                    task_status.started()
                    task_status = trio.TASK_STATUS_IGNORED
                    await trio.sleep(delay)
                    continue
                failures = 0
                await reconcile(nursery, listed.shops)
                task_status.started()
                task_status = trio.TASK_STATUS_IGNORED
                async for batch in subscription.receive:
                    changed = [e.shop for e in batch if isinstance(e, control.ShopChanged)]
                    await reconcile(nursery, changed)
                if not subscription.dropped:
                    return  # the ledger closed the bus: shutting down
                log.warning("supervisor fell behind on shop events; re-reading shops")
        except LedgerUnavailable:
            return  # the ledger stopped: the daemon is shutting down
        finally:
            for send in channels.values():
                send.close()


async def _list_shops(
    ledger: trio.MemorySendChannel[LedgerRequest],
) -> ShopsList | control.Error:
    return await call(ledger, ListShops(), "supervisor", ShopsList)
