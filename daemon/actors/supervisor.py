"""Per-shop supervision: each shop's actors run in that shop's nursery and are restarted
with exponential backoff when they fail; a change of the shop's settings restarts them with
the new settings. A shop's failure never reaches the ledger or the other shops.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

import trio

from daemon.commands import LedgerRequest, ListShops, ShopsList, call
from daemon.events import EventBus
from protocols import control
from protocols.settings import ShopSettings

log = logging.getLogger(__name__)


class ActorSpec(NamedTuple):
    """An actor of a shop: ``run(shop, task_status=...)`` calls ``task_status.started()``
    once ready and runs until cancelled; raising means it failed and will be restarted."""

    name: str
    run: Callable[..., Awaitable[None]]


class Backoff(NamedTuple):
    initial_s: float = 1.0
    max_s: float = 300.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_s, self.initial_s * 2 ** min(attempt, 32)))


class StatusBoard:
    """What each shop's actors are doing, for ``zaiko status``; changes go out as events."""

    def __init__(self, bus: EventBus, now: Callable[[], str]) -> None:
        self._bus = bus
        self._now = now
        self._actors: dict[str, dict[str, control.ActorStatus]] = {}

    def update(
        self, shop: str, name: str, state: Any, *, error: str = "", restarts: int = 0
    ) -> None:
        status = control.ActorStatus(
            name=name, state=state, restarts=restarts, last_error=error, since=self._now()
        )
        self._actors.setdefault(shop, {})[name] = status
        self._bus.publish([control.ActorChanged(shop=shop, actor=status)])

    def actors(self, shop: str) -> tuple[control.ActorStatus, ...]:
        return tuple(self._actors.get(shop, {}).values())

    def forget(self, shop: str) -> None:
        self._actors.pop(shop, None)


def describe(exc: BaseException) -> str:
    """One line for an actor's failure, unwrapping the exception groups nurseries raise."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def keep_running(
    shop: ShopSettings,
    spec: ActorSpec,
    board: StatusBoard,
    backoff: Backoff,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one actor, restarting it after failures; ready once its first start settled."""
    restarts = 0
    attempt = 0
    ready_told = False
    last_error = ""
    while True:
        board.update(shop.id, spec.name, "starting", restarts=restarts, error=last_error)
        started_at = trio.current_time()
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(spec.run, shop)
                board.update(shop.id, spec.name, "running", restarts=restarts, error=last_error)
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
                shop.id,
                spec.name,
                last_error,
                restarts,
                delay,
            )
            board.update(shop.id, spec.name, "restarting", restarts=restarts, error=last_error)
            if not ready_told:
                ready_told = True
                task_status.started()
            await trio.sleep(delay)
        else:
            board.update(shop.id, spec.name, "stopped", restarts=restarts, error=last_error)
            if not ready_told:
                task_status.started()
            return


async def run_shop(
    shop: ShopSettings,
    updates: trio.MemoryReceiveChannel[ShopSettings],
    actors_for: Callable[[ShopSettings], Sequence[ActorSpec]],
    board: StatusBoard,
    backoff: Backoff,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """One shop's nursery; new settings restart its actors, a closed channel ends it."""
    async with updates:
        while True:
            async with trio.open_nursery() as nursery:
                for spec in actors_for(shop):
                    await nursery.start(keep_running, shop, spec, board, backoff)
                task_status.started()
                task_status = trio.TASK_STATUS_IGNORED
                try:
                    shop = await updates.receive()
                except trio.EndOfChannel:
                    return
                finally:
                    nursery.cancel_scope.cancel()
            log.info("shop %s: settings changed, actors restarted", shop.id)


async def supervise_shops(
    ledger: trio.MemorySendChannel[LedgerRequest],
    bus: EventBus,
    actors_for: Callable[[ShopSettings], Sequence[ActorSpec]],
    board: StatusBoard,
    backoff: Backoff,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Start every shop's actors, then follow shop changes published by the ledger."""
    channels: dict[str, trio.MemorySendChannel[ShopSettings]] = {}
    current: dict[str, ShopSettings] = {}

    async def reconcile(nursery: trio.Nursery, shops: Sequence[ShopSettings]) -> None:
        for shop in shops:
            if shop.id not in channels:
                send, receive = trio.open_memory_channel[ShopSettings](4)
                channels[shop.id] = send
                current[shop.id] = shop
                await nursery.start(run_shop, shop, receive, actors_for, board, backoff)
            elif current[shop.id] != shop:
                current[shop.id] = shop
                await channels[shop.id].send(shop)

    async with ledger, trio.open_nursery() as nursery:
        try:
            while True:
                subscription = bus.subscribe(frozenset({"shops"}))
                listed: ShopsList = await call(ledger, ListShops(), "supervisor")
                await reconcile(nursery, listed.shops)
                task_status.started()
                task_status = trio.TASK_STATUS_IGNORED
                async for batch in subscription.receive:
                    changed = [e.shop for e in batch if isinstance(e, control.ShopChanged)]
                    await reconcile(nursery, changed)
                if not subscription.dropped:
                    return  # the ledger closed the bus: shutting down
                log.warning("supervisor fell behind on shop events; re-reading shops")
        finally:
            for send in channels.values():
                send.close()
