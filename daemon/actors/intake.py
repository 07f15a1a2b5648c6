"""Order intake (受注取込) of one shop: order mails from its Maildir, or orders from its mall's
order API (``daemon.actors.api_intake``), taken by the ledger in batches.

Mail: ``[mail] maildir_root/<shop>/new/`` is watched (inotify; else scanned every ``poll_s``);
the mails found are
read and parsed on a worker thread and sent to the ledger as one ``TakeOrders`` (one intake
job). Only after the ledger answered is each mail filed: an order (taken, replayed, or not
taken per the shop's options) and a mall's other notices go to ``cur/``; a mail that should
be an order but does not read as one, or an order the ledger refused, goes to
``quarantine/`` beside them, with its reason in the job log. Nothing is ever deleted. A kill
between the ledger's commit and the filing leaves the mail in ``new/``: read again, it is a
replay (each line has its key), then filed.

While intake is ``stopped`` nothing is taken: the actor only counts what waits in ``new/``
(the backlog), for ``zaiko status`` and for the choice asked when intake is switched on.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import trio

from daemon.clock import stamp
from daemon.commands import (
    BacklogHandled,
    GetIntakeState,
    IncomingOrder,
    IntakeState,
    LedgerRequest,
    OrdersTaken,
    TakeOrders,
    call,
)
from daemon.events import StatusBoard
from daemon.inotify import DirectoryWatch
from protocols import control
from protocols.malls.base import MailError, MallOrder, NotAnOrderMail
from protocols.settings import ShopSettings

log = logging.getLogger(__name__)

MailParser = Callable[[bytes], MallOrder]
# a mail that does not read is quarantined once it is this old (seconds since written)
WRITTEN_S = 2.0


@dataclass(frozen=True)
class MailIntakeSettings:
    # new/ is watched (inotify): a mail is picked up as it lands; a scan every scan_s also
    # finds what a notice missed. Without inotify, new/ is scanned every poll_s.
    watch: bool = True
    scan_s: float = 1.0
    poll_s: float = 0.05
    # while stopped, how often the backlog is counted
    stopped_poll_s: float = 2.0
    # mails per ledger request (one intake job)
    batch_mails: int = 500


class Maildir:
    """A shop's Maildir (``new/``, ``cur/``, ``tmp/``) and the folders zaiko keeps beside
    them: ``quarantine/`` (mails that should be orders but do not read as one) and
    ``skipped/`` (mails that arrived while intake was stopped, when the operator chose to
    skip them)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.new = root / "new"
        self.cur = root / "cur"
        self.quarantine = root / "quarantine"
        self.skipped = root / "skipped"

    def prepare(self) -> None:
        for folder in (self.new, self.cur, self.root / "tmp", self.quarantine, self.skipped):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    def waiting(self, limit: int) -> list[str]:
        """Mails in ``new/``, oldest first (Maildir names start with the delivery time)."""
        with os.scandir(self.new) as entries:
            names = sorted(e.name for e in entries if not e.name.startswith("."))
        return names[:limit]

    def backlog(self, since: float) -> tuple[int, float | None]:
        """How many mails that arrived after ``since`` (intake stopped) wait in ``new/``, and
        the oldest one's arrival (mtime); older ones are taken whatever the choice."""
        count = 0
        oldest: float | None = None
        with os.scandir(self.new) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    arrived = entry.stat().st_mtime
                except FileNotFoundError:
                    continue
                if arrived <= since:
                    continue
                count += 1
                oldest = arrived if oldest is None else min(oldest, arrived)
        return count, oldest

    def count(self, folder: Path) -> int:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if not e.name.startswith("."))

    def file(self, name: str, folder: Path) -> None:
        """Move a mail out of ``new/``: to ``cur/`` marked seen, or to another folder."""
        target = folder / (f"{name}:2,S" if folder == self.cur and ":2," not in name else name)
        try:
            os.rename(self.new / name, target)
        except FileNotFoundError:
            log.info("mail %s left %s before it was filed", name, self.new)

    def skip_arrived_between(self, start: float, end: float) -> int:
        """Move aside the mails that arrived while intake was stopped (the operator skipped
        them): after ``start``, up to ``end``."""
        skipped = 0
        with os.scandir(self.new) as entries:
            for entry in list(entries):
                try:
                    if start < entry.stat().st_mtime <= end:
                        os.rename(entry.path, self.skipped / entry.name)
                        skipped += 1
                except FileNotFoundError:
                    continue
        return skipped


@dataclass
class Reading:
    """One mail of a batch, read and parsed."""

    name: str
    order: MallOrder | None = None
    problem: str = ""
    not_an_order: bool = False
    gone: bool = False
    # a mail copied into new/ by hand may be read while it is still being written: one
    # that does not read yet and is younger than WRITTEN_S waits for the next round
    not_ready: bool = False


