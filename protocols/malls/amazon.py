"""Amazon (amazon): stock out through the SP-API Listings Items API (one PATCH of
``/attributes/fulfillment_availability`` per seller SKU, Japan marketplace) and order intake
through the SP-API Orders API v0: ``getOrders`` by last update (Pending, Unshipped, Canceled,
...; every NextToken page), then ``getOrderItems`` for each order (getOrders carries no items;
every NextToken page). Orders of other marketplaces are counted, not taken.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Annotated, Literal
from urllib.parse import quote, unquote

import msgspec

from protocols.malls._api import (
    JSON_CONTENT_TYPE,
    ApiOrderPoll,
    ItemsFetch,
    OrderAnswer,
    OrderCall,
    OrderSearch,
    OrderSearchDate,
    ServedOrder,
    check_window,
    header,
    rank_key,
    read_query_time,
    require_pushable,
    retry_after,
)
from protocols.malls.base import (
    ApiAccount,
    Capability,
    HttpRequest,
    MallApiError,
    MallOrder,
    MallOrderState,
    OrderLine,
    OrderPoll,
    RateLimited,
    StockUpdate,
    identifier,
    joined,
)

CAPABILITY = Capability(
    kind="amazon",
    name_ja="Amazon",
    intake=("api",),
    stock_out=("api",),
    options=("take_pending", "take_cancellations"),
    api_batch_size=1,
    api_requests_per_s=5.0,
    stock_read=True,
)

MARKETPLACE_JP = "A1VC38T7YXB528"
LISTINGS_PREFIX = "/listings/2021-08-01/items/"
ORDERS_PATH = "/orders/v0/orders"
# a poll's window ends this long before now: SP-API refuses a LastUpdatedBefore later than
# two minutes before the call
ORDER_SETTLE_S = 120.0
_ACCESS_TOKEN = "x-amz-access-token"
_AVAILABILITY = "/attributes/fulfillment_availability"
# SP-API OrderStatus → zaiko. Shipped/PartiallyShipped orders were Unshipped first; they are
# listed so that an order first seen after shipping is still taken.
_STATUSES: dict[str, MallOrderState] = {
    "Pending": "pending",
    "PendingAvailability": "pending",
    "Unshipped": "new",
    "PartiallyShipped": "new",
    "Shipped": "new",
    "InvoiceUnconfirmed": "new",
    "Canceled": "cancelled",
}
_RENDERED_STATUS: dict[MallOrderState, str] = {
    "pending": "Pending",
    "new": "Unshipped",
    "cancelled": "Canceled",
}


def join_sku(item_id: str, variation: tuple[str, ...]) -> str:
    """SKU = the seller SKU, as is (Amazon has no separate variation codes)."""
    return joined(item_id, variation)


# --- Listings Items: quantity -------------------------------------------------------------


class _Availability(msgspec.Struct):
    fulfillment_channel_code: str
    quantity: Annotated[int, msgspec.Meta(ge=0)]


class _Patch(msgspec.Struct):
    op: Literal["replace", "merge"]
    path: str
    value: list[_Availability]


class _PatchBody(msgspec.Struct):
    productType: str
    patches: list[_Patch]


class _Issue(msgspec.Struct):
    code: str
    message: str
    severity: str = "ERROR"


class _PatchResult(msgspec.Struct):
    sku: str
    status: Literal["ACCEPTED", "INVALID"]
    submissionId: str = ""
    issues: list[_Issue] = []


class _Error(msgspec.Struct):
    code: str
    message: str
    details: str = ""


class _ErrorBody(msgspec.Struct):
    errors: list[_Error]


def _quantity_patches(quantity: int) -> list[_Patch]:
    """The merchant-fulfilled (DEFAULT) quantity, replaced."""
    return [_Patch(op="replace", path=_AVAILABILITY, value=[_Availability("DEFAULT", quantity)])]


def _default_quantities(patches: Sequence[_Patch]) -> list[int]:
    """The merchant-fulfilled (DEFAULT) quantities the patches set (simulator side)."""
    return [
        availability.quantity
        for patch in patches
        if patch.path == _AVAILABILITY
        for availability in patch.value
        if availability.fulfillment_channel_code == "DEFAULT"
    ]


def build_stock_requests(updates: Sequence[StockUpdate], account: ApiAccount) -> list[HttpRequest]:
    """One ``patchListingsItem`` per seller SKU (the API takes one SKU per call)."""
    require_pushable(updates)
    if not account.seller_id:
        raise ValueError("Amazon needs the account's seller_id (merchant token)")
    requests = []
    for update in updates:
        body = _PatchBody(
            productType="PRODUCT",
            patches=_quantity_patches(update.quantity),
        )
        sku = join_sku(update.item_id, update.variation)
        requests.append(
            HttpRequest(
                method="PATCH",
                path=f"{LISTINGS_PREFIX}{quote(account.seller_id, safe='')}/{quote(sku, safe='')}",
                query=(("marketplaceIds", MARKETPLACE_JP),),
                headers=((_ACCESS_TOKEN, account.secret), JSON_CONTENT_TYPE),
                body=msgspec.json.encode(body),
            )
        )
    return requests


def parse_stock_request(request: HttpRequest) -> list[StockUpdate]:
    """The seller SKU and quantity of one ``patchListingsItem`` (simulator side)."""
    if request.method != "PATCH" or not request.path.startswith(LISTINGS_PREFIX):
        raise ValueError(f"expected PATCH {LISTINGS_PREFIX}…, got {request.method} {request.path}")
    seller_and_sku = request.path.removeprefix(LISTINGS_PREFIX).split("/")
    if len(seller_and_sku) != 2 or not all(seller_and_sku):
        raise ValueError(f"path {request.path} is not …/items/{{sellerId}}/{{sku}}")
    if ("marketplaceIds", MARKETPLACE_JP) not in request.query:
        raise ValueError(f"marketplaceIds must include {MARKETPLACE_JP}")
    try:
        body = msgspec.json.decode(request.body, type=_PatchBody)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid patch body: {exc}") from None
    quantities = _default_quantities(body.patches)
    if len(quantities) != 1:
        raise ValueError("the patch must set exactly one DEFAULT fulfillment_availability quantity")
    return [StockUpdate(unquote(seller_and_sku[1]), (), quantities[0])]


def parse_stock_response(status: int, body: bytes) -> None:
    """Raise ValueError with Amazon's message on an error or an INVALID submission."""
    if not 200 <= status < 300:
        try:
            errors = msgspec.json.decode(body, type=_ErrorBody).errors
            message = "; ".join(f"{e.code}: {e.message}" for e in errors) or "no error message"
        except msgspec.DecodeError:
            message = body.decode("utf-8", "replace").strip() or "no error body"
        raise ValueError(f"HTTP {status}: {message}")
    try:
        result = msgspec.json.decode(body, type=_PatchResult)
    except msgspec.DecodeError as exc:
        raise ValueError(f"unreadable patchListingsItem answer: {exc}") from None
    if result.status != "ACCEPTED":
        issues = "; ".join(f"{i.code}: {i.message}" for i in result.issues if i.severity == "ERROR")
        raise ValueError(f"{result.sku} {result.status}: {issues or 'no issue given'}")


