"""Qoo10 (qoo10): stock out through QSM's QAPI (form-encoded calls with the seller's ``key``:
``ItemsOrder.SetGoodsPriceQty`` for items without options, ``ItemsOptions.EditGoodsInventory``
for option items) and order intake through ``ShippingBasic.GetShippingInfo_v2`` by order date
(unpaid 入金待ち, paid, cancelled, partially cancelled carts).

Unverified: call and parameter names follow public SDKs and clients, not QSM's spec; the row
states, and cancelled rows in the same answer, are zaiko's design (the real QAPI lists
cancellations through a claim call, and no public QSM order response exists).
Paging is not public: one public client sees every row on Page 1 and an empty Page 2; zaiko asks page after page until one brings no new row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Annotated
from urllib.parse import parse_qsl, urlencode

import msgspec

from protocols.malls._api import (
    ApiOrderPoll,
    OrderAnswer,
    OrderCall,
    OrderSearch,
    OrderSearchDate,
    check_route,
    check_window,
    in_window,
    japan_day_ranges,
    rank_key,
    read_japan_days,
    require_pushable,
)
from protocols.malls._mail import JST
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
    kind="qoo10",
    name_ja="Qoo10",
    intake=("api",),
    stock_out=("api",),
    options=("take_unpaid", "take_cancellations"),
    api_batch_size=1,
    api_requests_per_s=5.0,
    unverified=(
        "QAPI call/parameter names follow public SDKs; order row states and cancelled rows in "
        "the shipping-info answer are zaiko's design"
    ),
)

QAPI_PATH = "/GMKT.INC.Front.QAPIService/ebayjapan.qapi"
SET_PRICE_QTY = "ItemsOrder.SetGoodsPriceQty"
EDIT_INVENTORY = "ItemsOptions.EditGoodsInventory"
GET_SHIPPING_INFO = "ShippingBasic.GetShippingInfo_v2"
_FORM = ("Content-Type", "application/x-www-form-urlencoded")
# EditGoodsInventory's InventoryInfo: options joined by "$$", each
# "name||*value||*price||*qty||*code". zaiko knows only qty and code; the rest stays blank.
_OPTION_SEPARATOR = "$$"
_FIELD_SEPARATOR = "||*"
_OPTION_FIELDS = 5
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
# Row states of the shipping-info answer (Japan time). Every row of a cart shares the payment
# state; cancellation is per row (one Qoo10 orderNo per item).
_ROW_STATES: dict[str, MallOrderState] = {
    "入金待ち": "unpaid",
    "配送要請": "new",
    "配送準備中": "new",
    "配送中": "new",
    "配送完了": "new",
    "キャンセル": "cancelled",
}
_UNPAID, _PAID, _CANCELLED = "入金待ち", "配送要請", "キャンセル"


def join_sku(item_id: str, variation: tuple[str, ...]) -> str:
    """SKU = SellerCode (販売者商品コード) + option code, or SellerCode alone."""
    return joined(item_id, variation)


def _option_variation(option_code: str) -> tuple[str, ...]:
    code = identifier(option_code)
    return (code,) if code else ()


def _call(method: str, account: ApiAccount, params: list[tuple[str, str]]) -> HttpRequest:
    form = [("key", account.secret), ("v", "1.0"), ("returnType", "json"), ("method", method)]
    return HttpRequest(
        method="POST",
        path=QAPI_PATH,
        headers=(_FORM,),
        body=urlencode(form + params).encode("ascii"),
    )


def _form(request: HttpRequest) -> dict[str, str]:
    check_route(request, "POST", QAPI_PATH)
    try:
        fields = dict(
            parse_qsl(request.body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"form body does not parse: {exc}") from None
    if not fields.get("key"):
        raise ValueError("missing key")
    return fields


def _count(value: str, name: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f"{name} {value!r} is not a whole number")
    return int(value)


# --- stock --------------------------------------------------------------------------------


class _Result(msgspec.Struct):
    ResultCode: int
    ResultMsg: str
    ResultObject: msgspec.Raw = msgspec.Raw(b"null")


def build_stock_requests(updates: Sequence[StockUpdate], account: ApiAccount) -> list[HttpRequest]:
    """One call per item: SetGoodsPriceQty without options, EditGoodsInventory with options."""
    require_pushable(updates)
    requests = []
    options: dict[str, list[StockUpdate]] = {}
    for update in updates:
        if not update.variation:
            requests.append(
                _call(
                    SET_PRICE_QTY,
                    account,
                    [
                        ("ItemCode", ""),
                        ("SellerCode", update.item_id),
                        ("Qty", str(update.quantity)),
                    ],
                )
            )
        elif len(update.variation) == 1:
            options.setdefault(update.item_id, []).append(update)
        else:
            raise ValueError(
                f"{update.item_id}: Qoo10 options have one code, got {update.variation}"
            )
    for seller_code, option_updates in options.items():
        entries = []
        for update in option_updates:
            code = update.variation[0]
            if _OPTION_SEPARATOR in code or _FIELD_SEPARATOR in code:
                raise ValueError(f"{seller_code}: option code {code!r} holds a QAPI separator")
            entries.append(_FIELD_SEPARATOR.join(("", "", "", str(update.quantity), code)))
        requests.append(
            _call(
                EDIT_INVENTORY,
                account,
                [
                    ("ItemCode", ""),
                    ("SellerCode", seller_code),
                    ("InventoryInfo", _OPTION_SEPARATOR.join(entries)),
                ],
            )
        )
    return requests


def parse_stock_request(request: HttpRequest) -> list[StockUpdate]:
    """What a SetGoodsPriceQty / EditGoodsInventory call sets (simulator side)."""
    form = _form(request)
    seller_code = form.get("SellerCode", "")
    if not seller_code:
        raise ValueError("missing SellerCode")
    method = form.get("method")
    if method == SET_PRICE_QTY:
        return [StockUpdate(seller_code, (), _count(form.get("Qty", ""), "Qty"))]
    if method == EDIT_INVENTORY:
        updates = []
        for entry in form.get("InventoryInfo", "").split(_OPTION_SEPARATOR):
            fields = entry.split(_FIELD_SEPARATOR)
            if len(fields) != _OPTION_FIELDS or not fields[4]:
                raise ValueError(
                    f"InventoryInfo entry {entry!r} is not name||*value||*price||*qty||*code"
                )
            updates.append(StockUpdate(seller_code, (fields[4],), _count(fields[3], "qty")))
        return updates
    raise ValueError(f"not a stock call: method {method!r}")


def parse_stock_response(status: int, body: bytes) -> None:
    """QAPI answers HTTP 200 with ResultCode 0 on success; anything else raises ValueError."""
    if not 200 <= status < 300:
        raise ValueError(f"HTTP {status}: {body.decode('utf-8', 'replace').strip() or 'no body'}")
    _checked(body)


def _checked(body: bytes) -> _Result:
    try:
        result = msgspec.json.decode(body, type=_Result)
    except msgspec.DecodeError as exc:
        raise ValueError(f"unreadable QAPI answer: {exc}") from None
    if result.ResultCode != 0:
        raise ValueError(f"Qoo10 ResultCode {result.ResultCode}: {result.ResultMsg}")
    return result


def render_stock_response(updates: Sequence[StockUpdate]) -> bytes:
    return msgspec.json.encode(_Result(ResultCode=0, ResultMsg="SUCCESS"))


def render_error(status: int, message: str) -> bytes:
    """QAPI reports errors in the body as a negative ResultCode (here: minus the HTTP status)."""
    return msgspec.json.encode(_Result(ResultCode=-status, ResultMsg=message))


# --- orders: ShippingBasic.GetShippingInfo_v2 ------------------------------------------------

ORDER_SEARCH_DATE: OrderSearchDate = "ordered"
# search_Sdate to search_Edate (both included) may span 90 days at most (a public client).
SEARCH_DAYS = 90
ROWS_PER_PAGE = 200  # PageSize, as a public client sends it
_SEARCH_BY_ORDER_DATE = "1"  # search_condition 1 = 注文日
_SEARCH_DATE_FORMAT = "%Y%m%d"


class _OrderRow(msgspec.Struct):
    packNo: str
    orderNo: str
    orderDate: str
    shippingStatus: str
    sellerItemCode: str
    orderQty: Annotated[int, msgspec.Meta(ge=1)]
    optionCode: str = ""
    itemTitle: str = ""


def start_order_poll(account: ApiAccount, since: datetime, until: datetime) -> OrderPoll:
    """GetShippingInfo_v2 by order date over the Japan days of ``[since, until)``, at most 90
    days a call, page after page; rows (one per Qoo10 orderNo) become one order per cart
    (packNo), and carts ordered outside the window (the search takes whole days) are left
    out. No search by last change: a payment or cancellation is seen by a poll whose window
    holds the cart's order date."""
    return _OrdersPoll(account, since, until)


