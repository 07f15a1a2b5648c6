"""Amazon (amazon): stock out through the SP-API Listings Items API (one PATCH of
``/attributes/fulfillment_availability`` per seller SKU, Japan marketplace) and order intake
through the SP-API Orders API v0: ``getOrders`` by last update (Pending, Unshipped, Canceled,
...; every NextToken page), then ``getOrderItems`` for each order (getOrders carries no items;
every NextToken page). Orders of other marketplaces are counted, not taken.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
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
)

MARKETPLACE_JP = "A1VC38T7YXB528"
LISTINGS_PREFIX = "/listings/2021-08-01/items/"
ORDERS_PATH = "/orders/v0/orders"
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


def build_stock_requests(updates: Sequence[StockUpdate], account: ApiAccount) -> list[HttpRequest]:
    """One ``patchListingsItem`` per seller SKU (the API takes one SKU per call)."""
    require_pushable(updates)
    if not account.seller_id:
        raise ValueError("Amazon needs the account's seller_id (merchant token)")
    requests = []
    for update in updates:
        body = _PatchBody(
            productType="PRODUCT",
            patches=[
                _Patch(
                    op="replace",
                    path=_AVAILABILITY,
                    value=[_Availability("DEFAULT", update.quantity)],
                )
            ],
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
    quantities = [
        availability.quantity
        for patch in body.patches
        if patch.path == _AVAILABILITY
        for availability in patch.value
        if availability.fulfillment_channel_code == "DEFAULT"
    ]
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
