"""ヤフオク! (yahoo_auction): order intake only (TEMPOSTAR offers no stock push for it), read from
the seller's list of closed, sold auctions by last change, page after page. One auction is one
order with one line: multi-quantity listings are not recommended for integrations, so one winner
per auction is assumed.

Unverified: the closed-auction call and its JSON fields are zaiko's design after the auction API's
naming (no public seller API documentation was found).
Paging is not public: zaiko follows the Yahoo! Web API convention (start, results; totalResultsAvailable, firstResultPosition).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated

import msgspec

from protocols.malls._api import (
    ApiOrderPoll,
    OrderAnswer,
    OrderCall,
    OrderSearch,
    OrderSearchDate,
    check_route,
    check_window,
    header,
    read_query_time,
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
ORDER_SEARCH_DATE: OrderSearchDate = "updated"
AUCTIONS_PER_PAGE = 50  # results: at most 50 a page
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
    totalResultsAvailable: int
    totalResultsReturned: int
    firstResultPosition: int
    Result: list[_Auction] = []


class _Answer(msgspec.Struct):
    ResultSet: _ResultSet


class _ErrorDetail(msgspec.Struct):
    Message: str


class _ErrorAnswer(msgspec.Struct):
    Error: _ErrorDetail


def start_order_poll(account: ApiAccount, since: datetime, until: datetime) -> OrderPoll:
    """Sold or cancelled auctions that closed or changed in ``[since, until)``, every page."""
    return _OrdersPoll(account, since, until)


class _OrdersPoll(ApiOrderPoll):
    def __init__(self, account: ApiAccount, since: datetime, until: datetime) -> None:
        check_window(since, until)
        self._auth = (("Authorization", f"Bearer {account.secret}"),)
        self._since, self._until = since, until
        self._start = 1
        self._taken: dict[str, MallOrder] = {}
        super().__init__(self._page() if since < until else None)

    def _page(self) -> HttpRequest:
        return HttpRequest(
            method="GET",
            path=CLOSED_LIST_PATH,
            query=(
                ("list", "sold"),
                ("output", "json"),
                ("since", self._since.isoformat()),
                ("until", self._until.isoformat()),
                ("start", str(self._start)),
                ("results", str(AUCTIONS_PER_PAGE)),
            ),
            headers=self._auth,
        )

    def _error_text(self, body: bytes) -> str:
        try:
            return msgspec.json.decode(body, type=_ErrorAnswer).Error.Message
        except msgspec.DecodeError:
            return body.decode("utf-8", "replace")

    def _answer(self, body: bytes) -> HttpRequest | None:
        try:
            result = msgspec.json.decode(body, type=_Answer).ResultSet
        except msgspec.DecodeError as exc:
            raise MallApiError(f"unreadable closed-auction answer: {exc}") from None
        for auction in result.Result:
            order = self._readable(partial(_mall_order, auction))
            if order is not None:
                self._taken.setdefault(auction.AuctionID, order)
        # counted here, not from firstResultPosition: a mall repeating itself cannot loop us
        self._start += len(result.Result)
        if result.Result and self._start <= result.totalResultsAvailable:
            return self._page()
        self._finish(list(self._taken.values()))
        return None


def _mall_order(auction: _Auction) -> MallOrder:
    """A closed auction → MallOrder (sold → new, cancelled → cancelled), one line."""
    status = _STATES.get(auction.Status)
    if status is None:
        raise MallApiError(f"auction {auction.AuctionID}: unknown Status {auction.Status!r}")
    try:
        ended = datetime.fromisoformat(auction.EndTime)
    except ValueError:
        raise MallApiError(f"auction {auction.AuctionID}: EndTime {auction.EndTime!r}") from None
    return MallOrder(
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


# --- simulator side ---------------------------------------------------------------------------


def read_order_call(request: HttpRequest) -> OrderCall:
    """What a closed-auction call asks for (simulator side)."""
    check_route(request, "GET", CLOSED_LIST_PATH)
    if not header(request, "Authorization").startswith("Bearer "):
        raise ValueError("missing Bearer authorization")
    query = dict(request.query)
    since, until = read_query_time(query, "since"), read_query_time(query, "until")
    start, results = query.get("start", "1"), query.get("results", str(AUCTIONS_PER_PAGE))
    if not (start.isdigit() and int(start) >= 1):
        raise ValueError(f"start {start!r} is not 1 or more")
    if not (results.isdigit() and 1 <= int(results) <= AUCTIONS_PER_PAGE):
        raise ValueError(f"results {results!r} is not 1–{AUCTIONS_PER_PAGE}")
    return OrderSearch(
        since=since,
        until=until,
        by=ORDER_SEARCH_DATE,
        limit=int(results),
        offset=int(start) - 1,
    )


def render_order_answer(call: OrderCall, answer: OrderAnswer) -> bytes:
    """A closed-auction page (simulator side)."""
    if not isinstance(call, OrderSearch):
        raise ValueError("the closed-auction list answers searches only")
    auctions = []
    for served in answer.orders:
        order = served.order
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
        _Answer(
            ResultSet=_ResultSet(
                totalResultsAvailable=answer.total,
                totalResultsReturned=len(auctions),
                firstResultPosition=answer.start + 1,
                Result=auctions,
            )
        )
    )


def render_error(status: int, message: str) -> bytes:
    """The auction API's error shape: ``{"Error": {"Message": ...}}``."""
    return msgspec.json.encode(_ErrorAnswer(Error=_ErrorDetail(Message=message)))
