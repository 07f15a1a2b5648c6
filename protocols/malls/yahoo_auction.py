"""ヤフオク! (yahoo_auction): order intake only (TEMPOSTAR offers no stock push for it), read from
the seller's list of closed, sold auctions. One auction is one order with one line: multi-quantity
listings are not recommended for integrations, so one winner per auction is assumed.

Unverified: the closed-auction call and its JSON fields are zaiko's design after the auction API's
naming (no public seller API documentation was found).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import msgspec

from protocols.malls._api import check_route, header
from protocols.malls.base import (
    ApiAccount,
    Capability,
    HttpRequest,
    MallOrder,
    MallOrderState,
    OrderLine,
    identifier,
    joined,
)

CAPABILITY = Capability(
    kind="yahoo_auction",
    name_ja="ヤフオク!",
    intake=("api",),
    stock_out=(),
    unverified="closed-auction call and its JSON fields are zaiko's design (no public seller API doc)",
)

CLOSED_LIST_PATH = "/AuctionWebService/V2/myCloseList"
# Sold: the auction ended with a winner. Cancelled: the seller removed the winner (落札者削除)
# or the deal was called off, so the unit comes back.
_STATES: dict[str, MallOrderState] = {"sold": "new", "cancelled": "cancelled"}
_RENDERED_STATES: dict[MallOrderState, str] = {status: state for state, status in _STATES.items()}


def join_sku(item_id: str, variation: tuple[str, ...]) -> str:
    """SKU = the seller's item code of the auction (auctions have no variation codes)."""
    return joined(item_id, variation)


class _Auction(msgspec.Struct):
    AuctionID: str
    SellerItemCode: str
    EndTime: str
    Status: str
    Quantity: Annotated[int, msgspec.Meta(ge=1)] = 1
    Title: str = ""


class _ResultSet(msgspec.Struct):
    totalResultsReturned: int
    Result: list[_Auction] = []


class _Answer(msgspec.Struct):
    ResultSet: _ResultSet


class _ErrorDetail(msgspec.Struct):
    Message: str


class _ErrorAnswer(msgspec.Struct):
    Error: _ErrorDetail


def build_orders_request(account: ApiAccount, since: datetime) -> HttpRequest:
    """Sold or cancelled auctions that closed or changed since ``since``."""
    if since.tzinfo is None:
        raise ValueError(f"{since} has no time zone")
    return HttpRequest(
        method="GET",
        path=CLOSED_LIST_PATH,
        query=(("list", "sold"), ("output", "json"), ("since", since.isoformat())),
        headers=(("Authorization", f"Bearer {account.secret}"),),
    )


def parse_orders_request(request: HttpRequest) -> datetime:
    """The ``since`` instant of a closed-auction call (simulator side)."""
    check_route(request, "GET", CLOSED_LIST_PATH)
    if not header(request, "Authorization").startswith("Bearer "):
        raise ValueError("missing Bearer authorization")
    since = dict(request.query).get("since", "")
    try:
        moment = datetime.fromisoformat(since)
    except ValueError:
        raise ValueError(f"since {since!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ValueError(f"since {since!r} has no time zone")
    return moment


def parse_orders_response(body: bytes) -> list[MallOrder]:
    """Closed auctions → MallOrders (sold → new, cancelled → cancelled), one line each."""
    try:
        auctions = msgspec.json.decode(body, type=_Answer).ResultSet.Result
    except msgspec.DecodeError as not_orders:
        try:
            message = msgspec.json.decode(body, type=_ErrorAnswer).Error.Message
        except msgspec.DecodeError:
            raise ValueError(f"unreadable closed-auction answer: {not_orders}") from None
        raise ValueError(message) from None
    orders = []
    for auction in auctions:
        status = _STATES.get(auction.Status)
        if status is None:
            raise ValueError(f"auction {auction.AuctionID}: unknown Status {auction.Status!r}")
        try:
            ended = datetime.fromisoformat(auction.EndTime)
        except ValueError:
            raise ValueError(f"auction {auction.AuctionID}: EndTime {auction.EndTime!r}") from None
        orders.append(
            MallOrder(
                order_no=auction.AuctionID,
                ordered_at=ended.isoformat(),
                status=status,
                lines=(
                    OrderLine(
                        line_no=1,
                        item_id=identifier(auction.SellerItemCode),
                        sku=join_sku(auction.SellerItemCode, ()),
                        quantity=auction.Quantity,
                        name=auction.Title,
                    ),
                ),
            )
        )
    return orders


def render_orders_response(orders: Sequence[MallOrder]) -> bytes:
    """A closed-auction answer for ``orders`` (simulator side)."""
    auctions = []
    for order in orders:
        state = _RENDERED_STATES.get(order.status)
        if state is None:
            raise ValueError(f"auction {order.order_no}: ヤフオク! has no {order.status} state")
        if len(order.lines) != 1 or order.lines[0].variation:
            raise ValueError(f"auction {order.order_no}: one line without variation per auction")
        line = order.lines[0]
        auctions.append(
            _Auction(
                AuctionID=order.order_no,
                SellerItemCode=line.item_id,
                EndTime=order.ordered_at,
                Status=state,
                Quantity=line.quantity,
                Title=line.name,
            )
        )
    return msgspec.json.encode(
        _Answer(ResultSet=_ResultSet(totalResultsReturned=len(auctions), Result=auctions))
    )


def render_error(status: int, message: str) -> bytes:
    """The auction API's error shape: ``{"Error": {"Message": ...}}``."""
    return msgspec.json.encode(_ErrorAnswer(Error=_ErrorDetail(Message=message)))