def read_mails(maildir: Maildir, names: Sequence[str], parse: MailParser) -> list[Reading]:
    """Read and parse mails (on a worker thread). No mail can stop intake: whatever a parser
    raises is that mail's problem."""
    readings = []
    for name in names:
        path = maildir.new / name
        try:
            raw = path.read_bytes()
            written = path.stat().st_mtime
        except FileNotFoundError:
            readings.append(Reading(name, gone=True))
            continue
        except OSError as exc:
            # a folder, a file the daemon may not read: that mail's problem, not intake's
            readings.append(Reading(name, problem=f"cannot be read: {exc.strerror or exc}"))
            continue
        try:
            readings.append(Reading(name, order=parse(raw)))
        except NotAnOrderMail as exc:
            readings.append(Reading(name, problem=str(exc), not_an_order=True))
        except MailError as exc:
            if time.time() - written < WRITTEN_S:
                readings.append(Reading(name, not_ready=True))
            else:
                readings.append(Reading(name, problem=str(exc)))
        except Exception as exc:
            log.exception("parsing mail %s failed", name)
            readings.append(Reading(name, problem=f"unreadable ({type(exc).__name__}: {exc})"))
    return readings


async def _read(
    maildir: Maildir, names: Sequence[str], parse: MailParser, parsers: Executor | None
) -> list[Reading]:
    """Read and parse a batch: in the daemon's parser process where there is one (parsing
    then runs beside the ledger instead of taking turns with it for the interpreter lock),
    else on a thread."""
    if parsers is not None:
        try:
            future = parsers.submit(read_mails, maildir, names, parse)
        except BrokenProcessPool:
            log.warning("the mail parser process is gone: parsing in the daemon")
        else:
            try:
                return await trio.to_thread.run_sync(future.result)
            except BrokenProcessPool:
                log.warning("the mail parser process died: parsing this batch in the daemon")
    return await trio.to_thread.run_sync(read_mails, maildir, names, parse)


@dataclass
class IntakeCounts:
    """What the actor reports beside the ledger's figures (``zaiko status``)."""

    backlog: int = 0
    backlog_oldest: str = ""
    quarantined: int = 0
    ignored: int = 0
    filed: int = 0
    last_error: str = ""

    def report(self) -> control.IntakeStatus:
        return control.IntakeStatus(
            backlog=self.backlog,
            backlog_oldest=self.backlog_oldest,
            quarantined=self.quarantined,
            ignored=self.ignored,
            filed=self.filed,
            last_error=self.last_error,
        )


def _moment(seconds: float) -> str:
    return stamp(datetime.fromtimestamp(seconds, UTC))


async def mail_intake(
    shop: ShopSettings,
    parse: MailParser,
    maildir_root: Path,
    board: StatusBoard,
    clock: Callable[[], float],
    settings: MailIntakeSettings,
    parsers: Executor | None,
    ledger: trio.MemorySendChannel[LedgerRequest],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    maildir = Maildir(maildir_root / shop.id)
    await trio.to_thread.run_sync(maildir.prepare)
    actor = f"shop:{shop.id}"
    counts = IntakeCounts(
        quarantined=await trio.to_thread.run_sync(maildir.count, maildir.quarantine)
    )
    if shop.order_intake != "stopped":
        await _carry_out_backlog_choice(shop.id, maildir, ledger, actor)
    board.report_intake(shop.id, counts.report())
    if shop.order_intake == "stopped":
        task_status.started()
        state = await call(ledger, GetIntakeState(shop=shop.id), actor, IntakeState)
        if isinstance(state, control.Error):
            raise RuntimeError(f"cannot read the intake state: {state.message}")
        since = _timestamp(state.stopped_at)
        await _count_backlog(shop.id, maildir, board, clock, settings, counts, since)
    watch = (
        await trio.to_thread.run_sync(DirectoryWatch.open, maildir.new) if settings.watch else None
    )
    # the next batch is read and parsed while the ledger takes this one
    batches, ready = trio.open_memory_channel[list[Reading]](1)
    in_flight: set[str] = set()  # read, not yet filed
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                _read_ahead, maildir, parse, parsers, batches, in_flight, clock, settings, watch
            )
            task_status.started()
            async with ready:
                async for readings in ready:
                    taken = await _take_batch(shop.id, maildir, readings, ledger, actor, counts)
                    in_flight.difference_update(reading.name for reading in readings)
                    board.report_intake(shop.id, counts.report())
                    if not taken:
                        # the ledger refused the batch: its mails wait in new/; try again later
                        await trio.sleep_until(clock() + settings.scan_s)
    finally:
        if watch is not None:
            watch.close()


