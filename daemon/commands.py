"""Ledger commands that do not come from the wire, and the envelope every command travels in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, Protocol, TypeVar

import msgspec
import trio

from protocols import control
from protocols.malls.base import MallOrder, RowError
from protocols.settings import ShopSettings


class IncomingOrder(msgspec.Struct, frozen=True):
    """An order as a shop's intake read it (a mail, or the mall's order API): where from, and
    what the mall says."""

    order: MallOrder
    source: str = ""  # the mail's file name, or the API it came from


OrderOutcome = Literal["taken", "changed", "replayed", "ignored", "refused"]


class OrderResult(msgspec.Struct, frozen=True):
    """What became of one incoming order: ``taken`` (new lines recorded), ``changed`` (known
    lines changed status: cancelled, confirmed), ``replayed`` (nothing new), ``ignored``
    (not taken per the shop's options: say, a pending order), ``refused`` (kept out: the same
    order number and line came with other content; ``reason`` says what)."""

    order_no: str
    outcome: OrderOutcome
    reason: str = ""
    oversold: tuple[str, ...] = ()


class TakeOrders(msgspec.Struct, frozen=True):
    """One intake batch of a shop, applied as one job of kind ``intake``: each order in a
    savepoint of its own (a refused order never holds back the others), each line once
    (key: shop, order, line), each cancellation once. ``problems`` are what the intake could
    not read (a mail that does not parse), logged in the job; ``ignored`` counts what was not
    an order at all (another notice of the mall)."""

    shop: str
    orders: tuple[IncomingOrder, ...]
    problems: tuple[str, ...] = ()
    ignored: int = 0


class OrdersTaken(msgspec.Struct, frozen=True):
    job: control.Job
    results: tuple[OrderResult, ...]


class Backlog(msgspec.Struct, frozen=True):
    """What waits while a shop's intake is stopped, as its intake actor last counted it."""

    count: int = 0
    oldest: str = ""


class ChangeShops(msgspec.Struct, frozen=True):
    """``shops set`` or ``shops apply`` with what the control server knows that the ledger
    does not: the backlog waiting at each stopped shop, by shop id."""

    request: control.ShopSet | control.ShopsApply
    backlogs: dict[str, Backlog] = {}

    @property
    def id(self) -> int:
        """The request's id: a refusal repeats it (``refusal`` reads ``command.id``), else a
        client that matches replies by id never hears why its change was refused."""
        return self.request.id


class GetIntakeState(msgspec.Struct, frozen=True):
    shop: str


class IntakeState(msgspec.Struct, frozen=True):
    """A shop's intake bookkeeping in the ledger. ``cursor``: where the order API poll goes on
    from (ISO time; empty before the first poll); ``resumed_at`` and ``backlog``: intake was
    switched on at that time with that choice, which the intake actor carries out once (a
    ``skip`` moves the mails that waited aside), then clears. ``skipped_from`` and
    ``skipped_until``: the last skipped stop; an order API shop never takes an order placed
    in it (a poll's overlap or look-back reaches into it)."""

    shop: str
    cursor: str = ""
    stopped_at: str = ""
    resumed_at: str = ""
    backlog: control.BacklogChoice = ""
    skipped_from: str = ""
    skipped_until: str = ""


class SaveIntakeCursor(msgspec.Struct, frozen=True):
    shop: str
    cursor: str


class BacklogHandled(msgspec.Struct, frozen=True):
    shop: str


class ListShops(msgspec.Struct, frozen=True):
    pass


class ShopsList(msgspec.Struct, frozen=True):
    shops: tuple[ShopSettings, ...]


class CreateJob(msgspec.Struct, frozen=True):
    kind: str
    shop: str = ""
    detail: str = ""
    dry_run: bool = False


class FinishJob(msgspec.Struct, frozen=True):
    """A job's end. ``messages`` are its log lines in order: a row error keeps its fields
    (line, code, field, reason) beside its text."""

    job: int
    result: Literal["ok", "failed"]
    count: int = 0
    success: int = 0
    failure: int = 0
    messages: tuple[str | RowError, ...] = ()
    download_bytes: int = 0


class ImportBatch(msgspec.Struct, frozen=True):
    """Parsed rows of an import, as JSON text that SQLite reads itself (``json_each``).

    ``uniform``: a stock batch whose rows all take the import's mode and target, set no
    reserve and stand on consecutive lines from ``first_line``: ``{code: value, ...}``.
    Otherwise one array per row: stock ``[line, code, value, reserve, mode, target, item_id,
    variation]`` (the last two only from mall files), catalog ``[line, code, name, item_id,
    variation, alt_item_id]``. ``variation`` is ``protocols.listings.variation_key``.
    """

    rows: str
    row_count: int
    uniform: bool = False
    first_line: int = 0


