from __future__ import annotations

from datetime import datetime

import pytest

from protocols.malls import wowma, wowma_manager
from protocols.malls.base import ApiAccount, MallOrder, OrderLine, StockUpdate

ACCOUNT = ApiAccount(base_url="https://api.manager.wowma.jp", secret="key", seller_id="64197720")

ORDERS = [
    MallOrder(
        order_no="100000001",
        ordered_at="2026-06-12T10:31:00+09:00",
        lines=(
            OrderLine(line_no=1, item_id="000123", sku="000123", quantity=2, name="①㈱髙～"),
            OrderLine(line_no=2, item_id="shirt", variation=("redM",), sku="shirtredM", quantity=1),
        ),
    ),
    MallOrder(
        order_no="100000002",
        ordered_at="2026-06-12T11:00:00+09:00",
        status="unpaid",
        lines=(OrderLine(line_no=1, item_id="a", sku="a", quantity=1),),
    ),
    MallOrder(
        order_no="100000003",
        ordered_at="2026-06-12T11:05:00+09:00",
        status="pending",
        lines=(OrderLine(line_no=1, item_id="a", sku="a", quantity=1),),
    ),
    MallOrder(
        order_no="100000004",
        ordered_at="2026-06-12T12:00:00+09:00",
        status="partially_cancelled",
        lines=(
            OrderLine(line_no=1, item_id="a", sku="a", quantity=1),
            OrderLine(line_no=2, item_id="b", sku="b", quantity=4),
        ),
        cancelled_lines=(2,),
    ),
    MallOrder(
        order_no="100000005",
        ordered_at="2026-06-12T13:00:00+09:00",
        status="cancelled",
        lines=(OrderLine(line_no=1, item_id="a", sku="a", quantity=1),),
        cancelled_lines=(1,),
    ),
]


def test_orders_round_trip_with_every_status() -> None:
    body = wowma_manager.render_orders_response(ORDERS)
    assert wowma_manager.parse_orders_response(body) == ORDERS


def test_choice_line_sku_matches_the_stock_rule() -> None:
    order = MallOrder(
        order_no="1",
        ordered_at="2026-06-12T10:31:00+09:00",
        lines=(
            OrderLine(
                line_no=1, item_id="shirt", variation=("red", "-"), sku="shirtred", quantity=1
            ),
        ),
    )
    (parsed,) = wowma_manager.parse_orders_response(wowma_manager.render_orders_response([order]))
    assert parsed.lines[0].sku == wowma.join_sku("shirt", ("red", "-")) == "shirtred"


def test_orders_request_asks_for_order_dates_from_since() -> None:
    since = datetime.fromisoformat("2026-06-11T23:30:00+00:00")  # 08:30 on the 12th in Japan
    request = wowma_manager.build_orders_request(ACCOUNT, since)
    assert (request.method, request.path) == ("GET", "/wmshopapi/searchTradeInfoListProc")
    query = dict(request.query)
    assert query["shopId"] == "64197720"
    assert (query["startDate"], query["endDate"], query["dateType"]) == (
        "20260612",
        "20260712",
        "0",
    )
    assert dict(request.headers)["Authorization"] == "Bearer key"
    assert wowma_manager.parse_orders_request(request).isoformat() == "2026-06-12T00:00:00+09:00"


def test_error_response_raises_with_the_mall_message() -> None:
    body = wowma_manager.render_error(401, "認証に失敗しました", "PME0001")
    with pytest.raises(ValueError, match="PME0001 認証に失敗しました"):
        wowma_manager.parse_orders_response(body)


def test_order_without_details_is_refused() -> None:
    body = (
        b"<response><result><status>0</status></result><orderInfo><orderId>9</orderId>"
        b"<orderDate>2026/06/12 10:00</orderDate></orderInfo></response>"
    )
    with pytest.raises(ValueError, match="order 9: no <detail>"):
        wowma_manager.parse_orders_response(body)


def test_stock_goes_through_the_wowma_api() -> None:
    updates = [StockUpdate("shirt", ("red", "M"), 3), StockUpdate("000123", (), 0)]
    requests = wowma_manager.build_stock_requests(updates, ACCOUNT)
    assert [u for r in requests for u in wowma_manager.parse_stock_request(r)] == updates
    assert wowma_manager.CAPABILITY.stock_out == ("api",)
