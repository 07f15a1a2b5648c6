"""Wowma!(Wow! manager) (wowma_manager): orders from searchTradeInfoListProc (by order date,
page after page of startCount/totalCount) and stock through ``wowma``'s updateStock API. An
order line's variation is ``(itemManagementId,)``, so its SKU is itemCode + 管理ID, the stock
rule's itemCode + H + V when the 管理ID is the choice's H + V codes.

Unverified: endpoint and element names follow public third-party code; status values, itemCancelStatus "1" and the H+V 管理ID rule are zaiko's choice.
Paging is not public: zaiko reads resultCount as the number of orders the whole search holds (public clients disagree) and stops at an empty page too.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from functools import partial

from protocols.malls import _api, _mail, wowma
from protocols.malls.base import (
    ApiAccount,
    Capability,
    HttpRequest,
    MallApiError,
    MallOrder,
    MallOrderState,
    OrderLine,
    OrderPoll,
)

ORDERS_PATH = "/wmshopapi/searchTradeInfoListProc"
ORDER_SEARCH_DATE: _api.OrderSearchDate = "ordered"
ORDERS_PER_PAGE = 1000  # totalCount: at most 1,000 orders a page
# Days per search (startDate to endDate, both included): zaiko's choice, the limit is not public.
SEARCH_DAYS = 30
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
_DATE_TYPE_ORDERED = "0"  # dateType 0 = 受注日
_DATE_FORMAT = "%Y%m%d"
_ORDER_DATE_FORMAT = "%Y/%m/%d %H:%M"


def start_order_poll(account: ApiAccount, since: datetime, until: datetime) -> OrderPoll:
    """searchTradeInfoListProc by order date over the Japan days of ``[since, until)``, at
    most 30 days a search, every page; orders outside the window (the search takes whole
    days) are left out. No search by last change: a cancellation is seen by a poll whose
    window holds the order's date."""
    return _OrdersPoll(account, since, until)