def render_stock_response(updates: Sequence[StockUpdate]) -> bytes:
    """The ``ACCEPTED`` answer to one patchListingsItem (simulator side)."""
    if len(updates) != 1:
        raise ValueError(f"one SKU per patchListingsItem, got {len(updates)}")
    sku = join_sku(updates[0].item_id, updates[0].variation)
    return msgspec.json.encode(
        _PatchResult(sku=sku, status="ACCEPTED", submissionId=f"sim-{sku}-{updates[0].quantity}")
    )


def render_error(status: int, message: str) -> bytes:
    code = {400: "InvalidInput", 403: "Unauthorized", 404: "NotFound", 429: "QuotaExceeded"}
    return msgspec.json.encode(
        _ErrorBody(errors=[_Error(code=code.get(status, "InternalFailure"), message=message)])
    )


# --- getListingsItem: what the mall shows (the audit), one SKU a call ----------------------

STOCK_READ_BATCH = 1


class _ShownAvailability(msgspec.Struct):
    fulfillmentChannelCode: str
    quantity: int = 0


class _ListingsItem(msgspec.Struct):
    sku: str
    fulfillmentAvailability: list[_ShownAvailability] = []


def build_stock_read_requests(
    items: Sequence[tuple[str, tuple[str, ...]]], account: ApiAccount
) -> list[HttpRequest]:
    if not account.seller_id:
        raise ValueError("Amazon needs the account's seller_id (merchant token)")
    return [
        HttpRequest(
            method="GET",
            path=f"{LISTINGS_PREFIX}{quote(account.seller_id, safe='')}/"
            f"{quote(join_sku(item_id, variation), safe='')}",
            query=(("marketplaceIds", MARKETPLACE_JP), ("includedData", "fulfillmentAvailability")),
            headers=((_ACCESS_TOKEN, account.secret),),
        )
        for item_id, variation in items
    ]


def parse_stock_read_response(status: int, body: bytes) -> list[StockUpdate]:
    """The SKU's DEFAULT (merchant-fulfilled) quantity; a 404 is a SKU Amazon does not have."""
    if status == 404:
        return []
    if not 200 <= status < 300:
        raise ValueError(f"HTTP {status}: {_error_line(body)}")
    try:
        item = msgspec.json.decode(body, type=_ListingsItem)
    except msgspec.DecodeError as exc:
        raise ValueError(f"unreadable getListingsItem answer: {exc}") from None
    quantities = [
        a.quantity for a in item.fulfillmentAvailability if a.fulfillmentChannelCode == "DEFAULT"
    ]
    return [StockUpdate(item.sku, (), quantities[0] if quantities else 0)]


