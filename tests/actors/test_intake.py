"""Mail intake against the real ledger task and real Maildirs: exactly once, filing only after
the ledger answered, non-order notices, broken mails, the modes and the backlog choice."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import trio

from daemon.actors.intake import Maildir, MailIntakeSettings, mail_intake
from daemon.actors.ledger import ledger
from daemon.commands import ChangeShops, IncomingOrder, LedgerRequest, TakeOrders, submit
from daemon.events import EventBus, StatusBoard
from mallsim.maildir import deliver
from protocols import control
from protocols.malls import rakuten
from protocols.malls.base import MallOrder, OrderLine
from protocols.settings import ShopSettings

FAST = MailIntakeSettings(poll_s=0.01, stopped_poll_s=0.01, batch_mails=3)


STOPPED = datetime(2026, 11, 26, tzinfo=UTC).timestamp()
# the ledger's wall clock (journal times, when intake stopped and was switched on again)
WALL = [STOPPED]


def now() -> str:
    return datetime.fromtimestamp(WALL[0], UTC).isoformat(timespec="milliseconds")


def order_mail(order_no: str, *lines: tuple[str, int], cancelled: bool = False) -> bytes:
    order = MallOrder(
        order_no=order_no,
        ordered_at="2026-11-26T09:00:00+09:00",
        status="cancelled" if cancelled else "new",
        lines=tuple(
            OrderLine(line_no=n, item_id=item, sku=item, quantity=q, name=f"商品①㈱髙 {item}")
            for n, (item, q) in enumerate(lines, start=1)
        ),
    )
    return rakuten.render_order_mail(order, "テスト店")


NOTICE = (
    "From: shop@rakuten.example\r\nTo: shop@example.jp\r\n"
    "Subject: =?utf-8?b?44CQ5qW95aSp5biC5aC044CR5Zyo5bqr44K844Ot44Gu44GK55+l44KJ44Gb?=\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n\r\n在庫がゼロになりました。\r\n"
).encode()  # 【楽天市場】在庫ゼロのお知らせ


class RecordingBoard(StatusBoard):
    """The status board, with each intake report also sent to the test."""

    def __init__(self, bus: EventBus) -> None:
        super().__init__(bus, now)
        self.reports, self._receive = trio.open_memory_channel[control.IntakeStatus](1000)

    def report_intake(self, shop: str, report: control.IntakeStatus) -> None:
        super().report_intake(shop, report)
        self.reports.send_nowait(report)

    async def until(self, done: Callable[[control.IntakeStatus], bool]) -> control.IntakeStatus:
        while not done(report := await self._receive.receive()):
            pass
        return report


@dataclass
class Rig:
    send: trio.MemorySendChannel[LedgerRequest]
    board: RecordingBoard
    maildir: Maildir
    database: Path
    nursery: trio.Nursery

    async def ask(self, command: object) -> object:
        result = await submit(self.send, command, "test")  # type: ignore[arg-type]
        assert not isinstance(result, control.Error), result
        return result

    async def shop(self, backlog: control.BacklogChoice = "", **settings: object) -> None:
        existing = await submit(self.send, control.ShopShow(id=1, shop="r1"), "test")
        if isinstance(existing, control.Error):
            shop = msgspec.convert({"id": "r1", "mall": "rakuten", **settings}, ShopSettings)
            await self.ask(control.ShopsApply(id=1, shops=(shop,)))
        else:
            changes = {key: str(value) for key, value in settings.items()}
            request = control.ShopSet(id=1, shop="r1", changes=changes, backlog=backlog)
            await self.ask(ChangeShops(request=request, backlogs=self.board.backlogs()))

    async def intake(self) -> trio.CancelScope:
        listed = await submit(self.send, control.ShopShow(id=1, shop="r1"), "test")
        assert isinstance(listed, control.ShopReply)

        async def run(*, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
            with trio.CancelScope() as scope, self.send.clone() as own:
                async with trio.open_nursery() as inner:
                    await inner.start(
                        mail_intake,
                        listed.shop,
                        rakuten.parse_order_mail,
                        self.maildir.root.parent,
                        self.board,
                        trio.current_time,
                        FAST,
                        None,
                        own,
                    )
                    task_status.started(scope)

        scope: trio.CancelScope = await self.nursery.start(run)
        return scope

    def expected(self, code: str) -> int:
        db = sqlite3.connect(self.database)
        try:
            (value,) = db.execute("SELECT expected FROM stock WHERE sku = ?", (code,)).fetchone()
            return int(value)
        finally:
            db.close()

    def deliver(self, raw: bytes, when: float = 1_700_000_000.0) -> Path:
        """Deliver a mail that arrived at ``when`` (before the rig's wall clock)."""
        path = deliver(self.maildir.root, raw, when=when)
        os.utime(path, (when, when))
        return path

    def names(self, folder: Path) -> list[str]:
        return sorted(p.name for p in folder.iterdir())


@asynccontextmanager
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    WALL[0] = STOPPED
    bus = EventBus()
    send, receive = trio.open_memory_channel[LedgerRequest](64)
    maildir = Maildir(tmp_path / "mail" / "r1")
    maildir.prepare()
    async with trio.open_nursery() as nursery:
        await nursery.start(ledger, tmp_path / "z.sqlite3", receive, bus, now)
        async with send:
            here = Rig(send, RecordingBoard(bus), maildir, tmp_path / "z.sqlite3", nursery)
            for code, stock in (("A", 10), ("B", 10)):
                await here.ask(control.SkuAdd(id=1, code=code))
                await here.ask(control.StockSet(id=1, code=code, field="expected", value=stock))
            yield here
            nursery.cancel_scope.cancel()


def everything_filed(maildir: Maildir) -> Callable[[control.IntakeStatus], bool]:
    return lambda report: not any(maildir.new.iterdir())


async def test_each_order_is_taken_once_and_each_mail_filed_after_the_ledger_answered(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as here:
        await here.shop(order_intake="active")
        for _ in range(3):  # the same mail delivered three times
            here.deliver(order_mail("111-1", ("A", 2), ("B", 1)))
        here.deliver(order_mail("111-2", ("A", 1)))
        here.deliver(NOTICE)
        here.deliver(
            b"Subject: =?utf-8?b?44CQ5qW95aSp5biC5aC044CR5rOo5paH5YaF5a6544GU56K66KqN?=\r\n\r\nbroken"
        )
        scope = await here.intake()
        report = await here.board.until(everything_filed(here.maildir))
        scope.cancel()
        assert (here.expected("A"), here.expected("B")) == (7, 9)
        assert len(here.names(here.maildir.cur)) == 5
        assert all(name.endswith(":2,S") for name in here.names(here.maildir.cur))
        assert len(here.names(here.maildir.quarantine)) == 1
        assert (report.quarantined, report.ignored) == (1, 1)
        jobs = (await here.ask(control.JobsList(id=1))).jobs  # type: ignore[attr-defined]
        messages = [
            m
            for job in jobs
            for m in (await here.ask(control.JobShow(id=1, job=job.id))).job.messages  # type: ignore[attr-defined]
        ]
        assert any("no [受注番号] line" in m for m in messages), messages
        assert {job.kind for job in jobs} == {"intake"}


async def test_a_mail_whose_order_was_committed_before_a_kill_is_a_replay(tmp_path: Path) -> None:
    """The state a kill -9 leaves between the ledger's commit and the mail's move to cur/."""
    async with rig(tmp_path) as here:
        await here.shop(order_intake="active")
        raw = order_mail("222-1", ("A", 3))
        path = here.deliver(raw)
        await here.ask(
            TakeOrders(
                shop="r1",
                orders=(IncomingOrder(rakuten.parse_order_mail(raw), source=path.name),),
            )
        )
        assert here.expected("A") == 7
        scope = await here.intake()
        await here.board.until(everything_filed(here.maildir))
        scope.cancel()
        assert here.expected("A") == 7
        assert len(here.names(here.maildir.cur)) == 1


async def test_suspended_orders_wait_as_warnings(tmp_path: Path) -> None:
    async with rig(tmp_path) as here:
        await here.shop(order_intake="suspended")
        here.deliver(order_mail("333-1", ("A", 4)))
        scope = await here.intake()
        await here.board.until(everything_filed(here.maildir))
        scope.cancel()
        assert here.expected("A") == 10
        listed = await here.ask(control.OrdersList(id=1))
        assert [o.key for o in listed.orders] == ["r1:333-1"]  # type: ignore[attr-defined]
        await here.ask(control.OrderApply(id=1, key="r1:333-1"))
        assert here.expected("A") == 6


async def test_a_stopped_shop_counts_its_backlog_and_the_operator_chooses(tmp_path: Path) -> None:
    async with rig(tmp_path) as here:
        await here.shop(order_intake="active")
        await here.shop(order_intake="stopped")
        # while stopped (after the ledger's stop time): a mail from before stays in new/
        early = here.deliver(order_mail("444-0", ("B", 1)), when=STOPPED - 100)
        here.deliver(order_mail("444-1", ("A", 1)), when=STOPPED + 100)
        here.deliver(order_mail("444-2", ("A", 2)), when=STOPPED + 200)
        scope = await here.intake()
        # the early mail is not part of the backlog: it is taken whatever the choice
        report = await here.board.until(lambda report: report.backlog == 2)
        scope.cancel()
        assert report.backlog_oldest == "2026-11-26T00:01:40.000+00:00"
        assert here.expected("A") == 10
        # switching on without a choice is refused, naming the backlog
        refused = await submit(
            here.send,
            ChangeShops(
                request=control.ShopSet(id=1, shop="r1", changes={"order_intake": "active"}),
                backlogs=here.board.backlogs(),
            ),
            "test",
        )
        assert isinstance(refused, control.Error) and "2 order mail(s)" in refused.message
        WALL[0] = STOPPED + 1000  # switched on later
        await here.shop(backlog="skip", order_intake="active")
        scope = await here.intake()
        await here.board.until(everything_filed(here.maildir))
        scope.cancel()
        assert here.expected("A") == 10
        assert len(here.names(here.maildir.skipped)) == 2
        assert here.expected("B") == 9 and not early.exists()  # taken, not skipped
        # a second stop: this time the operator takes what waited
        await here.shop(order_intake="stopped")
        here.deliver(order_mail("444-3", ("A", 3)), when=STOPPED + 1500)
        scope = await here.intake()
        await here.board.until(lambda report: report.backlog == 1)
        scope.cancel()
        await here.shop(backlog="take", order_intake="active")
        scope = await here.intake()
        await here.board.until(everything_filed(here.maildir))
        scope.cancel()
        assert here.expected("A") == 7


async def test_a_mail_copied_into_new_is_read_once_it_is_written(tmp_path: Path) -> None:
    """A file copied into new/ by hand (not tmp/ then rename) may be seen while it is still
    empty: it waits, and is taken once written, never quarantined as broken."""
    async with rig(tmp_path) as here:
        await here.shop(order_intake="active")
        path = here.maildir.new / "copied-by-hand"
        path.write_bytes(b"")
        scope = await here.intake()
        path.write_bytes(order_mail("555-1", ("A", 2)))
        report = await here.board.until(lambda report: report.filed == 1)
        scope.cancel()
        assert report.quarantined == 0 and here.expected("A") == 8
