"""Pieces shared by the mall API codecs: batching, the pushable-quantity check, the small
JSON stock API that zaiko defines for carts whose real stock API is not public (CARTSTAR,
ショップサーブ, SHOPLIST), and what every order poll shares (``ApiOrderPoll``, and the
simulator's view of an order call).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Annotated, Literal, TypeVar

import msgspec

from protocols.malls._mail import JST
from protocols.malls.base import (
    ApiAccount,
    HttpRequest,
    MallApiError,
    MallOrder,
    RateLimited,
    StockUpdate,
)

T = TypeVar("T")
JSON_CONTENT_TYPE = ("Content-Type", "application/json")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def require_pushable(updates: Sequence[StockUpdate]) -> None:
    """Refuse a negative quantity: zaiko never pushes one (SPEC §2, negative stock)."""
    for update in updates:
        if update.quantity < 0:
            raise ValueError(
                f"quantity {update.quantity} for {update.item_id} {update.variation} is negative"
            )


def header(request: HttpRequest, name: str) -> str:
    """A request header's value (case-insensitive name), or "" when absent."""
    wanted = name.lower()
    return next((value for key, value in request.headers if key.lower() == wanted), "")


def check_route(request: HttpRequest, method: str, path: str) -> None:
    if request.method != method or request.path != path:
        raise ValueError(f"expected {method} {path}, got {request.method} {request.path}")


class _StockEntry(msgspec.Struct, forbid_unknown_fields=True):
    item_code: Annotated[str, msgspec.Meta(min_length=1)]
    quantity: Annotated[int, msgspec.Meta(ge=0)]
    variation_codes: list[str] = []


class _StockBody(msgspec.Struct, forbid_unknown_fields=True):
    stocks: list[_StockEntry]


class _StockResult(msgspec.Struct):
    updated: int


class _ErrorDetail(msgspec.Struct):
    status: int
    message: str


class _ErrorBody(msgspec.Struct):
    error: _ErrorDetail


class JsonStockApi:
    """``POST <path>`` with ``{"stocks": [{item_code, variation_codes, quantity}]}``.

    Bearer authentication; 200 ``{"updated": n}`` on success, otherwise
    ``{"error": {"status", "message"}}``. One request carries at most ``batch_size`` items.
    """

    def __init__(self, *, path: str, batch_size: int) -> None:
        self.path = path
        self.batch_size = batch_size

    def build_stock_requests(
        self, updates: Sequence[StockUpdate], account: ApiAccount
    ) -> list[HttpRequest]:
        require_pushable(updates)
        return [
            HttpRequest(
                method="POST",
                path=self.path,
                headers=(("Authorization", f"Bearer {account.secret}"), JSON_CONTENT_TYPE),
                body=msgspec.json.encode(
                    _StockBody(
                        stocks=[
                            _StockEntry(
                                item_code=u.item_id,
                                quantity=u.quantity,
                                variation_codes=list(u.variation),
                            )
                            for u in batch
                        ]
                    )
                ),
            )
            for batch in chunks(updates, self.batch_size)
        ]

    def parse_stock_request(self, request: HttpRequest) -> list[StockUpdate]:
        check_route(request, "POST", self.path)
        try:
            body = msgspec.json.decode(request.body, type=_StockBody)
        except msgspec.ValidationError as exc:
            raise ValueError(f"invalid stock request: {exc}") from None
        if len(body.stocks) > self.batch_size:
            raise ValueError(f"{len(body.stocks)} items in one request (at most {self.batch_size})")
        return [
            StockUpdate(entry.item_code, tuple(entry.variation_codes), entry.quantity)
            for entry in body.stocks
        ]

    def parse_stock_response(self, status: int, body: bytes) -> None:
        if 200 <= status < 300:
            return
        try:
            message = msgspec.json.decode(body, type=_ErrorBody).error.message
        except msgspec.DecodeError:
            message = body.decode("utf-8", "replace").strip() or "no error body"
        raise ValueError(f"HTTP {status}: {message}")

    def render_stock_response(self, updates: Sequence[StockUpdate]) -> bytes:
        return msgspec.json.encode(_StockResult(updated=len(updates)))

    def render_error(self, status: int, message: str) -> bytes:
        return msgspec.json.encode(_ErrorBody(error=_ErrorDetail(status=status, message=message)))


# --- order polls ---------------------------------------------------------------------------
#
# Every API-intake module builds its ``start_order_poll`` on ``ApiOrderPoll`` (the call in
# flight, 429s, failures, the result) and says which date its search filters on. For the
# simulator, each also reads its own requests back (``read_order_call``) and renders the
# answers (``render_order_answer``) from the ``OrderCall`` and ``OrderAnswer`` types below.

