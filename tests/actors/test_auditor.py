"""The auditor with a virtual clock against the real ledger task: an audit at its
``audit_hours`` hour to the second, one asked for at once, one left running before the
auditor started is run at start, and a mall that cannot be read fails the job, saying why."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import msgspec
import trio
import trio.testing

from daemon.actors.auditor import AuditSettings, auditor
from daemon.actors.ledger import ledger
from daemon.commands import CreateJob, LedgerRequest, PendingPushes, PushesSent, submit
from daemon.events import EventBus
from daemon.transports.stock import ReadFailed
from protocols import control
from protocols.settings import ShopSettings
from tests.actors.test_reflector import inline, ledger_now, ok, wall


class FakeReader:
    def __init__(self, shows: dict[str, int]) -> None:
        self.shows = shows
        self.reads: list[tuple[float, int]] = []
        self.down = False

    async def read(
        self, items: list[tuple[str, tuple[str, ...]]]
    ) -> list[tuple[str, tuple[str, ...], int | None]]:
        self.reads.append((trio.current_time(), len(items)))
        if self.down:
            raise ReadFailed("HTTP 503: down")
        return [(i, v, self.shows.get(i)) for i, v in items]

    async def aclose(self) -> None:
        pass


def settings(**changes: object) -> ShopSettings:
    return msgspec.convert(
        {
            "id": "r1",
            "mall": "rakuten",
            "reflect": "active",
            "api_base_url": "http://127.0.0.1:9/r1",
            "api_credential": "r1.secret",
            **changes,
        },
        ShopSettings,
    )


Body = Callable[[trio.MemorySendChannel[LedgerRequest], EventBus], Awaitable[None]]


async def run_with(
    tmp_path: Path, reader: FakeReader, shop: ShopSettings, body: Body, *, before: bool = False
) -> None:
    send, receive = trio.open_memory_channel[LedgerRequest](64)
    bus = EventBus()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(ledger, tmp_path / "z.sqlite3", receive, bus, ledger_now, inline=True)
        )
        async with send:
            await ok(send, control.ShopsApply(id=1, shops=(shop,), force=True))
            for code, expected in (("A", 10), ("B", 5)):
                await ok(send, control.SkuAdd(id=1, code=code))
                await ok(send, control.StockSet(id=1, code=code, field="expected", value=expected))
            pushes = await submit(send, PendingPushes(shop="r1"), "test")
            await submit(send, PushesSent(shop="r1", items=pushes.items, at=ledger_now()), "test")
            if before:  # asked while no auditor ran
                await ok(send, CreateJob(kind="audit", shop="r1", detail="fix"))
            with trio.CancelScope() as scope:
                await nursery.start(
                    auditor,
                    shop,
                    lambda: reader,
                    bus,
                    trio.current_time,
                    wall,
                    AuditSettings(off_thread=inline),
                    tmp_path / "z.sqlite3",
                    send.clone(),
                )
                await body(send, bus)
                scope.cancel()
            nursery.cancel_scope.cancel()


async def audits(send: trio.MemorySendChannel[LedgerRequest]) -> list[control.Job]:
    jobs = await ok(send, control.JobsList(id=1))
    assert isinstance(jobs, control.JobsReply)
    return [job for job in jobs.jobs if job.kind == "audit"]


async def test_an_audit_at_its_hour_and_one_asked_for_at_once(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    reader = FakeReader({"A": 10, "B": 99})

    async def body(send: trio.MemorySendChannel[LedgerRequest], bus: EventBus) -> None:
        # 09:00 in Tokyo at 0: the audit hour 10 is 3600 s away
        await trio.sleep_until(3601.0)
        assert reader.reads == [(3600.0, 2)]
        (scheduled,) = await audits(send)
        assert (scheduled.state, scheduled.result, scheduled.failure) == ("done", "ok", 1)
        await trio.sleep_until(4000.0)
        await ok(send, control.AuditStart(id=1, shop="r1", fix=True))
        await trio.sleep_until(4001.0)
        assert reader.reads[-1] == (4000.0, 2)
        asked = (await audits(send))[0]
        assert asked.state == "done" and asked.detail == "fix"
        status = await ok(send, control.GetStatus(id=1))
        assert (status.shops[0].audit.drift, status.shops[0].audit.fixed) == (1, 1)

    await run_with(tmp_path, reader, settings(audit_hours=[10]), body)


async def test_a_job_left_running_is_run_at_start_and_a_mall_down_fails_it(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    reader = FakeReader({"A": 10, "B": 5})
    reader.down = True

    async def body(send: trio.MemorySendChannel[LedgerRequest], bus: EventBus) -> None:
        await trio.sleep_until(1.0)
        (job,) = await audits(send)
        assert (job.state, job.result) == ("done", "failed")
        shown = await ok(send, control.JobShow(id=1, job=job.id))
        assert shown.job.messages == ("not audited: the mall could not be read: HTTP 503: down",)
        assert reader.reads == [(0.0, 2)]

    await run_with(tmp_path, reader, settings(), body, before=True)
