"""The control protocol: JSON text frames over a local websocket (docs/protocol.md).

One tagged union per direction (``ClientMessage``, ``ServerMessage``), tag field ``type``.
Every request carries an ``id`` that its reply repeats; events carry none. New fields get
defaults so that older clients keep working.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import msgspec

from protocols.malls.base import RowError
from protocols.settings import ShopSettings

PROTOCOL_VERSION = 1
DEFAULT_MAX_FRAME_BYTES = 1 << 20

StockField = Literal["expected", "actual", "reserve"]
ErrorCode = Literal[
    "unauthorized",  # hello missing or wrong token: the connection closes with 4401
    "unsupported_version",
    "bad_frame",  # not JSON, unknown type, wrong field types
    "not_found",
    "invalid",  # a value outside what is allowed; ``field`` names it
    "conflict",  # an idempotency key reused with another payload, a duplicate
    "refused",  # allowed in form but refused by a rule (e.g. stock below zero); may be forced
    "unavailable",  # the daemon is shutting down
    "internal",
]
Topic = Literal[
    "stock", "oversell", "shops", "actors", "jobs", "orders", "reflect", "outbox", "audit"
]
ALL_TOPICS: tuple[Topic, ...] = (
    "stock",
    "oversell",
    "shops",
    "actors",
    "jobs",
    "orders",
    "reflect",
    "outbox",
    "audit",
)
# ``audit``: a mall's stock file compared with zaiko's targets, nothing imported
ImportKind = Literal["stock", "catalog", "audit"]
ImportTarget = Literal["expected", "actual"]
ImportMode = Literal["overwrite", "add", "per-row"]
ExportTarget = Literal["expected", "both"]
# An order line's state in the ledger (SPEC §2): ``allocated`` moved stock; ``warning`` was
# taken while intake was 連動停止 (listed, stock not moved); ``pending`` is an Amazon pending
# or Qoo10 unpaid order the shop allocates (stock moved); ``cancelled`` gave its stock back
# (if it had taken any); ``unmatched`` maps to no SKU yet; ``dismissed`` is a warning the
# operator chose not to apply. (What a mall says of its own order is
# ``protocols.malls.base.MallOrderState``.)
OrderStatus = Literal["allocated", "warning", "pending", "cancelled", "unmatched", "dismissed"]
# ``orders list`` shows these when no status is asked for: what waits for the operator
ACTIONABLE_ORDER_STATUSES: tuple[OrderStatus, ...] = ("warning", "unmatched")
BacklogChoice = Literal["", "take", "skip"]
UPLOAD_CHUNK_BYTES = 256 * 1024
# ids, sequence numbers and offsets: what SQLite and a file offset can hold
Count = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class Base(msgspec.Struct, frozen=True, tag_field="type", forbid_unknown_fields=True):
    pass


# --- shared documents -------------------------------------------------------------------


class SetChild(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: str
    qty: int


class ListingRow(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    sku: str
    item_id: str
    variation: tuple[str, ...] = ()
    linked: bool = True
    # the mall's other identifier of the item (Rakuten 商品番号 beside 商品管理番号)
    alt_item_id: str = ""


class StockLevel(msgspec.Struct, frozen=True):
    """One SKU's stock; for a set parent, ``expected`` is derived from its children."""

    code: str
    expected: int
    actual: int
    reserve: int
    registered: bool
    is_set: bool = False


class JournalRow(msgspec.Struct, frozen=True):
    id: int
    at: str
    sku: str
    field: StockField
    delta: int
    before: int
    after: int
    reason: str
    ref: str
    actor: str


class ShopQuantity(msgspec.Struct, frozen=True):
    """A SKU at one shop: its target (SPEC §3.2–3.4), and from the outbox what the shop was
    last sent (``pushed``, at ``pushed_at``; None: never), what it still shows (``shown``:
    pushed less what it sold since) and whether a push is ``pending``."""

    shop: str
    linked: bool
    target: int
    item_id: str = ""
    variation: tuple[str, ...] = ()
    pushed: int | None = None
    pushed_at: str = ""
    shown: int | None = None
    pending: bool = False
    # the fewest units the shop is shown (min_shown, raised by the SKU's sales pace): a
    # share below it is sent as 0
    floor: int = 1


class SkuDetail(msgspec.Struct, frozen=True):
    code: str
    name: str
    stock: StockLevel
    children: tuple[SetChild, ...] = ()
    parents: tuple[str, ...] = ()
    shops: tuple[ShopQuantity, ...] = ()
    journal: tuple[JournalRow, ...] = ()


