"""Order intake (受注取込) of one shop from its mall's order API: Amazon, Qoo10, Wow! manager,
ヤフオク! (and Rakuten's RMS order API where a shop uses it).

Every ``poll_s`` the actor asks the mall for the orders updated since its cursor minus an
overlap window (a mall's clock, or an order updated just at the edge, may lag: an order seen
twice is a replay), following every page and every order's items (the mall module's
``OrderPoll``), each request paced by the shop's token bucket and a 429's ``Retry-After``
honoured. The orders go to the ledger as one intake job; only after the ledger answered is
the cursor moved on (persisted in the ledger), so a crash, a mall that is down, or a 5xx
loses nothing: the next poll asks again from the same cursor, after a backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import trio

from daemon.clock import WallClock, stamp
from daemon.commands import (
    BacklogHandled,
    GetIntakeState,
    IncomingOrder,
    IntakeState,
    LedgerRequest,
    OrdersTaken,
    SaveIntakeCursor,
    TakeOrders,
    call,
)
from daemon.events import StatusBoard
from daemon.transports.http import HttpAnswer, HttpTransportError, TokenBucket
from protocols import control
from protocols.malls.base import (
    ApiAccount,
    HttpRequest,
    MallApiError,
    MallOrder,
    OrderPoll,
    RateLimited,
)
from protocols.settings import ShopSettings

log = logging.getLogger(__name__)

StartPoll = Callable[[ApiAccount, datetime, datetime], OrderPoll]
Send = Callable[[HttpRequest], Awaitable[HttpAnswer]]


class MallConnection(Protocol):
    async def send(self, request: HttpRequest) -> HttpAnswer: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class MallApi:
    """How to reach a shop's mall API: the account (its secret read from the credential
    file when the actor starts: a missing file fails the actor, shown in ``zaiko status``
    and retried by its supervisor) and a connection for each attempt."""

    account: Callable[[], ApiAccount]
    connect: Callable[[], MallConnection]


@dataclass(frozen=True)
class ApiIntakeSettings:
    poll_s: float = 60.0
    # orders updated this long before the cursor are asked for again (seen twice: a replay)
    overlap_s: float = 600.0
    # a poll asks up to this long before now: a mall's newest changes settle first (the
    # shop's wiring gives each mall its own: Amazon's API refuses less than two minutes)
    settle_s: float = 10.0
    # a mall whose window is on the order date (not the last change) shows a payment or a
    # cancellation of an older order only to a window over that date: every lookback_every_s
    # a poll reaches back lookback_s
    lookback_s: float = 0.0
    lookback_every_s: float = 600.0
    # after a failed poll: this, doubling up to backoff_max_s
    backoff_s: float = 5.0
    backoff_max_s: float = 600.0
    # a 429 without Retry-After waits this long
    rate_limited_s: float = 1.0


_SAID_LIMIT = 500


class PollFailed(Exception):
    """The mall could not be polled this time (down, 5xx, unreadable): try again later."""


async def run_poll(poll: OrderPoll, send: Send, bucket: TokenBucket, rate_limited_s: float) -> None:
    """Drive a poll to its end: each request paced by the bucket; a 429 waits its
    Retry-After (and holds the bucket, so no other call of the shop goes first) and sends
    the same request again."""
    while (request := poll.next_request()) is not None:
        await bucket.take()
        try:
            answer = await send(request)
        except HttpTransportError as exc:
            raise PollFailed(str(exc)) from exc
        try:
            poll.feed(answer.status, answer.headers, answer.body)
        except RateLimited as exc:
            bucket.hold(exc.retry_after if exc.retry_after is not None else rate_limited_s)
        except MallApiError as exc:
            raise PollFailed(f"{request.method} {request.path}: {exc}") from exc


async def api_intake(
    shop: ShopSettings,
    start_poll: StartPoll,
    api: MallApi,
    bucket: TokenBucket,
    board: StatusBoard,
    clock: Callable[[], float],
    wall_clock: WallClock,
    settings: ApiIntakeSettings,
    ledger: trio.MemorySendChannel[LedgerRequest],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    actor = f"shop:{shop.id}"
    account = await trio.to_thread.run_sync(api.account)
    connection = api.connect()
    try:
        state = await call(ledger, GetIntakeState(shop=shop.id), actor, IntakeState)
        if isinstance(state, control.Error):
            raise RuntimeError(f"cannot read the intake state: {state.message}")
        if shop.order_intake == "stopped":
            # orders wait at the mall; the backlog choice is asked when intake is switched on
            board.report_intake(shop.id, control.IntakeStatus())
            task_status.started()
            await trio.sleep_forever()
        cursor = state.cursor
        if state.backlog == "skip" and state.resumed_at:
            cursor = state.resumed_at  # what was placed while stopped is not taken
        if not cursor:
            # a new shop starts from now, not from its history
            cursor = stamp(wall_clock() - timedelta(seconds=settings.settle_s))
        if state.backlog or not state.cursor:
            await _save(ledger, SaveIntakeCursor(shop=shop.id, cursor=cursor), actor)
        if state.backlog:
            await _save(ledger, BacklogHandled(shop=shop.id), actor)
        skipped = _placed_in(state.skipped_from, state.skipped_until)
        report = control.IntakeStatus()
        board.report_intake(shop.id, report)
        task_status.started()
        failures = 0
        # an order that does not read comes back in every poll whose window holds it: it is
        # said once (the newest few hundred are remembered)
        said: dict[str, None] = {}
        deadline = clock()
        next_lookback = clock()
        while True:
            until = wall_clock() - timedelta(seconds=settings.settle_s)
            since = datetime.fromisoformat(cursor) - timedelta(seconds=settings.overlap_s)
            if settings.lookback_s and clock() >= next_lookback:
                since = min(since, until - timedelta(seconds=settings.lookback_s))
                next_lookback = clock() + settings.lookback_every_s
            since = min(since, until)
            try:
                poll = start_poll(account, since, until)
                await run_poll(poll, connection.send, bucket, settings.rate_limited_s)
                problems = [problem for problem in poll.unreadable if problem not in said]
                orders = [order for order in poll.orders if not skipped(order)]
                taken = await _take(ledger, shop.id, orders, problems, actor)
            except PollFailed as exc:
                delay = min(settings.backoff_max_s, settings.backoff_s * 2 ** min(failures, 20))
                failures += 1
                log.warning("shop %s: order poll failed (%s); again in %.0fs", shop.id, exc, delay)
                report = control.IntakeStatus(ignored=report.ignored, last_error=str(exc))
                board.report_intake(shop.id, report)
                await trio.sleep_until(clock() + delay)
                continue
            failures = 0
            said.update(dict.fromkeys(problems))
            for stale in list(said)[: max(0, len(said) - _SAID_LIMIT)]:
                del said[stale]
            cursor = stamp(until)
            await _save(ledger, SaveIntakeCursor(shop=shop.id, cursor=cursor), actor)
            error = ""
            if taken is not None and taken.job.failure:
                error = f"job {taken.job.id}: {taken.job.messages[0]}"
            report = control.IntakeStatus(ignored=report.ignored + poll.ignored, last_error=error)
            board.report_intake(shop.id, report)
            deadline = max(deadline + settings.poll_s, clock())
            await trio.sleep_until(deadline)
    finally:
        with trio.CancelScope(shield=True):
            await connection.aclose()


def _placed_in(start: str, end: str) -> Callable[[MallOrder], bool]:
    """Whether an order was placed in ``(start, end]`` (no ``end``: never; no ``start``:
    since ever), the backlog the operator skipped."""
    if not end:
        return lambda order: False
    until = datetime.fromisoformat(end)
    since = datetime.fromisoformat(start) if start else None

    def placed_in(order: MallOrder) -> bool:
        placed = datetime.fromisoformat(order.ordered_at)
        return placed <= until and (since is None or placed > since)

    return placed_in


async def _take(
    ledger: trio.MemorySendChannel[LedgerRequest],
    shop: str,
    orders: list[MallOrder],
    unreadable: list[str],
    actor: str,
) -> OrdersTaken | None:
    if not orders and not unreadable:
        return None
    taken = await call(
        ledger,
        TakeOrders(
            shop=shop,
            orders=tuple(IncomingOrder(o, source="api") for o in orders),
            problems=tuple(
                f"not taken: {problem}; correct it at the mall (it is read again while the "
                "poll window holds it) or move its stock by hand (zaiko stock add)"
                for problem in unreadable
            ),
        ),
        actor,
        OrdersTaken,
    )
    if isinstance(taken, control.Error):
        # intake stopped meanwhile, or the ledger refused: the cursor stays, nothing is lost
        raise PollFailed(f"the ledger did not take the orders: {taken.message}")
    return taken


async def _save(
    ledger: trio.MemorySendChannel[LedgerRequest],
    command: SaveIntakeCursor | BacklogHandled,
    actor: str,
) -> None:
    saved = await call(ledger, command, actor, IntakeState)
    if isinstance(saved, control.Error):
        raise RuntimeError(f"cannot save the intake state: {saved.message}")
