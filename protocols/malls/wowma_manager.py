"""Wowma!(Wow! manager) (wowma_manager): orders from searchTradeInfoListProc and stock through
``wowma``'s updateStock API. An order line's variation is ``(itemManagementId,)``, so its SKU is
itemCode + 管理ID, the stock rule's itemCode + H + V when the 管理ID is the choice's H + V codes.

Unverified: endpoint and element names follow public third-party code; status values, itemCancelStatus "1" and the H+V 管理ID rule are zaiko's choice.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime, timedelta

from protocols.malls import _api, _mail, wowma
from protocols.malls.base import (
    ApiAccount,
    Capability,
    HttpRequest,
    MallOrder,
    MallOrderState,
    OrderLine,
)

ORDERS_PATH = "/wmshopapi/searchTradeInfoListProc"
ORDERS_PER_PAGE = 1000
SEARCH_WINDOW = timedelta(days=30)
REQUESTS_PER_SECOND = wowma.REQUESTS_PER_SECOND

CAPABILITY = Capability(
    kind="wowma_manager",
    name_ja="Wowma!(Wow! manager)",
    intake=("api",),
    stock_out=("api",),
    api_batch_size=wowma.ITEMS_PER_REQUEST,
    api_requests_per_s=REQUESTS_PER_SECOND,
    unverified=(
        "endpoints and element names follow public third-party code; status values and the "
        "H+V 管理ID rule are zaiko's choice"
    ),
)

join_sku = wowma.join_sku
build_stock_requests = wowma.build_stock_requests
parse_stock_request = wowma.parse_stock_request
parse_stock_response = wowma.parse_stock_response
render_stock_response = wowma.render_stock_response
render_error = wowma.render_error

# orderStatus values (Wow! manager's Japanese labels) that are not plain new orders.
_STATUS_CANCELLED = "キャンセル"
_STATUS_UNPAID = "発送前入金待ち"
_STATUS_PENDING = "与信待ち"
_STATUS_NEW = "新規受付"
_LINE_CANCELLED = "1"
_DATE_FORMAT = "%Y%m%d"
_ORDER_DATE_FORMAT = "%Y/%m/%d %H:%M"


def build_orders_request(account: ApiAccount, since: datetime) -> HttpRequest:
    """Orders by order date (dateType 0) from ``since``'s day (Japan time), one 30-day page."""
    if since.tzinfo is None:
        raise ValueError("wowma order search needs an aware datetime")
    start = since.astimezone(_mail.JST)
    query = (
        ("shopId", account.seller_id),
        ("totalCount", str(ORDERS_PER_PAGE)),
        ("startCount", "1"),
        ("dateType", "0"),
        ("startDate", start.strftime(_DATE_FORMAT)),
        ("endDate", (start + SEARCH_WINDOW).strftime(_DATE_FORMAT)),
    )
    return HttpRequest(
        method="GET",
        path=ORDERS_PATH,
        query=query,
        headers=(
            ("Authorization", f"Bearer {account.secret}"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ),
    )


def parse_orders_request(request: HttpRequest) -> datetime:
    """The first day asked for, at 00:00 Japan time (simulator side)."""
    _api.check_route(request, "GET", ORDERS_PATH)
    start = dict(request.query).get("startDate", "")
    try:
        return datetime.strptime(start, _DATE_FORMAT).replace(tzinfo=_mail.JST)
    except ValueError:
        raise ValueError(f"startDate {start!r} is not YYYYMMDD") from None


def parse_orders_response(body: bytes) -> list[MallOrder]:
    """``<response>`` with ``<orderInfo>`` elements → orders; raises ValueError on an error."""
    root = wowma.raise_on_error(200, body)
    return [_mall_order(info) for info in root.findall("orderInfo")]


def _required(element: ET.Element, tag: str, where: str) -> str:
    value = (element.findtext(tag) or "").strip()
    if not value:
        raise ValueError(f"{where}: no <{tag}>")
    return value


def _mall_order(info: ET.Element) -> MallOrder:
    order_no = _required(info, "orderId", "orderInfo")
    where = f"order {order_no}"
    order_date = _required(info, "orderDate", where)
    try:
        ordered_at = datetime.strptime(order_date, _ORDER_DATE_FORMAT).replace(tzinfo=_mail.JST)
    except ValueError:
        raise ValueError(f"{where}: orderDate {order_date!r} is not YYYY/MM/DD HH:MM") from None
    lines: list[OrderLine] = []
    cancelled: list[int] = []
    for number, detail in enumerate(info.findall("detail"), start=1):
        item_id = _required(detail, "itemCode", f"{where} detail {number}")
        unit = _required(detail, "unit", f"{where} detail {number}")
        if not (unit.isascii() and unit.isdigit()):
            raise ValueError(f"{where} detail {number}: unit {unit!r} is not a whole number")
        management_id = (detail.findtext("itemManagementId") or "").strip()
        variation = (management_id,) if management_id else ()
        lines.append(
            OrderLine(
                line_no=number,
                item_id=item_id,
                variation=variation,
                sku=join_sku(item_id, variation),
                quantity=int(unit),
                name=detail.findtext("itemName") or "",
            )
        )
        if (detail.findtext("itemCancelStatus") or "").strip() == _LINE_CANCELLED:
            cancelled.append(number)
    if not lines:
        raise ValueError(f"{where}: no <detail>")
    status = _status(info.findtext("orderStatus") or "", cancelled, len(lines))
    if status == "cancelled":
        cancelled = [line.line_no for line in lines]
    return MallOrder(
        order_no=order_no,
        ordered_at=ordered_at.isoformat(),
        status=status,
        lines=tuple(lines),
        cancelled_lines=tuple(cancelled),
    )


def _status(order_status: str, cancelled: list[int], line_count: int) -> MallOrderState:
    if order_status == _STATUS_CANCELLED or len(cancelled) == line_count:
        return "cancelled"
    if cancelled:
        return "partially_cancelled"
    if order_status == _STATUS_UNPAID:
        return "unpaid"
    if order_status == _STATUS_PENDING:
        return "pending"
    return "new"


_ORDER_STATUS_LABELS: dict[MallOrderState, str] = {
    "new": _STATUS_NEW,
    "pending": _STATUS_PENDING,
    "unpaid": _STATUS_UNPAID,
    "cancelled": _STATUS_CANCELLED,
    "partially_cancelled": _STATUS_NEW,
}


def render_orders_response(orders: Sequence[MallOrder]) -> bytes:
    """The searchTradeInfoListProc answer for ``orders`` (simulator side)."""
    root, _ = wowma.response_root("0")
    ET.SubElement(root, "resultCount").text = str(len(orders))
    for order in orders:
        info = ET.SubElement(root, "orderInfo")
        ET.SubElement(info, "orderId").text = order.order_no
        ordered_at = _mail.format_ja_datetime(order.ordered_at, _ORDER_DATE_FORMAT)
        ET.SubElement(info, "orderDate").text = ordered_at
        ET.SubElement(info, "orderStatus").text = _ORDER_STATUS_LABELS[order.status]
        for line in order.lines:
            detail = ET.SubElement(info, "detail")
            ET.SubElement(detail, "orderDetailId").text = str(line.line_no)
            ET.SubElement(detail, "itemCode").text = line.item_id
            ET.SubElement(detail, "itemManagementId").text = join_sku("", line.variation)
            ET.SubElement(detail, "itemName").text = line.name
            ET.SubElement(detail, "unit").text = str(line.quantity)
            line_cancelled = order.status == "partially_cancelled" and (
                line.line_no in order.cancelled_lines
            )
            ET.SubElement(detail, "itemCancelStatus").text = "1" if line_cancelled else "0"
    return wowma.xml_bytes(root)