def read_stock_read_request(request: HttpRequest) -> list[tuple[str, tuple[str, ...]]]:
    if request.method != "GET" or not request.path.startswith(LISTINGS_PREFIX):
        raise ValueError(f"expected GET {LISTINGS_PREFIX}…, got {request.method} {request.path}")
    seller_and_sku = request.path.removeprefix(LISTINGS_PREFIX).split("/")
    if len(seller_and_sku) != 2 or not all(seller_and_sku):
        raise ValueError(f"path {request.path} is not …/items/{{sellerId}}/{{sku}}")
    return [(unquote(seller_and_sku[1]), ())]


def render_stock_read_response(shown: Sequence[StockUpdate]) -> bytes | tuple[int, bytes]:
    if not shown:
        return 404, render_error(404, "SKU not found")
    update = shown[0]
    return msgspec.json.encode(
        _ListingsItem(
            sku=join_sku(update.item_id, update.variation),
            fulfillmentAvailability=[_ShownAvailability("DEFAULT", update.quantity)],
        )
    )


# --- Feeds API: a JSON_LISTINGS_FEED for a bulk sync ---------------------------------------
# createFeedDocument → PUT the document to its pre-signed URL → createFeed → getFeed until it
# is processed → getFeedDocument of the report → GET the report: one feed takes up to
# FEED_MAX_MESSAGES SKUs, where Listings PATCH takes one SKU per call at 5/s.

FEEDS_PREFIX = "/feeds/2021-06-30"
FEED_TYPE = "JSON_LISTINGS_FEED"
FEED_CONTENT_TYPE = "application/json; charset=UTF-8"
# Unverified: the public guides say "thousands of SKUs per feed"; zaiko keeps each feed's
# document near 2.5 MB (about 250 bytes a message), far under the document size limit.
FEED_MAX_MESSAGES = 10_000
# getFeed is asked after 1, 2, 4, … seconds, then every FEED_POLL_MAX_S (Amazon processes a
# feed in minutes; getFeed allows 2 requests/s, shared by every feed of the seller).
FEED_POLL_FIRST_S = 1.0
FEED_POLL_MAX_S = 30.0
_FEED_STATES = ("IN_QUEUE", "IN_PROGRESS", "DONE", "CANCELLED", "FATAL")


class _FeedHeader(msgspec.Struct):
    sellerId: str
    version: str = "2.0"
    issueLocale: str = "en_US"


class _FeedMessage(msgspec.Struct):
    messageId: int
    sku: str
    operationType: str
    productType: str
    patches: list[_Patch] = []


class _ListingsFeedBody(msgspec.Struct):
    header: _FeedHeader
    messages: list[_FeedMessage]


class _CreateDocument(msgspec.Struct):
    contentType: str


class _FeedDocument(msgspec.Struct, omit_defaults=True):
    feedDocumentId: str
    url: str
    compressionAlgorithm: str = ""


class _CreateFeed(msgspec.Struct):
    feedType: str
    marketplaceIds: list[str]
    inputFeedDocumentId: str


class _CreatedFeed(msgspec.Struct):
    feedId: str


class _Feed(msgspec.Struct, omit_defaults=True):
    feedId: str
    feedType: str
    processingStatus: str
    marketplaceIds: list[str] = []
    createdTime: str = ""
    resultFeedDocumentId: str = ""


class _ReportHeader(msgspec.Struct):
    sellerId: str
    version: str = "2.0"
    feedId: str = ""


class _ReportIssue(msgspec.Struct, omit_defaults=True):
    code: str
    severity: str
    message: str
    messageId: int | None = None
    sku: str = ""
    attributeName: str = ""


class _ReportSummary(msgspec.Struct, frozen=True):
    errors: int = 0
    warnings: int = 0
    messagesProcessed: int = 0
    messagesAccepted: int = 0
    messagesInvalid: int = 0


class _Report(msgspec.Struct):
    header: _ReportHeader
    issues: list[_ReportIssue] = []
    summary: _ReportSummary = _ReportSummary()


def _api_request(
    account: ApiAccount, method: str, path: str, body: msgspec.Struct | None = None
) -> HttpRequest:
    return HttpRequest(
        method=method,
        path=path,
        headers=((_ACCESS_TOKEN, account.secret), JSON_CONTENT_TYPE)
        if body is not None
        else ((_ACCESS_TOKEN, account.secret),),
        body=msgspec.json.encode(body) if body is not None else b"",
    )