# "updated": the mall finds orders by their last change (a later cancellation or payment is
# found by the window it falls in); "ordered": by order date only, so a change to an older
# order is seen only by a poll whose window reaches back to the order's date.
OrderSearchDate = Literal["ordered", "updated"]


def header_value(headers: Mapping[str, str], name: str) -> str:
    """A response header's value (case-insensitive name), or "" when absent."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), "")


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds; None when absent or an HTTP date (reading one needs a
    clock, which a pure module has not: the caller's own backoff applies then)."""
    value = header_value(headers, "Retry-After").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def check_window(since: datetime, until: datetime) -> None:
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("an order poll needs aware datetimes (with a UTC offset)")
    if until < since:
        raise ValueError(f"order poll window ends ({until}) before it starts ({since})")


def window_chunks(
    since: datetime, until: datetime, longest: timedelta
) -> list[tuple[datetime, datetime]]:
    """``[since, until)`` cut into consecutive windows of at most ``longest``."""
    chunks = []
    start = since
    while start < until:
        end = min(until, start + longest)
        chunks.append((start, end))
        start = end
    return chunks


def read_query_time(query: Mapping[str, str], name: str) -> datetime:
    """A time a poll's request carries (simulator side): ISO 8601 with its zone."""
    value = query.get(name, "")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ValueError(f"{name} {value!r} has no time zone")
    return moment


def japan_day_ranges(since: datetime, until: datetime, days: int) -> list[tuple[date, date]]:
    """``[since, until)`` as the whole Japan days a mall searching by date is asked for, at
    most ``days`` to a search (first and last day included)."""
    if since >= until:
        return []
    first = since.astimezone(JST).date()
    last = (until - timedelta(microseconds=1)).astimezone(JST).date()
    ranges = []
    while first <= last:
        end = min(last, first + timedelta(days=days - 1))
        ranges.append((first, end))
        first = end + timedelta(days=1)
    return ranges


def read_japan_days(
    fields: Mapping[str, str], first_name: str, last_name: str, date_format: str, days: int
) -> tuple[datetime, datetime]:
    """The window a search by whole Japan days asks for (simulator side): from the start of
    the first day to the end of the last, at most ``days`` days."""
    first, last = (
        _read_day(fields.get(name, ""), name, date_format) for name in (first_name, last_name)
    )
    if not timedelta(0) <= last - first < timedelta(days=days):
        raise ValueError(f"{last_name} must be 0–{days - 1} days after {first_name}")
    return (
        datetime.combine(first, time(), JST),
        datetime.combine(last + timedelta(days=1), time(), JST),
    )


def _read_day(value: str, name: str, date_format: str) -> date:
    try:
        return datetime.strptime(value, date_format).date()
    except ValueError:
        raise ValueError(f"{name} {value!r} is not YYYYMMDD") from None


def in_window(moment: datetime, since: datetime, until: datetime) -> bool:
    return since <= moment < until


def rank_key(identifier: str) -> tuple[int, str]:
    """Sort key for a mall's numeric-looking ids ("9" before "10"): what line numbers follow,
    so that the same order read twice numbers its lines the same way."""
    return (len(identifier), identifier)