class _OrdersPoll(ApiOrderPoll):
    def __init__(self, account: ApiAccount, since: datetime, until: datetime) -> None:
        check_window(since, until)
        self._account = account
        self._since, self._until = since, until
        self._ranges = japan_day_ranges(since, until, SEARCH_DAYS)
        self._page = 1
        self._rows: dict[str, _OrderRow] = {}  # by Qoo10 orderNo
        super().__init__(self._search() if self._ranges else None)

    def _search(self) -> HttpRequest:
        first, last = self._ranges[0]
        return _call(
            GET_SHIPPING_INFO,
            self._account,
            [
                ("search_condition", _SEARCH_BY_ORDER_DATE),
                ("search_Sdate", first.strftime(_SEARCH_DATE_FORMAT)),
                ("search_Edate", last.strftime(_SEARCH_DATE_FORMAT)),
                ("Page", str(self._page)),
                ("PageSize", str(ROWS_PER_PAGE)),
            ],
        )

    def _error_text(self, body: bytes) -> str:
        try:
            result = msgspec.json.decode(body, type=_Result)
        except msgspec.DecodeError:
            return body.decode("utf-8", "replace")
        return f"Qoo10 ResultCode {result.ResultCode}: {result.ResultMsg}"

    def _answer(self, body: bytes) -> HttpRequest | None:
        try:
            rows = msgspec.json.decode(_checked(body).ResultObject, type=list[_OrderRow] | None)
        except msgspec.ValidationError as exc:
            raise MallApiError(f"unreadable GetShippingInfo_v2 rows: {exc}") from None
        new_rows = [row for row in rows or () if row.orderNo not in self._rows]
        self._rows.update((row.orderNo, row) for row in new_rows)
        if new_rows:
            self._page += 1
            return self._search()
        self._ranges.pop(0)
        self._page = 1
        if self._ranges:
            return self._search()
        carts: dict[str, list[_OrderRow]] = {}
        for row in self._rows.values():
            carts.setdefault(row.packNo, []).append(row)
        read = (
            self._readable(partial(_cart_order, pack_no, rows)) for pack_no, rows in carts.items()
        )
        self._finish(
            [
                order
                for order in read
                if order is not None
                and in_window(datetime.fromisoformat(order.ordered_at), self._since, self._until)
            ]
        )
        return None