def write_listings_feed(updates: Sequence[StockUpdate], seller_id: str) -> bytes:
    """The feed document: one PATCH of ``fulfillment_availability`` a SKU, message ids from 1
    in the order of ``updates``."""
    require_pushable(updates)
    if len(updates) > FEED_MAX_MESSAGES:
        raise ValueError(f"a feed takes {FEED_MAX_MESSAGES} SKUs at most, got {len(updates)}")
    messages = [
        _FeedMessage(
            messageId=number,
            sku=join_sku(update.item_id, update.variation),
            operationType="PATCH",
            productType="PRODUCT",
            patches=_quantity_patches(update.quantity),
        )
        for number, update in enumerate(updates, 1)
    ]
    return msgspec.json.encode(_ListingsFeedBody(_FeedHeader(sellerId=seller_id), messages))


def start_stock_feed(updates: Sequence[StockUpdate], account: ApiAccount) -> _ListingsFeed:
    """A JSON_LISTINGS_FEED of these quantities (``base.StockFeed``)."""
    if not account.seller_id:
        raise ValueError("Amazon needs the account's seller_id (merchant token)")
    return _ListingsFeed(write_listings_feed(updates, account.seller_id), len(updates), account)


class _ListingsFeed:
    def __init__(self, document: bytes, count: int, account: ApiAccount) -> None:
        self._document = document
        self._count = count
        self._account = account
        self._step = "create_document"
        self._upload_id = ""
        self._upload_url = ""
        self._feed_id = ""
        self._report_id = ""
        self._report_url = ""
        self._report_gzip = False
        self._fatal = False
        self._polls = 0
        self._wait_s = 0.0
        self._refused: dict[int, str] | None = None

    @property
    def feed_id(self) -> str:
        return self._feed_id

    @property
    def wait_s(self) -> float:
        return self._wait_s

    @property
    def submitted(self) -> bool:
        return bool(self._feed_id)

    @property
    def refused(self) -> dict[int, str]:
        if self._refused is None:
            raise RuntimeError("the feed is not done: send next_request() and feed()")
        return self._refused

    def next_request(self) -> HttpRequest | None:
        account = self._account
        match self._step:
            case "create_document":
                return _api_request(
                    account,
                    "POST",
                    f"{FEEDS_PREFIX}/documents",
                    _CreateDocument(contentType=FEED_CONTENT_TYPE),
                )
            case "upload":
                return HttpRequest(
                    method="PUT",
                    path=self._upload_url,
                    headers=(("Content-Type", FEED_CONTENT_TYPE),),
                    body=self._document,
                )
            case "create_feed":
                return _api_request(
                    account,
                    "POST",
                    f"{FEEDS_PREFIX}/feeds",
                    _CreateFeed(FEED_TYPE, [MARKETPLACE_JP], self._upload_id),
                )
            case "get_feed":
                return _api_request(
                    account, "GET", f"{FEEDS_PREFIX}/feeds/{quote(self._feed_id, safe='')}"
                )
            case "get_report":
                return _api_request(
                    account, "GET", f"{FEEDS_PREFIX}/documents/{quote(self._report_id, safe='')}"
                )
            case "download":
                return HttpRequest(method="GET", path=self._report_url)
        return None

    def feed(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        if status == 429:
            raise RateLimited(f"HTTP 429: {_error_line(body)}", retry_after(headers))
        if not 200 <= status < 300:
            raise MallApiError(
                f"{self._step.replace('_', ' ')}: HTTP {status}: {_error_line(body)}"
            )
        self._wait_s = 0.0
        try:
            match self._step:
                case "create_document":
                    document = msgspec.json.decode(body, type=_FeedDocument)
                    self._upload_id, self._upload_url = document.feedDocumentId, document.url
                    self._step = "upload"
                case "upload":
                    self._step = "create_feed"
                case "create_feed":
                    self._feed_id = msgspec.json.decode(body, type=_CreatedFeed).feedId
                    self._step = "get_feed"
                    self._wait_s = FEED_POLL_FIRST_S
                case "get_feed":
                    self._read_feed(msgspec.json.decode(body, type=_Feed))
                case "get_report":
                    document = msgspec.json.decode(body, type=_FeedDocument)
                    self._report_url = document.url
                    self._report_gzip = document.compressionAlgorithm.upper() == "GZIP"
                    self._step = "download"
                case "download":
                    self._read_report(gzip.decompress(body) if self._report_gzip else body)
                case _:
                    raise RuntimeError("the feed is done: nothing is waiting for an answer")
        except (msgspec.DecodeError, OSError, EOFError) as exc:
            raise MallApiError(
                f"{self._step.replace('_', ' ')}: unreadable answer: {exc}"
            ) from None

    def _read_feed(self, answer: _Feed) -> None:
        state = answer.processingStatus
        if state in ("IN_QUEUE", "IN_PROGRESS"):
            self._polls += 1
            self._wait_s = min(FEED_POLL_MAX_S, FEED_POLL_FIRST_S * 2**self._polls)
            return
        if state == "CANCELLED":
            self._step = "done"
            raise MallApiError(f"feed {self._feed_id} was cancelled at Amazon")
        if state not in ("DONE", "FATAL"):
            raise MallApiError(f"feed {self._feed_id}: unknown processingStatus {state!r}")
        self._fatal = state == "FATAL"
        if not answer.resultFeedDocumentId:
            self._step = "done"
            if self._fatal:
                raise MallApiError(f"feed {self._feed_id} failed (FATAL) without a report")
            raise MallApiError(f"feed {self._feed_id} is DONE without a processing report")
        self._report_id = answer.resultFeedDocumentId
        self._step = "get_report"

    def _read_report(self, body: bytes) -> None:
        report = msgspec.json.decode(body, type=_Report)
        refused: dict[int, str] = {}
        general = []
        for issue in report.issues:
            if issue.severity != "ERROR":
                continue
            text = f"{issue.code}: {issue.message}"
            if issue.messageId is not None and 1 <= issue.messageId <= self._count:
                refused.setdefault(issue.messageId - 1, text)
            else:
                general.append(text)
        self._step = "done"
        if self._fatal or general:
            raise MallApiError(
                f"feed {self._feed_id} {'failed' if self._fatal else 'reported'}: "
                + ("; ".join(general[:3]) or "no issue given")
            )
        self._refused = refused


def _error_line(body: bytes) -> str:
    try:
        errors = msgspec.json.decode(body, type=_ErrorBody).errors
        return "; ".join(f"{e.code}: {e.message}" for e in errors) or "no error message"
    except msgspec.DecodeError:
        return body.decode("utf-8", "replace").strip()[:200] or "no error body"


# The simulator's side of the Feeds API.

FeedCallKind = Literal["create_document", "create_feed", "get_feed", "get_document"]


class FeedCall(msgspec.Struct, frozen=True):
    kind: FeedCallKind
    id: str = ""  # the feed's id (get_feed), the document's (get_document, create_feed)


def read_feed_call(request: HttpRequest) -> FeedCall:
    """Which Feeds API call a request is; ValueError when it is none."""
    if not request.path.startswith(FEEDS_PREFIX + "/"):
        raise ValueError(f"not a Feeds API path: {request.path}")
    rest = request.path.removeprefix(FEEDS_PREFIX + "/").split("/")
    match request.method, rest:
        case "POST", ["documents"]:
            wanted = msgspec.json.decode(request.body, type=_CreateDocument)
            if wanted.contentType.split(";")[0].strip().lower() != "application/json":
                raise ValueError(f"a {FEED_TYPE} document is JSON, not {wanted.contentType}")
            return FeedCall("create_document")
        case "POST", ["feeds"]:
            feed = msgspec.json.decode(request.body, type=_CreateFeed)
            if feed.feedType != FEED_TYPE:
                raise ValueError(f"feedType {feed.feedType!r} is not {FEED_TYPE}")
            if MARKETPLACE_JP not in feed.marketplaceIds:
                raise ValueError(f"marketplaceIds must include {MARKETPLACE_JP}")
            return FeedCall("create_feed", feed.inputFeedDocumentId)
        case "GET", ["feeds", feed_id] if feed_id:
            return FeedCall("get_feed", unquote(feed_id))
        case "GET", ["documents", document_id] if document_id:
            return FeedCall("get_document", unquote(document_id))
    raise ValueError(f"no Feeds API call {request.method} {request.path}")


def render_feed_document(document_id: str, url: str) -> bytes:
    """createFeedDocument's and getFeedDocument's answer."""
    return msgspec.json.encode(_FeedDocument(feedDocumentId=document_id, url=url))


def render_created_feed(feed_id: str) -> bytes:
    return msgspec.json.encode(_CreatedFeed(feedId=feed_id))


def render_feed(feed_id: str, state: str, created: datetime, report_id: str = "") -> bytes:
    if state not in _FEED_STATES:
        raise ValueError(f"processingStatus {state!r} is not one of {_FEED_STATES}")
    return msgspec.json.encode(
        _Feed(
            feedId=feed_id,
            feedType=FEED_TYPE,
            processingStatus=state,
            marketplaceIds=[MARKETPLACE_JP],
            createdTime=_utc_z(created),
            resultFeedDocumentId=report_id,
        )
    )


FeedIssue = tuple[int, str, str]  # (messageId, code, message)


def read_listings_feed(
    document: bytes,
) -> tuple[str, list[tuple[int, StockUpdate]], list[FeedIssue]]:
    """The seller, each message's quantity (by messageId), and the messages that cannot be
    applied, as Amazon's processing would say. ValueError when the document is no feed."""
    try:
        body = msgspec.json.decode(document, type=_ListingsFeedBody)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a {FEED_TYPE} document: {exc}") from None
    taken: list[tuple[int, StockUpdate]] = []
    issues: list[FeedIssue] = []
    for message in body.messages:
        quantities = _default_quantities(message.patches)
        if message.operationType != "PATCH" or len(quantities) != 1 or not message.sku:
            issues.append(
                (
                    message.messageId,
                    "4000001",
                    "the message must PATCH exactly one DEFAULT fulfillment_availability "
                    "quantity of a SKU",
                )
            )
            continue
        taken.append((message.messageId, StockUpdate(message.sku, (), quantities[0])))
    return body.header.sellerId, taken, issues


def render_processing_report(
    seller_id: str, feed_id: str, processed: int, issues: Sequence[FeedIssue]
) -> bytes:
    invalid = {message_id for message_id, _, _ in issues}
    return msgspec.json.encode(
        _Report(
            header=_ReportHeader(sellerId=seller_id, feedId=feed_id),
            issues=[
                _ReportIssue(code=code, severity="ERROR", message=text, messageId=message_id)
                for message_id, code, text in issues
            ],
            summary=_ReportSummary(
                errors=len(issues),
                messagesProcessed=processed,
                messagesAccepted=processed - len(invalid),
                messagesInvalid=len(invalid),
            ),
        )
    )


# --- Orders: getOrders, then getOrderItems for each order -------------------------------------

ORDER_SEARCH_DATE: OrderSearchDate = "updated"
ORDERS_PER_PAGE = 100  # getOrders MaxResultsPerPage: 1–100
# The simulator's other marketplace (United Kingdom): any MarketplaceId but Japan's is another.
OTHER_MARKETPLACE = "A1F83G8C2ARO7P"
_ORDER_ITEMS = "orderItems"
# Multi-Channel Fulfillment orders (sold elsewhere, shipped from Amazon's stock) are the only
# ones that become Unfulfillable: not a sale of this shop, so counted as ignored.
_NOT_THIS_SHOPS = frozenset({"Unfulfillable"})


class _OrderItem(msgspec.Struct):
    OrderItemId: str
    QuantityOrdered: Annotated[int, msgspec.Meta(ge=0)]
    SellerSKU: str = ""
    ASIN: str = ""
    Title: str = ""


class _ItemsPayload(msgspec.Struct):
    OrderItems: list[_OrderItem]
    AmazonOrderId: str = ""
    NextToken: str | None = None


class _ItemsAnswer(msgspec.Struct):
    payload: _ItemsPayload | None = None
    errors: list[_Error] = []


# The official sandbox examples give some dates as epoch numbers: read those too.
_Moment = str | int | float


class _Order(msgspec.Struct):
    AmazonOrderId: str
    OrderStatus: str
    PurchaseDate: _Moment
    LastUpdateDate: _Moment = ""
    MarketplaceId: str = MARKETPLACE_JP


class _OrdersPayload(msgspec.Struct):
    Orders: list[_Order]
    NextToken: str | None = None


class _OrdersAnswer(msgspec.Struct):
    payload: _OrdersPayload | None = None
    errors: list[_Error] = []


def _utc_z(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"{moment} has no time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _moment(value: _Moment, what: str) -> datetime:
    """An SP-API date: ISO 8601 (naive means UTC), or epoch seconds as the sandbox writes."""
    text = str(value).strip()
    try:
        if isinstance(value, int | float) or text.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(text), UTC)
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"{what} {value!r} is not a date") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _errors_text(errors: Sequence[_Error]) -> str:
    return "; ".join(f"{e.code}: {e.message}" for e in errors) or "no error message"