class SkuSummary(msgspec.Struct, frozen=True):
    code: str
    name: str
    expected: int
    actual: int
    reserve: int
    is_set: bool


ActorState = Literal["starting", "running", "restarting", "stopped"]


class ActorStatus(msgspec.Struct, frozen=True):
    name: str
    state: ActorState
    restarts: int = 0
    last_error: str = ""
    since: str = ""


class IntakeStatus(msgspec.Struct, frozen=True):
    """A shop's order intake at a glance: from the ledger (orders) and from its intake actor
    (the Maildir or the mall API)."""

    last_intake: str = ""  # when the newest order was taken
    taken_today: int = 0  # orders taken since midnight in the shop's time zone
    unmatched: int = 0  # order lines waiting for a listing
    warnings: int = 0  # order lines taken while 連動停止, waiting to be applied or dismissed
    backlog: int = 0  # orders waiting while intake is stopped (mails in new/)
    backlog_oldest: str = ""
    quarantined: int = 0  # mails that should be orders but do not parse
    ignored: int = 0  # mails and orders that are not orders of this shop (counted since start)
    filed: int = 0  # mails read and filed since the daemon started
    last_error: str = ""


class ReflectStatus(msgspec.Struct, frozen=True):
    """A shop's stock reflection (在庫反映) at a glance: from the ledger's outbox (pending,
    last push) and from its reflector (next run, last error)."""

    last_push: str = ""  # when the shop last received a quantity
    pending: int = 0  # linked SKUs whose quantity the shop has not been sent yet
    urgent: int = 0  # of those, the ones that go out at once
    next_run: str = ""  # the interval reflector's next run
    next_bulk_sync: str = ""
    pushed: int = 0  # quantities sent since the daemon started
    last_error: str = ""


class AuditStatus(msgspec.Struct, frozen=True):
    """The shop's last drift audit: what the mall shows against zaiko's targets."""

    job: int = 0  # 0: never audited
    at: str = ""
    checked: int = 0  # linked SKUs compared
    drift: int = 0  # differences zaiko did not know of (changed at the mall, missing, unknown)
    pending: int = 0  # differences a pending push is about to correct
    fixed: int = 0  # drifted SKUs whose corrections were queued (--fix)


class ShopStatus(msgspec.Struct, frozen=True):
    id: str
    mall: str
    order_intake: str
    reflect: str
    actors: tuple[ActorStatus, ...] = ()
    warnings: tuple[str, ...] = ()
    intake: IntakeStatus = IntakeStatus()
    reflection: ReflectStatus = ReflectStatus()
    audit: AuditStatus = AuditStatus()


class OrderLineDoc(msgspec.Struct, frozen=True):
    line_no: int
    item_id: str
    variation: tuple[str, ...]
    sku: str  # empty while unmatched
    quantity: int
    status: OrderStatus
    name: str = ""
    choices: tuple[str, ...] = ()  # option values printed with the item (Rakuten)


class OrderDoc(msgspec.Struct, frozen=True):
    """An order as the ledger keeps it; ``key`` is ``shop:order_no``."""

    key: str
    shop: str
    order_no: str
    status: OrderStatus  # the line status that most needs attention
    mall_state: str
    ordered_at: str
    received_at: str
    lines: tuple[OrderLineDoc, ...] = ()


class Job(msgspec.Struct, frozen=True):
    """A logged job (スケジュール一覧). Fully applied when result is ok and count == success;
    a dry run applied nothing, and its counts say what the real run would do."""

    id: int
    kind: str
    shop: str
    state: Literal["running", "done"]
    started_at: str
    ended_at: str = ""
    result: Literal["ok", "failed", ""] = ""
    count: int = 0
    success: int = 0
    failure: int = 0
    messages: tuple[str, ...] = ()
    detail: str = ""
    download_bytes: int = 0
    # the row errors among ``messages``, as fields, in the same order
    errors: tuple[RowError, ...] = ()
    dry_run: bool = False


# --- client → server ----------------------------------------------------------------------


class Hello(Base, frozen=True, tag="hello"):
    token: str
    version: int = PROTOCOL_VERSION
    client: str = ""


class Ping(Base, frozen=True, tag="ping"):
    id: int


class GetStatus(Base, frozen=True, tag="status"):
    id: int


class SkuAdd(Base, frozen=True, tag="sku_add"):
    id: int
    code: str
    name: str = ""
    reserve: int = 0


class SkuShow(Base, frozen=True, tag="sku_show"):
    id: int
    code: str
    journal_limit: int = 20


