"""API intake with a virtual clock against the real ledger task: every page, 429 with
Retry-After at the exact time, overlapping polls taken once, a mall that is down loses
nothing, the cursor persisted."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import msgspec
import trio
import trio.testing

from daemon.actors.api_intake import ApiIntakeSettings, MallApi, _placed_in, api_intake
from daemon.actors.ledger import ledger
from daemon.commands import LedgerRequest, submit
from daemon.events import EventBus, StatusBoard
from daemon.transports.http import RATE_MARGIN, HttpAnswer, HttpTransportError, TokenBucket
from protocols import control
from protocols.malls.base import (
    ApiAccount,
    HttpRequest,
    MallApiError,
    MallOrder,
    OrderLine,
    RateLimited,
)
from protocols.settings import ShopSettings

START = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
PAGE = 2


def wall() -> datetime:
    return START + timedelta(seconds=trio.current_time())


def ledger_now() -> str:
    """The ledger's journal time (it runs on a worker thread, away from trio's clock)."""
    return START.isoformat(timespec="milliseconds")


@dataclass
class FakeMall:
    """An order API: orders by the time they were last updated, served in pages of two;
    scripted answers (429, 503, down) come first."""

    orders: list[tuple[datetime, MallOrder]] = field(default_factory=list)
    script: list[object] = field(default_factory=list)
    calls: list[tuple[float, str]] = field(default_factory=list)
    windows: list[tuple[datetime, datetime]] = field(default_factory=list)
    unreadable: list[tuple[datetime, str]] = field(default_factory=list)

    def order(self, number: str, quantity: int, status: str = "new") -> None:
        self.orders.append(
            (
                wall(),
                MallOrder(
                    order_no=number,
                    ordered_at=wall().isoformat(),
                    status=status,  # type: ignore[arg-type]
                    lines=(OrderLine(line_no=1, item_id="A", sku="A", quantity=quantity),),
                ),
            )
        )

    async def send(self, request: HttpRequest) -> HttpAnswer:
        self.calls.append((trio.current_time(), dict(request.query)["page"]))
        if self.script:
            scripted = self.script.pop(0)
            if isinstance(scripted, Exception):
                raise scripted
            assert isinstance(scripted, HttpAnswer)
            return scripted
        return HttpAnswer(200, {}, b"")

    async def aclose(self) -> None:
        pass

    def start_poll(self, account: ApiAccount, since: datetime, until: datetime) -> FakePoll:
        assert account.secret == "s3cret"
        self.windows.append((since, until))
        chosen = [order for at, order in self.orders if since <= at <= until]
        return FakePoll(
            [chosen[i : i + PAGE] for i in range(0, len(chosen), PAGE)] or [[]],
            [problem for at, problem in self.unreadable if since <= at <= until],
        )


class FakePoll:
    def __init__(self, pages: list[list[MallOrder]], unreadable: list[str]) -> None:
        self.pages = pages
        self.page = 0
        self.orders: list[MallOrder] = []
        self.ignored = 0
        self.unreadable = unreadable

    def next_request(self) -> HttpRequest | None:
        if self.page >= len(self.pages):
            return None
        return HttpRequest(method="GET", path="/orders", query=(("page", str(self.page)),))

    def feed(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        if status == 429:
            retry = headers.get("retry-after")
            raise RateLimited("too many requests", float(retry) if retry else None)
        if status != 200:
            raise MallApiError(f"HTTP {status}")
        self.orders += self.pages[self.page]
        self.page += 1


async def stock_of(send: trio.MemorySendChannel[LedgerRequest], code: str) -> int:
    reply = await submit(send, control.SkuShow(id=1, code=code), "test")
    assert isinstance(reply, control.SkuReply)
    return reply.sku.stock.expected


class Board(StatusBoard):
    def __init__(self) -> None:
        super().__init__(EventBus(), ledger_now)
        self.reports, self._receive = trio.open_memory_channel[control.IntakeStatus](100)

    def report_intake(self, shop: str, report: control.IntakeStatus) -> None:
        super().report_intake(shop, report)
        self.reports.send_nowait(report)

    async def next(self) -> control.IntakeStatus:
        return await self._receive.receive()


async def run_with(
    tmp_path: Path, mall: FakeMall, body: object, settings: ApiIntakeSettings | None = None
) -> None:
    send, receive = trio.open_memory_channel[LedgerRequest](64)
    board = Board()
    async with trio.open_nursery() as nursery:
        # inline: the virtual clock cannot jump on while the ledger works
        await nursery.start(
            partial(ledger, tmp_path / "z.sqlite3", receive, EventBus(), ledger_now, inline=True)
        )
        async with send:
            shop = msgspec.convert(
                {"id": "a1", "mall": "amazon", "order_intake": "active"}, ShopSettings
            )
            for command in (
                control.ShopsApply(id=1, shops=(shop,)),
                control.SkuAdd(id=1, code="A"),
                control.StockSet(id=1, code="A", field="expected", value=100),
            ):
                assert not isinstance(await submit(send, command, "test"), control.Error)
            api = MallApi(
                account=lambda: ApiAccount(base_url="http://mall", secret="s3cret"),
                connect=lambda: mall,
            )
            scope = await nursery.start(
                _intake,
                shop,
                mall,
                api,
                board,
                settings or ApiIntakeSettings(settle_s=0),
                send.clone(),
            )
            await body(send, board)  # type: ignore[operator]
            scope.cancel()


async def _intake(
    shop: ShopSettings,
    mall: FakeMall,
    api: MallApi,
    board: Board,
    settings: ApiIntakeSettings,
    send: trio.MemorySendChannel[LedgerRequest],
    *,
    task_status: trio.TaskStatus[trio.CancelScope],
) -> None:
    with trio.CancelScope() as scope, send:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                api_intake,
                shop,
                mall.start_poll,
                api,
                TokenBucket(RATE_MARGIN, trio.current_time),  # one request a second
                board,
                trio.current_time,
                wall,
                settings,
                send,
            )
            task_status.started(scope)


async def test_every_page_once_429_waits_its_retry_after_and_overlaps_replay(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    mall = FakeMall()

    async def body(send: trio.MemorySendChannel[LedgerRequest], board: Board) -> None:
        await board.next()  # started: the first poll (at 0) found nothing
        await board.next()
        for number, quantity in (("o1", 1), ("o2", 2), ("o3", 3)):
            mall.order(number, quantity)
        mall.script = [HttpAnswer(200, {}, b""), HttpAnswer(429, {"retry-after": "7"}, b"")]
        await board.next()  # the poll at 60: page 0, page 1 → 429, page 1 again at 68
        # (no ledger call here: while the test waits on a thread, the clock may jump on)
        mall.order("o4", 4)
        await board.next()  # the poll at 120 sees o1–o3 again (overlap) and o4
        assert await stock_of(send, "A") == 90
        assert mall.calls[:5] == [(0.0, "0"), (60.0, "0"), (61.0, "1"), (68.0, "1"), (120.0, "0")]
        since, until = mall.windows[-1]
        assert until - since == timedelta(seconds=60 + 600)

    await run_with(tmp_path, mall, body)
    db = sqlite3.connect(tmp_path / "z.sqlite3")
    (cursor,) = db.execute("SELECT cursor FROM intake_state WHERE shop = 'a1'").fetchone()
    assert cursor == (START + timedelta(seconds=120)).isoformat(timespec="milliseconds")
    # each poll that found orders is an intake job; later polls replay, nothing twice
    assert db.execute("SELECT count(*) FROM orders").fetchone() == (4,)
    assert db.execute(
        "SELECT count(*) FROM jobs WHERE kind = 'intake' AND result != 'ok'"
    ).fetchone() == (0,)


async def test_a_mall_that_is_down_delays_intake_and_loses_nothing(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    mall = FakeMall()
    settings = ApiIntakeSettings(poll_s=60, backoff_s=5, backoff_max_s=600, settle_s=0)

    async def body(send: trio.MemorySendChannel[LedgerRequest], board: Board) -> None:
        await board.next()  # started
        await board.next()  # the poll at 0
        mall.order("d1", 5)
        down = HttpTransportError("GET /orders: connection refused")
        mall.script = [down, HttpAnswer(503, {}, b"down"), down]
        failed = await board.next()
        assert failed.last_error == "GET /orders: connection refused"
        await board.next()
        await board.next()
        recovered = await board.next()
        assert recovered.last_error == ""
        assert await stock_of(send, "A") == 95
        # the poll at 60 fails; then waits of 5, 10, 20 seconds
        assert [t for t, _ in mall.calls][:5] == [0.0, 60.0, 65.0, 75.0, 95.0]

    await run_with(tmp_path, mall, body, settings)


async def test_an_order_that_does_not_read_is_said_once_and_holds_back_nothing(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    mall = FakeMall()

    async def body(send: trio.MemorySendChannel[LedgerRequest], board: Board) -> None:
        await board.next()  # started
        await board.next()  # the poll at 0
        mall.unreadable.append((wall(), "order x9: unknown OrderStatus 'Lost'"))
        mall.order("o1", 3)
        taken = await board.next()  # the poll at 60: o1 taken, x9 said
        assert taken.last_error.startswith("job ")
        assert "not taken: order x9: unknown OrderStatus 'Lost'; correct it at the mall" in (
            taken.last_error
        )
        again = await board.next()  # the poll at 120 sees both again (overlap): said once
        assert again.last_error == ""
        assert await stock_of(send, "A") == 97

    await run_with(tmp_path, mall, body)
    db = sqlite3.connect(tmp_path / "z.sqlite3")
    # two polls saw o1 (the second a replay); only the first said x9
    assert db.execute(
        "SELECT count(*), sum(failure), sum(success) FROM jobs WHERE kind = 'intake'"
    ).fetchone() == (2, 1, 2)
    assert db.execute(
        "SELECT count(*) FROM job_messages WHERE message LIKE '%order x9%'"
    ).fetchone() == (1,)


async def test_a_mall_searched_by_order_date_is_asked_back_over_days_now_and_then(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """Rakuten, Qoo10, Wow! manager search by order date: a cancellation of an older order
    shows only in a window over that date. The newest two minutes are left to settle."""
    mall = FakeMall()
    settings = ApiIntakeSettings(lookback_s=86400, lookback_every_s=600, settle_s=120)

    async def body(send: trio.MemorySendChannel[LedgerRequest], board: Board) -> None:
        for _ in range(12):
            await board.next()

    await run_with(tmp_path, mall, body, settings)
    spans = [(until - since).total_seconds() for since, until in mall.windows]
    # at 0 and at 600 s a day back; in between from the cursor minus the overlap
    assert spans[0] == 86400 and spans[10] == 86400
    assert spans[1:10] == [60 + 600] * 9
    assert all(
        until == START + timedelta(seconds=60 * n - 120)
        for n, (_, until) in enumerate(mall.windows)
    )


def test_a_skipped_backlog_is_what_was_placed_while_stopped() -> None:
    def order(at: str) -> MallOrder:
        return MallOrder(order_no="o", ordered_at=at, status="new", lines=())

    skipped = _placed_in("2026-11-26T00:00:00.000+00:00", "2026-11-26T01:00:00.000+00:00")
    assert not skipped(order("2026-11-26T09:00:00+09:00"))  # at the stop: taken before it
    assert skipped(order("2026-11-26T09:00:01+09:00"))
    assert skipped(order("2026-11-26T10:00:00+09:00"))  # at the switch-on: skipped
    assert not skipped(order("2026-11-26T01:00:00.001+00:00"))
    since_ever = _placed_in("", "2026-11-26T01:00:00.000+00:00")
    assert since_ever(order("2020-01-01T00:00:00+09:00"))
    assert not _placed_in("", "")(order("2020-01-01T00:00:00+09:00"))