def start_order_poll(account: ApiAccount, since: datetime, until: datetime) -> OrderPoll:
    """getOrders for the Japan marketplace, every order last updated in ``[since, until)``
    (new orders, payments, cancellations), every page (NextToken); then, since getOrders
    carries no items, getOrderItems for each order, every page. SP-API only serves
    ``LastUpdatedBefore`` up to two minutes before the call: ``until`` must be that old."""
    return _OrdersPoll(account, since, until)


class _OrdersPoll(ApiOrderPoll):
    def __init__(self, account: ApiAccount, since: datetime, until: datetime) -> None:
        check_window(since, until)
        self._auth = ((_ACCESS_TOKEN, account.secret),)
        self._until = until
        self._seen: set[str] = set()
        self._found: dict[str, tuple[_Order, MallOrderState]] = {}
        self._waiting: list[str] = []  # orders whose items are still to be read
        self._current = ""  # the order whose items are being read
        self._items: list[_OrderItem] = []
        self._taken: list[MallOrder] = []
        self._tokens: set[str] = set()  # every NextToken followed, so a repeated one stops us
        first = None
        if since < until:
            # LastUpdatedBefore is inclusive: an order changed at ``until`` itself comes back
            # here and in the next window; this poll leaves it to the next one.
            first = self._get_orders(
                (
                    ("LastUpdatedAfter", _utc_z(since)),
                    ("LastUpdatedBefore", _utc_z(until)),
                    ("MaxResultsPerPage", str(ORDERS_PER_PAGE)),
                )
            )
        super().__init__(first)

    def _get_orders(self, criteria: tuple[tuple[str, str], ...]) -> HttpRequest:
        return HttpRequest(
            method="GET",
            path=ORDERS_PATH,
            query=(("MarketplaceIds", MARKETPLACE_JP), *criteria),
            headers=self._auth,
        )

    def _get_items(self, next_token: str) -> HttpRequest:
        return HttpRequest(
            method="GET",
            path=f"{ORDERS_PATH}/{quote(self._current, safe='')}/{_ORDER_ITEMS}",
            query=(("NextToken", next_token),) if next_token else (),
            headers=self._auth,
        )

    def _fresh(self, token: str) -> str:
        if token in self._tokens:
            raise MallApiError(f"the same NextToken came back twice: {token[:40]}")
        self._tokens.add(token)
        return token

    def _error_text(self, body: bytes) -> str:
        try:
            return _errors_text(msgspec.json.decode(body, type=_ErrorBody).errors)
        except msgspec.DecodeError:
            return body.decode("utf-8", "replace")

    def _answer(self, body: bytes) -> HttpRequest | None:
        if self._current:
            return self._items_page(body)
        return self._orders_page(body)

    def _orders_page(self, body: bytes) -> HttpRequest | None:
        try:
            answer = msgspec.json.decode(body, type=_OrdersAnswer)
        except msgspec.DecodeError as exc:
            raise MallApiError(f"unreadable getOrders answer: {exc}") from None
        if answer.errors or answer.payload is None:
            raise MallApiError(f"getOrders: {_errors_text(answer.errors)}")
        for order in answer.payload.Orders:
            self._readable(partial(self._take_order, order))
        if answer.payload.NextToken:
            return self._get_orders((("NextToken", self._fresh(answer.payload.NextToken)),))
        self._waiting = list(self._found)
        return self._next_order()

    def _take_order(self, order: _Order) -> None:
        if order.AmazonOrderId in self._seen:  # a page boundary moved under an update
            return
        self._seen.add(order.AmazonOrderId)
        if order.MarketplaceId != MARKETPLACE_JP or order.OrderStatus in _NOT_THIS_SHOPS:
            self._ignored += 1
            return
        status = _STATUSES.get(order.OrderStatus)
        if status is None:
            raise MallApiError(
                f"order {order.AmazonOrderId}: unknown OrderStatus {order.OrderStatus!r}"
            )
        if order.LastUpdateDate != "":
            updated = _moment(order.LastUpdateDate, f"order {order.AmazonOrderId} LastUpdateDate")
            if updated >= self._until:
                return
        self._found[order.AmazonOrderId] = (order, status)

    def _next_order(self) -> HttpRequest | None:
        if not self._waiting:
            self._current = ""
            self._finish(self._taken)
            return None
        self._current = self._waiting.pop(0)
        self._items = []
        return self._get_items("")

    def _items_page(self, body: bytes) -> HttpRequest | None:
        try:
            answer = msgspec.json.decode(body, type=_ItemsAnswer)
        except msgspec.DecodeError as exc:
            raise MallApiError(f"unreadable getOrderItems answer: {exc}") from None
        if answer.errors or answer.payload is None:
            raise MallApiError(f"getOrderItems {self._current}: {_errors_text(answer.errors)}")
        payload = answer.payload
        if payload.AmazonOrderId and payload.AmazonOrderId != self._current:
            raise MallApiError(
                f"getOrderItems for {self._current} answered for {payload.AmazonOrderId}"
            )
        self._items.extend(payload.OrderItems)
        if payload.NextToken:
            return self._get_items(self._fresh(payload.NextToken))
        if (order := self._readable(self._mall_order)) is not None:
            self._taken.append(order)
        return self._next_order()

    def _mall_order(self) -> MallOrder:
        order, status = self._found[self._current]
        where = f"order {order.AmazonOrderId}"
        if not self._items:
            raise MallApiError(f"{where}: getOrderItems gave no items")
        # By OrderItemId, so that the same order read again numbers its lines the same way.
        items = sorted({item.OrderItemId: item for item in self._items}.values(), key=_item_rank)
        lines = []
        for line_no, item in enumerate(items, start=1):
            # An item without a seller SKU (rare) keeps its ASIN, so the line is never lost.
            item_id = identifier(item.SellerSKU) or identifier(item.ASIN)
            if not item_id:
                raise MallApiError(f"{where} item {item.OrderItemId}: no SellerSKU and no ASIN")
            lines.append(
                OrderLine(
                    line_no=line_no,
                    item_id=item_id,
                    sku=join_sku(item_id, ()),
                    quantity=item.QuantityOrdered,
                    name=item.Title,
                )
            )
        ordered_at = _moment(order.PurchaseDate, f"{where} PurchaseDate")
        return MallOrder(
            order_no=order.AmazonOrderId,
            ordered_at=ordered_at.isoformat(),
            status=status,
            lines=tuple(lines),
        )