def _row_rank(row: _OrderRow) -> tuple[int, str]:
    return rank_key(row.orderNo)


def _cart_order(pack_no: str, rows: list[_OrderRow]) -> MallOrder:
    """A cart's rows → one MallOrder. Lines are numbered by orderNo, so the same cart read
    again numbers them the same way. A cart whose rows are all cancelled is ``cancelled``;
    some cancelled is ``partially_cancelled`` with those lines in ``cancelled_lines``;
    otherwise ``unpaid`` (入金待ち) or ``new`` (paid)."""
    rows = sorted(rows, key=_row_rank)
    states = []
    for row in rows:
        state = _ROW_STATES.get(row.shippingStatus)
        if state is None:
            raise MallApiError(
                f"order {row.orderNo}: unknown shippingStatus {row.shippingStatus!r}"
            )
        states.append(state)
    cancelled = tuple(n for n, state in enumerate(states, start=1) if state == "cancelled")
    status: MallOrderState
    if len(cancelled) == len(rows):
        status, cancelled = "cancelled", ()
    elif cancelled:
        status = "partially_cancelled"
    else:
        status = "unpaid" if "unpaid" in states else "new"
    try:
        ordered_at = datetime.strptime(rows[0].orderDate, _DATE_FORMAT).replace(tzinfo=JST)
    except ValueError:
        raise MallApiError(
            f"cart {pack_no}: orderDate {rows[0].orderDate!r} is not {_DATE_FORMAT}"
        ) from None
    lines = tuple(
        OrderLine(
            line_no=line_no,
            item_id=identifier(row.sellerItemCode),
            variation=_option_variation(row.optionCode),
            sku=join_sku(row.sellerItemCode, _option_variation(row.optionCode)),
            quantity=row.orderQty,
            name=row.itemTitle,
        )
        for line_no, row in enumerate(rows, start=1)
    )
    return MallOrder(
        order_no=pack_no,
        ordered_at=ordered_at.isoformat(),
        status=status,
        lines=lines,
        cancelled_lines=cancelled,
    )