class SkuList(Base, frozen=True, tag="sku_list"):
    """SKUs in code order, a page at a time; ``prefix`` and ``name`` narrow it (both apply)."""

    id: int
    after: str = ""
    prefix: str = ""
    limit: int = 100
    # only SKUs whose name contains this (ASCII letters in either case)
    name: str = ""


class StockSet(Base, frozen=True, tag="stock_set"):
    """Overwrite one field. ``key`` makes the request idempotent (a retry changes nothing);
    ``if_was``: only if the field still holds the value the operator saw (a sale or an import
    since is not overwritten: refused as a ``conflict``)."""

    id: int
    code: str
    field: StockField
    value: int
    key: str = ""
    if_was: int | None = None


class StockAdd(Base, frozen=True, tag="stock_add"):
    id: int
    code: str
    field: StockField
    delta: int
    key: str = ""


class SetAdd(Base, frozen=True, tag="set_add"):
    id: int
    parent: str
    children: tuple[SetChild, ...]
    name: str = ""


class ListingsImport(Base, frozen=True, tag="listings_import"):
    id: int
    shop: str
    rows: tuple[ListingRow, ...]


class ShopsApply(Base, frozen=True, tag="shops_apply"):
    id: int
    shops: tuple[ShopSettings, ...]
    force: bool = False


class ShopShow(Base, frozen=True, tag="shop_show"):
    id: int
    shop: str


class ShopSet(Base, frozen=True, tag="shop_set"):
    """Change settings. Switching a stopped shop's ``order_intake`` on while orders waited
    needs ``backlog``: ``take`` them, or ``skip`` what arrived while stopped (moved aside)."""

    id: int
    shop: str
    changes: dict[str, str]
    force: bool = False
    backlog: BacklogChoice = ""


class OrdersList(Base, frozen=True, tag="orders_list"):
    """The allocation list (引当確認受注一覧): by default what waits for the operator."""

    id: int
    shop: str = ""
    statuses: tuple[OrderStatus, ...] = ACTIONABLE_ORDER_STATUSES
    after: str = ""  # continue after this key
    limit: int = 100


class OrderShow(Base, frozen=True, tag="order_show"):
    id: int
    key: str


class OrderApply(Base, frozen=True, tag="order_apply"):
    """Apply an order's warning lines (and unmatched lines that map by now): stock moves."""

    id: int
    key: str


class OrderDismiss(Base, frozen=True, tag="order_dismiss"):
    """Dismiss an order's warning and unmatched lines: stock does not move, ever."""

    id: int
    key: str


class ReflectNow(Base, frozen=True, tag="reflect_now"):
    """Send a shop its pending quantities now (``reflect now``); ``dry_run``: list what would
    be sent, per SKU, with the formula's inputs, and send nothing."""

    id: int
    shop: str
    dry_run: bool = False
    limit: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1000
    # every linked SKU, pending or not: a bulk sync now (一括更新)
    bulk: bool = False


class AuditStart(Base, frozen=True, tag="audit_start"):
    """Read back what the shop's mall shows through its stock API and compare it with
    zaiko's targets (a job of kind ``audit``; its ``job_changed`` says when it is done);
    ``fix``: queue the corrections through the outbox. A downloaded stock file is audited
    with an upload instead (``import_start`` of kind ``audit``)."""

    id: int
    shop: str
    fix: bool = False


class JobsList(Base, frozen=True, tag="jobs_list"):
    id: int
    limit: int = 50


class JobShow(Base, frozen=True, tag="job_show"):
    id: int
    job: Count


class Subscribe(Base, frozen=True, tag="subscribe"):
    id: int
    topics: tuple[Topic, ...] = ALL_TOPICS


class ImportStart(Base, frozen=True, tag="import_start"):
    """Open an upload: ``stock`` (在庫一括更新) or ``catalog`` (product registration).

    The file follows as ``upload_chunk`` frames; ``import_finish`` applies it and answers
    with the finished job. ``shop`` maps mall item ids through that shop's listings (stock)
    or records that shop's listings (catalog from a mall file).
    """

    id: int
    kind: ImportKind = "stock"
    format: str = "tempostar"
    encoding: str = "cp932"
    target: ImportTarget = "expected"
    mode: ImportMode = "overwrite"
    dry_run: bool = False
    all_or_nothing: bool = False
    shop: str = ""
    file_name: str = ""
    # take counts below 0 for 想定在庫数 (a TEMPOSTAR download's oversold items, SPEC §2)
    allow_negative: bool = False
    # kind audit: queue the corrections of what the file shows differs; ``as_of``: when the
    # file was written (ISO), else its upload: a push acknowledged since is no drift
    fix: bool = False
    as_of: str = ""