class ImportSource(Protocol):
    """A file being parsed while the ledger applies it: batches in file order, then what the
    parser refused (read after the last batch)."""

    def __iter__(self) -> Iterator[ImportBatch]: ...

    @property
    def errors(self) -> int: ...

    @property
    def row_errors(self) -> list[RowError]: ...

    @property
    def fatal(self) -> str: ...

    @property
    def notes(self) -> list[str]: ...


class ApplyImport(msgspec.Struct, frozen=True):
    """Apply a parsed file in one transaction, batch by batch as the parser hands them over,
    then finish the job."""

    job: int
    start: control.ImportStart
    source: ImportSource


class PushItem(msgspec.Struct, frozen=True):
    """One quantity to send to a shop: the SKU, the mall's identifiers (the listing's, else
    the SKU code as the item id), the target, and the outbox row's ``version`` and ``sold``
    when read, which the acknowledgement carries back."""

    sku: str
    item_id: str
    variation: tuple[str, ...]
    quantity: int
    version: int
    sold: int


class PendingPushes(msgspec.Struct, frozen=True):
    """A shop's pending outbox rows after SKU ``after``, in SKU order (``urgent_only``: the
    ones that must go out at once)."""

    shop: str
    urgent_only: bool = False
    after: str = ""
    limit: int = 10_000


class Pushes(msgspec.Struct, frozen=True):
    items: tuple[PushItem, ...]


class PushesSent(msgspec.Struct, frozen=True):
    """The shop received these quantities (at ``at``, ISO time); ``uncertain``: it may or
    may not have (a feed that failed after it was submitted)."""

    shop: str
    items: tuple[PushItem, ...]
    at: str
    uncertain: bool = False


class AuditSeen(msgspec.Struct, frozen=True):
    """What the mall showed of the items asked, read back for audit ``job`` at ``at``: per
    item its quantity, None (the mall has no such item) or -1 (its API cannot name it)."""

    job: int
    items: tuple[tuple[str, tuple[str, ...], int | None], ...]
    at: str


class AuditDone(msgspec.Struct, frozen=True):
    """Audit ``job`` read everything (or failed: ``error``): compare and finish it."""

    shop: str
    job: int
    fix: bool = False
    error: str = ""


class RunningAudits(msgspec.Struct, frozen=True):
    shop: str


class AuditJobs(msgspec.Struct, frozen=True):
    jobs: tuple[tuple[int, bool], ...]  # (job, fix)


Command = (
    control.Request
    | PendingPushes
    | PushesSent
    | TakeOrders
    | ChangeShops
    | GetIntakeState
    | SaveIntakeCursor
    | BacklogHandled
    | ListShops
    | CreateJob
    | FinishJob
    | ApplyImport
    | AuditSeen
    | AuditDone
    | RunningAudits
)
Result = (
    control.Reply
    | control.Error
    | OrdersTaken
    | IntakeState
    | ShopsList
    | control.Job
    | Pushes
    | AuditJobs
)


class LedgerRequest(msgspec.Struct, frozen=True):
    """A command, who asks, and the one-shot channel its result goes to (buffer 1)."""

    command: Command
    actor: str
    reply: trio.MemorySendChannel[Result]


class LedgerUnavailable(Exception):
    """The ledger is gone (shutting down or failed)."""


ResultT = TypeVar("ResultT")


async def submit(
    ledger: trio.MemorySendChannel[LedgerRequest], command: Command, actor: str
) -> Result:
    """Send one command to the ledger and wait for its result, whatever it is."""
    reply_send, reply_receive = trio.open_memory_channel[Result](1)
    try:
        await ledger.send(LedgerRequest(command, actor, reply_send))
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise LedgerUnavailable("the ledger is not running") from exc
    try:
        return await reply_receive.receive()
    except trio.EndOfChannel as exc:
        raise LedgerUnavailable("the ledger stopped before answering") from exc


async def call(
    ledger: trio.MemorySendChannel[LedgerRequest],
    command: Command,
    actor: str,
    expect: type[ResultT],
) -> ResultT | control.Error:
    """Send one command and wait for its result: the ``expect`` type, or the refusal
    (``control.Error``, an internal error included) for the caller to handle where it
    receives it. The ledger being gone raises LedgerUnavailable."""
    result = await submit(ledger, command, actor)
    if isinstance(result, (expect, control.Error)):
        return result
    raise TypeError(
        f"the ledger answered {type(result).__name__} to {type(command).__name__}, "
        f"not {expect.__name__}"
    )