async def _read_ahead(
    maildir: Maildir,
    parse: MailParser,
    parsers: Executor | None,
    batches: trio.MemorySendChannel[list[Reading]],
    in_flight: set[str],
    clock: Callable[[], float],
    settings: MailIntakeSettings,
    watch: DirectoryWatch | None,
) -> None:
    async with batches:
        while True:
            listed = await trio.to_thread.run_sync(
                maildir.waiting, settings.batch_mails + len(in_flight)
            )
            names = [name for name in listed if name not in in_flight][: settings.batch_mails]
            if names:
                in_flight.update(names)
                readings = await _read(maildir, names, parse, parsers)
                await batches.send(readings)
                if not all(reading.not_ready for reading in readings):
                    continue  # more may have landed meanwhile
            with trio.move_on_at(clock() + (settings.scan_s if watch else settings.poll_s)):
                if watch is not None:
                    await watch.wait()
                else:
                    await trio.sleep_forever()


async def _count_backlog(
    shop: str,
    maildir: Maildir,
    board: StatusBoard,
    clock: Callable[[], float],
    settings: MailIntakeSettings,
    counts: IntakeCounts,
    since: float,
) -> NoReturn:
    """While intake is stopped: count what waits in new/, for status and for the choice asked
    when intake is switched on."""
    deadline = clock()
    while True:
        waiting, oldest = await trio.to_thread.run_sync(maildir.backlog, since)
        counts.backlog = waiting
        counts.backlog_oldest = "" if oldest is None else _moment(oldest)
        board.report_intake(shop, counts.report())
        deadline = max(deadline + settings.stopped_poll_s, clock())
        await trio.sleep_until(deadline)


def _timestamp(moment: str) -> float:
    return datetime.fromisoformat(moment).timestamp() if moment else 0.0


async def _carry_out_backlog_choice(
    shop: str, maildir: Maildir, ledger: trio.MemorySendChannel[LedgerRequest], actor: str
) -> None:
    """Intake was switched on with a backlog choice: a ``skip`` moves the mails that arrived
    before that moment to ``skipped/``; either way the choice is then done."""
    state = await call(ledger, GetIntakeState(shop=shop), actor, IntakeState)
    if isinstance(state, control.Error):
        raise RuntimeError(f"cannot read the intake state: {state.message}")
    if not state.backlog:
        return
    if state.backlog == "skip" and state.resumed_at:
        start, end = _timestamp(state.stopped_at), _timestamp(state.resumed_at)
        skipped = await trio.to_thread.run_sync(maildir.skip_arrived_between, start, end)
        log.info("shop %s: %d mail(s) that arrived while stopped moved to skipped/", shop, skipped)
    done = await call(ledger, BacklogHandled(shop=shop), actor, IntakeState)
    if isinstance(done, control.Error):
        raise RuntimeError(f"cannot record the backlog choice as done: {done.message}")


async def _take_batch(
    shop: str,
    maildir: Maildir,
    readings: list[Reading],
    ledger: trio.MemorySendChannel[LedgerRequest],
    actor: str,
    counts: IntakeCounts,
) -> bool:
    """Take a batch and file its mails; False when the ledger refused it (nothing filed)."""
    orders = [r for r in readings if r.order is not None]
    broken = [r for r in readings if r.problem and not r.not_an_order]
    moves: list[tuple[str, Path]] = [(r.name, maildir.cur) for r in readings if r.not_an_order]
    if orders or broken:
        taken = await call(
            ledger,
            TakeOrders(
                shop=shop,
                orders=tuple(IncomingOrder(r.order, source=r.name) for r in orders if r.order),
                problems=tuple(f"mail {r.name}: {r.problem}" for r in broken),
                ignored=len(moves),
            ),
            actor,
            OrdersTaken,
        )
        if isinstance(taken, control.Error):
            # intake stopped meanwhile, or the ledger refused: the mails stay in new/
            counts.last_error = taken.message
            log.warning("shop %s: %d mail(s) not taken: %s", shop, len(readings), taken.message)
            return False
        for reading, result in zip(orders, taken.results, strict=True):
            refused = result.outcome == "refused"
            moves.append((reading.name, maildir.quarantine if refused else maildir.cur))
            counts.quarantined += refused
        moves += [(r.name, maildir.quarantine) for r in broken]
        counts.quarantined += len(broken)
        counts.last_error = (
            f"job {taken.job.id}: {taken.job.messages[0]}" if taken.job.failure else ""
        )
    counts.ignored += sum(r.not_an_order for r in readings)
    await trio.to_thread.run_sync(_file_all, maildir, moves)
    counts.filed += len(moves)
    return True


def _file_all(maildir: Maildir, moves: Sequence[tuple[str, Path]]) -> None:
    for name, folder in moves:
        maildir.file(name, folder)