class ApiOrderPoll:
    """What every order poll shares (``base.OrderPoll``).

    ``next_request()`` returns the call in flight until it is answered; a 429 raises
    ``RateLimited`` and leaves that call in flight (send it again after the wait); any other
    failure (4xx/5xx, an answer that does not read) raises ``MallApiError`` and fails the poll
    for good: ``next_request()`` raises it again, and nothing of the poll is taken. One order
    that does not read is left out and said in ``unreadable`` (``_readable``). ``orders``
    can be read once the poll is done (``next_request()`` returned None).

    A mall module subclasses it with ``_answer(body)`` (read a 2xx answer, return the next
    call or None when done, after ``_finish``) and ``_error_text(body)`` (its error shape).
    """

    def __init__(self, first: HttpRequest | None) -> None:
        self._in_flight = first
        self._failure: MallApiError | None = None
        self._result: list[MallOrder] | None = None if first is not None else []
        self._ignored = 0
        self._unreadable: list[str] = []

    def next_request(self) -> HttpRequest | None:
        if self._failure is not None:
            raise self._failure
        return self._in_flight

    def feed(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        if self._failure is not None:
            raise self._failure
        if self._in_flight is None:
            raise RuntimeError("the order poll is done: nothing is waiting for an answer")
        if status == 429:
            raise RateLimited(f"HTTP 429: {self._error_line(body)}", retry_after(headers))
        try:
            if not 200 <= status < 300:
                raise MallApiError(f"HTTP {status}: {self._error_line(body)}")
            self._in_flight = self._answer(body)
        except ValueError as exc:  # MallApiError, and every reader's ValueError / DecodeError
            failure = exc if isinstance(exc, MallApiError) else MallApiError(str(exc))
            self._failure, self._in_flight = failure, None
            raise failure from None
        if self._in_flight is None and self._result is None:
            raise RuntimeError(f"{type(self).__name__} ended without its orders")

    @property
    def orders(self) -> list[MallOrder]:
        if self._result is None or self._in_flight is not None:
            raise RuntimeError("the order poll is not done: send next_request() and feed()")
        return self._result

    @property
    def ignored(self) -> int:
        return self._ignored

    @property
    def unreadable(self) -> list[str]:
        return self._unreadable

    def _readable(self, read: Callable[[], T]) -> T | None:
        """``read()`` of one order, or None when it does not read: a ValueError of a reader
        that reads one order is about that order (its message names it), kept in
        ``unreadable``, and the poll goes on."""
        try:
            return read()
        except ValueError as exc:
            self._unreadable.append(str(exc))
            return None

    def _finish(self, orders: list[MallOrder]) -> None:
        self._result = orders

    def _error_line(self, body: bytes) -> str:
        """The mall's error message on one line; the raw body when its shape does not read
        (a 429 or 5xx must never fail on its own error page)."""
        try:
            text = self._error_text(body)
        except ValueError:
            text = body.decode("utf-8", "replace")
        return " ".join(text.split()) or "no error body"

    # -- per mall ---------------------------------------------------------------------------

    def _answer(self, body: bytes) -> HttpRequest | None:
        raise NotImplementedError

    def _error_text(self, body: bytes) -> str:
        return body.decode("utf-8", "replace")


# --- order API, simulator side ---------------------------------------------------------------


class OrderSearch(msgspec.Struct, frozen=True, kw_only=True):
    """An order search as the simulated mall reads it: orders whose ``by`` date falls in
    ``[since, until)``, a page of at most ``limit`` from ``offset`` (or 1-based ``page``)."""

    since: datetime
    until: datetime
    by: OrderSearchDate
    limit: int
    offset: int = 0
    page: int | None = None


class OrderFetch(msgspec.Struct, frozen=True, kw_only=True):
    """The details of orders asked for by number (RMS getOrder)."""

    order_numbers: tuple[str, ...]


class ItemsFetch(msgspec.Struct, frozen=True, kw_only=True):
    """One page of one order's items (SP-API getOrderItems), from item ``offset``."""

    order_no: str
    offset: int = 0


OrderCall = OrderSearch | OrderFetch | ItemsFetch


class ServedOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An order as the simulated mall holds it: its last change, and whether it was placed
    on another marketplace of the same seller account (Amazon)."""

    order: MallOrder
    updated_at: datetime
    foreign: bool = False


class OrderAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """What the simulated mall answers: a search's page (``total`` matches in all pages,
    ``start`` the page's first position, ``limit`` the page size it used), the orders
    fetched, or the one order whose items are asked for (``total`` = its item count)."""

    orders: tuple[ServedOrder, ...]
    total: int = 0
    start: int = 0
    limit: int = 0


def answer_order_call(
    call: OrderCall, held: Sequence[ServedOrder], *, page_size: int, items_page_size: int
) -> OrderAnswer:
    """What a simulated mall answers to ``call`` from the orders it ``held`` (oldest first):
    a search's matches by the call's date, oldest first, in pages of at most ``page_size``
    (or fewer, as the caller asks); the orders fetched by number; one order's items, at most
    ``items_page_size`` a page. Raises KeyError for the items of an order it does not hold."""
    if isinstance(call, OrderSearch):

        def searched_date(served: ServedOrder) -> datetime:
            if call.by == "updated":
                return served.updated_at
            return datetime.fromisoformat(served.order.ordered_at)

        matches = sorted(
            (served for served in held if call.since <= searched_date(served) < call.until),
            key=searched_date,
        )
        limit = max(1, min(call.limit, page_size))
        start = call.offset if call.page is None else (call.page - 1) * limit
        return OrderAnswer(
            orders=tuple(matches[start : start + limit]),
            total=len(matches),
            start=start,
            limit=limit,
        )
    if isinstance(call, OrderFetch):
        by_number = {served.order.order_no: served for served in held}
        fetched = tuple(by_number[n] for n in call.order_numbers if n in by_number)
        return OrderAnswer(orders=fetched, total=len(fetched))
    served = next((s for s in held if s.order.order_no == call.order_no), None)
    if served is None:
        raise KeyError(f"no order {call.order_no!r}")
    return OrderAnswer(
        orders=(served,), total=len(served.order.lines), start=call.offset, limit=items_page_size
    )