class _OrdersPoll(_api.ApiOrderPoll):
    def __init__(self, account: ApiAccount, since: datetime, until: datetime) -> None:
        _api.check_window(since, until)
        self._shop_id = account.seller_id
        self._headers = (
            ("Authorization", f"Bearer {account.secret}"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        )
        self._since, self._until = since, until
        self._ranges = _api.japan_day_ranges(since, until, SEARCH_DAYS)
        self._start_count = 1
        self._taken: dict[str, MallOrder] = {}
        super().__init__(self._search() if self._ranges else None)

    def _search(self) -> HttpRequest:
        first, last = self._ranges[0]
        return HttpRequest(
            method="GET",
            path=ORDERS_PATH,
            query=(
                ("shopId", self._shop_id),
                ("totalCount", str(ORDERS_PER_PAGE)),
                ("startCount", str(self._start_count)),
                ("dateType", _DATE_TYPE_ORDERED),
                ("startDate", first.strftime(_DATE_FORMAT)),
                ("endDate", last.strftime(_DATE_FORMAT)),
            ),
            headers=self._headers,
        )

    def _error_text(self, body: bytes) -> str:
        return _error_text(body)

    def _answer(self, body: bytes) -> HttpRequest | None:
        try:
            root = ET.fromstring(body)
        except ET.ParseError as exc:
            raise MallApiError(f"unreadable searchTradeInfoListProc answer: {exc}") from None
        if (root.findtext("result/status") or "").strip() != "0":
            raise MallApiError(f"searchTradeInfoListProc: {_error_text(body)}")
        infos = root.findall("orderInfo")
        for info in infos:
            order = self._readable(partial(_mall_order, info))
            if order is not None:
                self._taken.setdefault(order.order_no, order)
        count = (root.findtext("resultCount") or "").strip()
        self._start_count += len(infos)
        if count.isdigit():
            more = bool(infos) and self._start_count <= int(count)
        else:
            more = len(infos) >= ORDERS_PER_PAGE
        if more:
            return self._search()
        self._ranges.pop(0)
        self._start_count = 1
        if self._ranges:
            return self._search()
        self._finish(
            [
                order
                for order in self._taken.values()
                if _api.in_window(
                    datetime.fromisoformat(order.ordered_at), self._since, self._until
                )
            ]
        )
        return None


def _error_text(body: bytes) -> str:
    """``<result><error><code/><message/></error></result>`` as "code message"."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return body.decode("utf-8", "replace")
    code = (root.findtext("result/error/code") or "").strip()
    message = (root.findtext("result/error/message") or "").strip() or "no error message"
    return " ".join(part for part in (code, message) if part)


def _required(element: ET.Element, tag: str, where: str) -> str:
    value = (element.findtext(tag) or "").strip()
    if not value:
        raise MallApiError(f"{where}: no <{tag}>")
    return value


def _mall_order(info: ET.Element) -> MallOrder:
    """One ``<orderInfo>`` → MallOrder. Lines are numbered by orderDetailId (document order
    when an id is missing), so the same order read again numbers them the same way."""
    order_no = _required(info, "orderId", "orderInfo")
    where = f"order {order_no}"
    order_date = _required(info, "orderDate", where)
    try:
        ordered_at = datetime.strptime(order_date, _ORDER_DATE_FORMAT).replace(tzinfo=_mail.JST)
    except ValueError:
        raise MallApiError(f"{where}: orderDate {order_date!r} is not YYYY/MM/DD HH:MM") from None
    details = info.findall("detail")
    if not details:
        raise MallApiError(f"{where}: no <detail>")
    detail_ids = [(detail.findtext("orderDetailId") or "").strip() for detail in details]
    if all(detail_ids):
        details = [
            detail for _, detail in sorted(zip(detail_ids, details, strict=True), key=_by_id)
        ]
    lines: list[OrderLine] = []
    cancelled: list[int] = []
    for number, detail in enumerate(details, start=1):
        item_id = _required(detail, "itemCode", f"{where} detail {number}")
        unit = _required(detail, "unit", f"{where} detail {number}")
        if not (unit.isascii() and unit.isdigit()):
            raise MallApiError(f"{where} detail {number}: unit {unit!r} is not a whole number")
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


def _by_id(pair: tuple[str, ET.Element]) -> tuple[int, str]:
    return _api.rank_key(pair[0])


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


# --- orders, simulator side ------------------------------------------------------------------

_ORDER_STATUS_LABELS: dict[MallOrderState, str] = {
    "new": _STATUS_NEW,
    "pending": _STATUS_PENDING,
    "unpaid": _STATUS_UNPAID,
    "cancelled": _STATUS_CANCELLED,
    "partially_cancelled": _STATUS_NEW,
}


def read_order_call(request: HttpRequest) -> _api.OrderCall:
    """What a searchTradeInfoListProc request asks for (simulator side): whole Japan days."""
    _api.check_route(request, "GET", ORDERS_PATH)
    query = dict(request.query)
    if query.get("dateType", _DATE_TYPE_ORDERED) != _DATE_TYPE_ORDERED:
        raise ValueError(f"dateType {query['dateType']!r}: the simulator searches by order date")
    since, until = _api.read_japan_days(query, "startDate", "endDate", _DATE_FORMAT, SEARCH_DAYS)
    page_size, start_count = query.get("totalCount", "100"), query.get("startCount", "1")
    if not (page_size.isdigit() and 1 <= int(page_size) <= ORDERS_PER_PAGE):
        raise ValueError(f"totalCount {page_size!r} is not 1–{ORDERS_PER_PAGE}")
    if not (start_count.isdigit() and int(start_count) >= 1):
        raise ValueError(f"startCount {start_count!r} is not 1 or more")
    return _api.OrderSearch(
        since=since,
        until=until,
        by=ORDER_SEARCH_DATE,
        limit=int(page_size),
        offset=int(start_count) - 1,
    )


def render_order_answer(call: _api.OrderCall, answer: _api.OrderAnswer) -> bytes:
    """The searchTradeInfoListProc answer: ``resultCount`` (every order the search holds)
    and this page's ``<orderInfo>`` elements (simulator side)."""
    if not isinstance(call, _api.OrderSearch):
        raise ValueError("Wow! manager answers order searches only")
    root, _ = wowma.response_root("0")
    ET.SubElement(root, "resultCount").text = str(answer.total)
    for served in answer.orders:
        order = served.order
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