def _item_rank(item: _OrderItem) -> tuple[int, str]:
    return rank_key(item.OrderItemId)


# --- Orders, simulator side ---------------------------------------------------------------
# The simulator's NextTokens are its own (base64 of the page they continue); Amazon's are
# opaque, and the poll only passes them back.


def _token(fields: dict[str, str | int]) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(fields)).decode("ascii")


def _untoken(token: str) -> dict[str, str | int]:
    try:
        fields = msgspec.json.decode(
            base64.urlsafe_b64decode(token.encode("ascii")), type=dict[str, str | int]
        )
    except (ValueError, UnicodeEncodeError):
        raise ValueError(f"NextToken {token!r} is not one this mall gave") from None
    return fields


def read_order_call(request: HttpRequest) -> OrderCall:
    """What a getOrders or getOrderItems request asks for (simulator side)."""
    if request.method != "GET" or not request.path.startswith(ORDERS_PATH):
        raise ValueError(f"expected GET {ORDERS_PATH}…, got {request.method} {request.path}")
    if not header(request, _ACCESS_TOKEN):
        raise ValueError(f"missing {_ACCESS_TOKEN}")
    query = dict(request.query)
    token = query.get("NextToken", "")
    parts = request.path.removeprefix(ORDERS_PATH).split("/")
    if parts == [""]:
        if MARKETPLACE_JP not in query.get("MarketplaceIds", "").split(","):
            raise ValueError(f"MarketplaceIds must include {MARKETPLACE_JP}")
        if token:
            fields = _untoken(token)
            return OrderSearch(
                since=datetime.fromisoformat(str(fields["since"])),
                until=datetime.fromisoformat(str(fields["until"])),
                by=ORDER_SEARCH_DATE,
                limit=int(fields["limit"]),
                offset=int(fields["offset"]),
            )
        since = read_query_time(query, "LastUpdatedAfter")
        if "LastUpdatedBefore" in query:
            # inclusive at the mall: up to the end of that second
            until = read_query_time(query, "LastUpdatedBefore") + timedelta(seconds=1)
        else:
            until = datetime.max.replace(tzinfo=UTC)
        limit = query.get("MaxResultsPerPage", str(ORDERS_PER_PAGE))
        if not (limit.isdigit() and 1 <= int(limit) <= ORDERS_PER_PAGE):
            raise ValueError(f"MaxResultsPerPage {limit!r} is not 1–{ORDERS_PER_PAGE}")
        return OrderSearch(since=since, until=until, by=ORDER_SEARCH_DATE, limit=int(limit))
    if len(parts) == 3 and parts[0] == "" and parts[1] and parts[2] == _ORDER_ITEMS:
        order_no = unquote(parts[1])
        offset = 0
        if token:
            fields = _untoken(token)
            if fields.get("order") != order_no:
                raise ValueError(f"NextToken {token!r} is not one for order {order_no}")
            offset = int(fields["offset"])
        return ItemsFetch(order_no=order_no, offset=offset)
    raise ValueError(f"path {request.path} is neither getOrders nor getOrderItems")