# --- orders, simulator side ------------------------------------------------------------------


def read_order_call(request: HttpRequest) -> OrderCall:
    """What a GetShippingInfo_v2 call asks for (simulator side): whole Japan days."""
    form = _form(request)
    if form.get("method") != GET_SHIPPING_INFO:
        raise ValueError(f"not an order call: method {form.get('method')!r}")
    if form.get("search_condition", _SEARCH_BY_ORDER_DATE) != _SEARCH_BY_ORDER_DATE:
        raise ValueError("search_condition: the simulator searches by order date (1)")
    since, until = read_japan_days(
        form, "search_Sdate", "search_Edate", _SEARCH_DATE_FORMAT, SEARCH_DAYS
    )
    page = _count(form.get("Page", "1"), "Page")
    page_size = _count(form.get("PageSize", str(ROWS_PER_PAGE)), "PageSize")
    if page < 1 or page_size < 1:
        raise ValueError("Page and PageSize must be 1 or more")
    return OrderSearch(
        since=since,
        until=until,
        by=ORDER_SEARCH_DATE,
        limit=page_size,
        page=page,
    )


def render_order_answer(call: OrderCall, answer: OrderAnswer) -> bytes:
    """A GetShippingInfo_v2 page: one row per line, orderNo = cart number + line (simulator
    side)."""
    if not isinstance(call, OrderSearch):
        raise ValueError("QAPI answers order searches only")
    rows = []
    for served in answer.orders:
        order = served.order
        if order.status == "pending":
            raise ValueError(f"order {order.order_no}: Qoo10 has no pending state")
        live_state = _UNPAID if order.status == "unpaid" else _PAID
        for line in order.lines:
            if len(line.variation) > 1:
                raise ValueError(f"{line.item_id}: Qoo10 options have one code")
            cancelled = order.status == "cancelled" or line.line_no in order.cancelled_lines
            rows.append(
                _OrderRow(
                    packNo=order.order_no,
                    orderNo=f"{order.order_no}{line.line_no:03d}",
                    orderDate=datetime.fromisoformat(order.ordered_at)
                    .astimezone(JST)
                    .strftime(_DATE_FORMAT),
                    shippingStatus=_CANCELLED if cancelled else live_state,
                    sellerItemCode=line.item_id,
                    orderQty=line.quantity,
                    optionCode=line.variation[0] if line.variation else "",
                    itemTitle=line.name,
                )
            )
    return msgspec.json.encode({"ResultCode": 0, "ResultMsg": "SUCCESS", "ResultObject": rows})