class UploadChunk(Base, frozen=True, tag="upload_chunk"):
    """Bytes ``seq`` (0, 1, 2, ...) of an upload; a chunk sent again is acknowledged, not appended."""

    id: int
    job: Count
    seq: Count
    data: bytes


class ImportFinish(Base, frozen=True, tag="import_finish"):
    id: int
    job: Count


class ExportStart(Base, frozen=True, tag="export_start"):
    """Start a stock download (在庫ダウンロード); the job's ``job_changed`` event says when it is done."""

    id: int
    format: Literal["tempostar"] = "tempostar"
    target: ExportTarget = "expected"
    encoding: str = "cp932"


class Download(Base, frozen=True, tag="download"):
    id: int
    job: Count
    offset: Count = 0
    length: Annotated[int, msgspec.Meta(ge=1)] = UPLOAD_CHUNK_BYTES


Request = (
    Ping
    | GetStatus
    | SkuAdd
    | SkuShow
    | SkuList
    | StockSet
    | StockAdd
    | SetAdd
    | ListingsImport
    | ShopsApply
    | ShopShow
    | ShopSet
    | OrdersList
    | OrderShow
    | OrderApply
    | OrderDismiss
    | ReflectNow
    | AuditStart
    | JobsList
    | JobShow
    | Subscribe
    | ImportStart
    | UploadChunk
    | ImportFinish
    | ExportStart
    | Download
)
ClientMessage = Hello | Request
# Requests a control session answers itself, never the ledger: a subscription, and the
# transfers (an upload's chunks, a download's) that belong to the connection that opened them.
TransferRequest = ImportStart | UploadChunk | ImportFinish | ExportStart | Download
SessionRequest = Subscribe | TransferRequest
TRANSFER_REQUESTS: tuple[type[Base], ...] = get_args(TransferRequest)
SESSION_REQUESTS: tuple[type[Base], ...] = get_args(SessionRequest)


# --- server → client ----------------------------------------------------------------------


class Welcome(Base, frozen=True, tag="welcome"):
    version: int
    server: str


class Error(Base, frozen=True, tag="error"):
    id: int | None
    code: ErrorCode
    message: str
    field: str = ""
    details: tuple[str, ...] = ()


class Pong(Base, frozen=True, tag="pong"):
    id: int


class StatusReply(Base, frozen=True, tag="status_reply"):
    id: int
    version: str
    started_at: str
    database: str
    skus: int
    shops: tuple[ShopStatus, ...]
    oversells: int = 0


class SkuReply(Base, frozen=True, tag="sku"):
    id: int
    sku: SkuDetail


class SkuListReply(Base, frozen=True, tag="sku_list_reply"):
    id: int
    skus: tuple[SkuSummary, ...]
    next_after: str | None = None


class StockReply(Base, frozen=True, tag="stock"):
    id: int
    stock: StockLevel
    replayed: bool = False


class ListingsReply(Base, frozen=True, tag="listings_reply"):
    id: int
    imported: int


class ShopsReply(Base, frozen=True, tag="shops_reply"):
    id: int
    shops: tuple[ShopSettings, ...]
    warnings: tuple[str, ...] = ()


class ShopReply(Base, frozen=True, tag="shop"):
    id: int
    shop: ShopSettings
    status: ShopStatus | None = None


class ReflectRow(msgspec.Struct, frozen=True):
    """One quantity a shop is to be sent, and how it was reached (SPEC §3.2–3.4): sellable =
    max(0, expected − reserve), allocated = floor(sellable × rate / 100), 0 when below
    ``floor`` (the shop's min_shown raised by the SKU's sales pace), then trickle
    (``trickle_quantity`` None: off) from what the shop still shows."""

    sku: str
    item_id: str
    variation: tuple[str, ...]
    target: int
    expected: int
    reserve: int
    rate: int
    pushed: int | None = None
    shown: int | None = None
    trickle_quantity: int | None = None
    refill_at: int = 0
    urgent: bool = False
    floor: int = 1


class ReflectReply(Base, frozen=True, tag="reflect"):
    """``pending``: how many quantities the shop has not been sent; ``rows``: the first of
    them (up to the request's limit); ``sending``: the reflector was asked to send them now;
    ``complete`` false: targets marked by a large change are still being computed."""

    id: int
    shop: str
    pending: int
    rows: tuple[ReflectRow, ...] = ()
    sending: bool = False
    complete: bool = True


