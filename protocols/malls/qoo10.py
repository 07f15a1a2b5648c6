"""Qoo10 (qoo10): stock out through QSM's QAPI (form-encoded calls with the seller's ``key``:
``ItemsOrder.SetGoodsPriceQty`` for items without options, ``ItemsOptions.EditGoodsInventory``
for option items) and order intake through a shipping-info call (unpaid 入金待ち, paid, cancelled,
partially cancelled carts).

Unverified: call and parameter names follow a public SDK, not QSM's spec; the order answer's row
fields and state names are zaiko's design (no public QSM order response).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated
from urllib.parse import parse_qsl, urlencode

import msgspec

from protocols.malls._api import check_route, require_pushable
from protocols.malls._mail import JST
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
    kind="qoo10",
    name_ja="Qoo10",
    intake=("api",),
    stock_out=("api",),
    options=("take_unpaid", "take_cancellations"),
    api_batch_size=1,
    api_requests_per_s=5.0,
    unverified=(
        "QAPI call/parameter names follow a public SDK; "
        "order-answer row fields and state names are zaiko's design"
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


# --- orders -------------------------------------------------------------------------------


class _OrderRow(msgspec.Struct):
    packNo: str
    orderNo: str
    orderDate: str
    shippingStatus: str
    sellerItemCode: str
    orderQty: Annotated[int, msgspec.Meta(ge=1)]
    optionCode: str = ""
    itemTitle: str = ""


def build_orders_request(account: ApiAccount, since: datetime) -> HttpRequest:
    """Every cart ordered or changed since the day of ``since`` (Japan time), in all states."""
    if since.tzinfo is None:
        raise ValueError(f"{since} has no time zone")
    return _call(
        GET_SHIPPING_INFO, account, [("search_Sdate", since.astimezone(JST).strftime("%Y%m%d"))]
    )


def parse_orders_request(request: HttpRequest) -> datetime:
    """The first day (Japan time, midnight) a shipping-info call asks for (simulator side)."""
    form = _form(request)
    if form.get("method") != GET_SHIPPING_INFO:
        raise ValueError(f"not an order call: method {form.get('method')!r}")
    try:
        return datetime.strptime(form.get("search_Sdate", ""), "%Y%m%d").replace(tzinfo=JST)
    except ValueError:
        raise ValueError(f"search_Sdate {form.get('search_Sdate')!r} is not YYYYMMDD") from None


def _row_order(row: _OrderRow) -> tuple[int, str]:
    return (len(row.orderNo), row.orderNo)


def parse_orders_response(body: bytes) -> list[MallOrder]:
    """Rows (one per Qoo10 orderNo) → one MallOrder per cart (packNo).

    Lines are numbered by orderNo order, stable across polls. A cart whose rows are all
    cancelled is ``cancelled``; some cancelled is ``partially_cancelled`` with those lines in
    ``cancelled_lines``; otherwise ``unpaid`` (入金待ち) or ``new`` (paid).
    """
    try:
        answer = msgspec.json.decode(_checked(body).ResultObject, type=list[_OrderRow] | None)
    except msgspec.ValidationError as exc:
        raise ValueError(f"unreadable order rows: {exc}") from None
    carts: dict[str, list[_OrderRow]] = {}
    for row in answer or ():
        if row.shippingStatus not in _ROW_STATES:
            raise ValueError(f"order {row.orderNo}: unknown shippingStatus {row.shippingStatus!r}")
        carts.setdefault(row.packNo, []).append(row)
    orders = []
    for pack_no, rows in carts.items():
        rows.sort(key=_row_order)
        states = [_ROW_STATES[row.shippingStatus] for row in rows]
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
            raise ValueError(
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
        orders.append(
            MallOrder(
                order_no=pack_no,
                ordered_at=ordered_at.isoformat(),
                status=status,
                lines=lines,
                cancelled_lines=cancelled,
            )
        )
    return orders


def render_orders_response(orders: Sequence[MallOrder]) -> bytes:
    """A shipping-info answer for ``orders`` (simulator side); orderNo = cart number + line."""
    rows = []
    for order in orders:
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
