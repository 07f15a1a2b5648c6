"""Amazon (amazon): stock out through the SP-API Listings Items API (one PATCH of
``/attributes/fulfillment_availability`` per seller SKU, Japan marketplace) and order intake
through the SP-API Orders API (``getOrders``; Pending, Unshipped, Canceled, ...).

Unverified: getOrders answers carry each order's items in ``OrderItems`` (zaiko's simplification of
the separate getOrderItems call, which the simulator folds in); pagination (NextToken) is not followed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Literal, NoReturn
from urllib.parse import quote, unquote

import msgspec

from protocols.malls._api import JSON_CONTENT_TYPE, header, require_pushable
from protocols.malls.base import (
    ApiAccount,
    Capability,
    HttpRequest,
    MallOrder,
    MallOrderState,
    OrderLine,
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
    unverified=(
        "getOrders answers are modelled with each order's OrderItems folded in "
        "(real SP-API needs getOrderItems per order)"
    ),
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


# --- Orders: getOrders --------------------------------------------------------------------


class _OrderItem(msgspec.Struct):
    OrderItemId: str
    SellerSKU: str
    QuantityOrdered: Annotated[int, msgspec.Meta(ge=0)]
    Title: str = ""
    ASIN: str = ""


class _Order(msgspec.Struct):
    AmazonOrderId: str
    PurchaseDate: str
    OrderStatus: str
    OrderItems: list[_OrderItem]
    MarketplaceId: str = MARKETPLACE_JP


class _OrdersPayload(msgspec.Struct):
    Orders: list[_Order]
    NextToken: str | None = None


class _OrdersBody(msgspec.Struct):
    payload: _OrdersPayload


def _utc_z(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"{moment} has no time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_orders_request(account: ApiAccount, since: datetime) -> HttpRequest:
    """getOrders for the Japan marketplace, every order updated since ``since`` (catches
    cancellations as well as new orders)."""
    return HttpRequest(
        method="GET",
        path=ORDERS_PATH,
        query=(
            ("MarketplaceIds", MARKETPLACE_JP),
            ("LastUpdatedAfter", _utc_z(since)),
            ("MaxResultsPerPage", "100"),
        ),
        headers=((_ACCESS_TOKEN, account.secret),),
    )


def parse_orders_request(request: HttpRequest) -> datetime:
    """The ``LastUpdatedAfter`` instant of a getOrders request (simulator side)."""
    if request.method != "GET" or request.path != ORDERS_PATH:
        raise ValueError(f"expected GET {ORDERS_PATH}, got {request.method} {request.path}")
    if not header(request, _ACCESS_TOKEN):
        raise ValueError(f"missing {_ACCESS_TOKEN}")
    since = dict(request.query).get("LastUpdatedAfter", "")
    try:
        return datetime.fromisoformat(since)
    except ValueError:
        raise ValueError(f"LastUpdatedAfter {since!r} is not an ISO 8601 time") from None


def parse_orders_response(body: bytes) -> list[MallOrder]:
    """getOrders → MallOrders: Pending → pending, Unshipped/Shipped → new, Canceled → cancelled.

    Lines are numbered by OrderItemId order, so the numbering is stable across polls.
    """
    try:
        payload = msgspec.json.decode(body, type=_OrdersBody).payload
    except msgspec.DecodeError as exc:
        _raise_error_body(body, exc)
    orders = []
    for order in payload.Orders:
        status = _STATUSES.get(order.OrderStatus)
        if status is None:
            raise ValueError(
                f"order {order.AmazonOrderId}: unknown OrderStatus {order.OrderStatus!r}"
            )
        items = sorted(order.OrderItems, key=lambda item: (len(item.OrderItemId), item.OrderItemId))
        lines = tuple(
            OrderLine(
                line_no=line_no,
                item_id=identifier(item.SellerSKU),
                sku=join_sku(item.SellerSKU, ()),
                quantity=item.QuantityOrdered,
                name=item.Title,
            )
            for line_no, item in enumerate(items, start=1)
        )
        orders.append(
            MallOrder(
                order_no=order.AmazonOrderId,
                ordered_at=datetime.fromisoformat(order.PurchaseDate).isoformat(),
                status=status,
                lines=lines,
            )
        )
    return orders


def _raise_error_body(body: bytes, not_orders: msgspec.DecodeError) -> NoReturn:
    try:
        errors = msgspec.json.decode(body, type=_ErrorBody).errors
    except msgspec.DecodeError:
        raise ValueError(f"unreadable getOrders answer: {not_orders}") from None
    raise ValueError("; ".join(f"{e.code}: {e.message}" for e in errors) or "getOrders failed")


def render_orders_response(orders: Sequence[MallOrder]) -> bytes:
    """A getOrders answer (with OrderItems folded in) for ``orders`` (simulator side)."""
    rendered = []
    for order in orders:
        status = _RENDERED_STATUS.get(order.status)
        if status is None:
            raise ValueError(f"order {order.order_no}: Amazon has no {order.status} state")
        rendered.append(
            _Order(
                AmazonOrderId=order.order_no,
                PurchaseDate=_utc_z(datetime.fromisoformat(order.ordered_at)),
                OrderStatus=status,
                OrderItems=[
                    _OrderItem(
                        OrderItemId=f"{line.line_no:014d}",
                        SellerSKU=line.item_id,
                        QuantityOrdered=line.quantity,
                        Title=line.name,
                    )
                    for line in order.lines
                ],
            )
        )
    return msgspec.json.encode(_OrdersBody(payload=_OrdersPayload(Orders=rendered)))