def render_order_answer(call: OrderCall, answer: OrderAnswer) -> bytes:
    """The getOrders page or getOrderItems page for ``call`` (simulator side)."""
    if isinstance(call, OrderSearch):
        orders = [_rendered_order(served) for served in answer.orders]
        after = answer.start + len(orders)
        next_token = None
        if after < answer.total:
            next_token = _token(
                {
                    "since": call.since.isoformat(),
                    "until": call.until.isoformat(),
                    "limit": call.limit,
                    "offset": after,
                }
            )
        return msgspec.json.encode(
            _OrdersAnswer(payload=_OrdersPayload(Orders=orders, NextToken=next_token))
        )
    if isinstance(call, ItemsFetch):
        (served,) = answer.orders
        lines = served.order.lines[answer.start : answer.start + answer.limit]
        after = answer.start + len(lines)
        return msgspec.json.encode(
            _ItemsAnswer(
                payload=_ItemsPayload(
                    AmazonOrderId=served.order.order_no,
                    OrderItems=[
                        _OrderItem(
                            OrderItemId=f"{line.line_no:014d}",
                            SellerSKU=line.item_id,
                            QuantityOrdered=line.quantity,
                            Title=line.name,
                        )
                        for line in lines
                    ],
                    NextToken=_token({"order": served.order.order_no, "offset": after})
                    if after < answer.total
                    else None,
                )
            )
        )
    raise ValueError("Amazon has no order fetch by number list")


def _rendered_order(served: ServedOrder) -> _Order:
    order = served.order
    status = _RENDERED_STATUS.get(order.status)
    if status is None:
        raise ValueError(f"order {order.order_no}: Amazon has no {order.status} state")
    return _Order(
        AmazonOrderId=order.order_no,
        PurchaseDate=_utc_z(datetime.fromisoformat(order.ordered_at)),
        LastUpdateDate=_utc_z(served.updated_at),
        OrderStatus=status,
        MarketplaceId=OTHER_MARKETPLACE if served.foreign else MARKETPLACE_JP,
    )