class OrdersReply(Base, frozen=True, tag="orders"):
    id: int
    orders: tuple[OrderDoc, ...]
    next_after: str | None = None


class OrderReply(Base, frozen=True, tag="order"):
    id: int
    order: OrderDoc


class JobsReply(Base, frozen=True, tag="jobs"):
    id: int
    jobs: tuple[Job, ...]


class JobReply(Base, frozen=True, tag="job"):
    id: int
    job: Job


class ChunkAck(Base, frozen=True, tag="chunk_ack"):
    id: int
    job: int
    seq: int
    received_bytes: int


class DownloadChunk(Base, frozen=True, tag="download_chunk"):
    id: int
    job: int
    offset: int
    data: bytes
    eof: bool


class Subscribed(Base, frozen=True, tag="subscribed"):
    id: int
    topics: tuple[Topic, ...]


class StockChanged(Base, frozen=True, tag="stock_changed"):
    stock: StockLevel
    reason: str
    ref: str = ""


class Oversell(Base, frozen=True, tag="oversell"):
    sku: str
    expected: int
    shop: str
    ref: str


class ShopChanged(Base, frozen=True, tag="shop_changed"):
    shop: ShopSettings


class ActorChanged(Base, frozen=True, tag="actor_changed"):
    shop: str
    actor: ActorStatus


class StockImported(Base, frozen=True, tag="stock_imported"):
    """An import changed many SKUs at once: journal rows ``journal_from``..``journal_to``."""

    job: int
    changed: int
    journal_from: int
    journal_to: int


class ListingsChanged(Base, frozen=True, tag="listings_changed"):
    """A shop's listings (mall ids, link flags) changed: what is pushed there may change."""

    shop: str
    rows: int


class IntakeChanged(Base, frozen=True, tag="intake_changed"):
    """What a shop's intake actor reports changed (backlog, quarantine, mails filed, last
    error); the ledger's own figures come with ``status``."""

    shop: str
    intake: IntakeStatus


class ReflectChanged(Base, frozen=True, tag="reflect_changed"):
    """What a shop's reflector reports changed (next run, last error, pushed)."""

    shop: str
    reflection: ReflectStatus


class PushesPending(Base, frozen=True, tag="pushes_pending"):
    """A shop has new quantities to be sent (``urgent``: one fell below what it shows, and
    the shop pushes such at once; ``now``: an operator asked for them now; ``bulk``: an
    operator asked for a bulk sync now)."""

    shop: str
    urgent: bool = False
    now: bool = False
    bulk: bool = False


class AuditRequested(Base, frozen=True, tag="audit_requested"):
    """An audit of the shop by its mall's stock API was asked for (job ``job``)."""

    shop: str
    job: int
    fix: bool = False


class OrderChanged(Base, frozen=True, tag="order_changed"):
    """An order was taken, or its lines changed status (applied, dismissed, cancelled,
    matched)."""

    order: OrderDoc


class JobChanged(Base, frozen=True, tag="job_changed"):
    job: Job


class Resync(Base, frozen=True, tag="resync"):
    """Events were dropped because this client read too slowly: re-read what it shows."""

    reason: str


Reply = (
    Pong
    | ReflectReply
    | StatusReply
    | SkuReply
    | SkuListReply
    | StockReply
    | ListingsReply
    | ShopsReply
    | ShopReply
    | OrdersReply
    | OrderReply
    | JobsReply
    | JobReply
    | Subscribed
    | ChunkAck
    | DownloadChunk
)
Event = (
    StockChanged
    | StockImported
    | Oversell
    | ShopChanged
    | ListingsChanged
    | ActorChanged
    | JobChanged
    | OrderChanged
    | IntakeChanged
    | PushesPending
    | AuditRequested
    | ReflectChanged
    | Resync
)
ServerMessage = Welcome | Error | Reply | Event

client_decoder = msgspec.json.Decoder(ClientMessage)
server_decoder = msgspec.json.Decoder(ServerMessage)
encoder = msgspec.json.Encoder()


def topic_of(event: Event) -> Topic | None:
    match event:
        case StockChanged() | StockImported():
            return "stock"
        case JobChanged():
            return "jobs"
        case Oversell():
            return "oversell"
        case ShopChanged() | ListingsChanged() | IntakeChanged():
            return "shops"
        case ReflectChanged():
            return "reflect"
        case PushesPending():
            return "outbox"
        case AuditRequested():
            return "audit"
        case ActorChanged():
            return "actors"
        case OrderChanged():
            return "orders"
        case Resync():
            return None
