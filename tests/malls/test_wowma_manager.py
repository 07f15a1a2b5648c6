from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from protocols.malls import wowma, wowma_manager
from protocols.malls._api import OrderAnswer, OrderSearch
from protocols.malls.base import ApiAccount, MallApiError, MallOrder, OrderLine, StockUpdate
from tests.malls.order_api import JST, FakeMall, run_poll, served

ACCOUNT = ApiAccount(base_url="https://api.manager.wowma.jp", secret="key", seller_id="64197720")
SINCE = datetime(2026, 6, 12, 8, 30, tzinfo=JST)
UNTIL = datetime(2026, 6, 13, tzinfo=JST)

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
# Ordered on the same Japan day, but before the window: the search brings it, the poll drops it.
EARLY = MallOrder(
    order_no="100000000",
    ordered_at="2026-06-12T08:29:00+09:00",
    lines=(OrderLine(line_no=1, item_id="a", sku="a", quantity=1),),
)


def test_every_page_and_every_state() -> None:
    poll = wowma_manager.start_order_poll(ACCOUNT, SINCE, UNTIL)
    mall = FakeMall(wowma_manager, [served(o) for o in [EARLY, *ORDERS]])
    run_poll(poll, mall)
    assert poll.orders == ORDERS
    queries = [dict(r.query) for r in mall.requests]
    assert [q["startCount"] for q in queries] == ["1", "3", "5"]  # resultCount 6: three pages
    first = queries[0]
    assert first["shopId"] == "64197720"
    assert (first["startDate"], first["endDate"], first["dateType"], first["totalCount"]) == (
        "20260612",
        "20260612",
        "0",
        "1000",
    )
    assert dict(mall.requests[0].headers)["Authorization"] == "Bearer key"


def test_a_long_window_is_searched_30_days_at_a_time() -> None:
    poll = wowma_manager.start_order_poll(ACCOUNT, SINCE, SINCE + timedelta(days=45))
    mall = FakeMall(wowma_manager, [])
    run_poll(poll, mall)
    assert [(dict(r.query)["startDate"], dict(r.query)["endDate"]) for r in mall.requests] == [
        ("20260612", "20260711"),
        ("20260712", "20260727"),
    ]


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
    poll = wowma_manager.start_order_poll(ACCOUNT, SINCE, UNTIL)
    run_poll(poll, FakeMall(wowma_manager, [served(order)]))
    (parsed,) = poll.orders
    assert parsed.lines[0].sku == wowma.join_sku("shirt", ("red", "-")) == "shirtred"


ANSWER = """<?xml version="1.0" encoding="UTF-8"?><response><result><status>0</status></result>
<resultCount>1</resultCount><orderInfo><orderId>9</orderId><orderDate>2026/06/12 10:00</orderDate>
<orderStatus>新規受付</orderStatus>
<detail><orderDetailId>12</orderDetailId><itemCode>b</itemCode><unit>1</unit></detail>
<detail><orderDetailId>3</orderDetailId><itemCode>a</itemCode><unit>2</unit>
<itemCancelStatus>1</itemCancelStatus></detail>
</orderInfo></response>""".encode()


def test_lines_follow_orderdetailid() -> None:
    poll = wowma_manager.start_order_poll(ACCOUNT, SINCE, UNTIL)
    poll.feed(200, {}, ANSWER)
    assert poll.next_request() is None
    (order,) = poll.orders
    assert [(ln.line_no, ln.item_id, ln.quantity) for ln in order.lines] == [
        (1, "a", 2),
        (2, "b", 1),
    ]
    assert (order.status, order.cancelled_lines) == ("partially_cancelled", (1,))


def test_errors_in_the_mall_shape() -> None:
    poll = wowma_manager.start_order_poll(ACCOUNT, SINCE, UNTIL)
    with pytest.raises(MallApiError, match=r"^HTTP 401: PME0001 認証に失敗しました$"):
        poll.feed(401, {}, wowma_manager.render_error(401, "認証に失敗しました", "PME0001"))
    poll = wowma_manager.start_order_poll(ACCOUNT, SINCE, UNTIL)
    with pytest.raises(MallApiError, match="searchTradeInfoListProc: PME0100 検索条件が不正です"):
        poll.feed(200, {}, wowma_manager.render_error(400, "検索条件が不正です", "PME0100"))
    poll = wowma_manager.start_order_poll(ACCOUNT, SINCE, UNTIL)
    no_details = (
        b"<response><result><status>0</status></result><orderInfo><orderId>9</orderId>"
        b"<orderDate>2026/06/12 10:00</orderDate></orderInfo></response>"
    )
    poll.feed(200, {}, no_details)
    assert poll.next_request() is None and poll.orders == []
    assert poll.unreadable == ["order 9: no <detail>"]


def test_simulator_reads_whole_days() -> None:
    request = wowma_manager.start_order_poll(ACCOUNT, SINCE, UNTIL).next_request()
    assert request is not None
    assert wowma_manager.read_order_call(request) == OrderSearch(
        since=datetime(2026, 6, 12, tzinfo=JST), until=UNTIL, by="ordered", limit=1000
    )
    with pytest.raises(ValueError, match="dateType"):
        wowma_manager.read_order_call(
            type(request)(method="GET", path=request.path, query=(("dateType", "1"),))
        )
    answer = wowma_manager.render_order_answer(
        wowma_manager.read_order_call(request),
        OrderAnswer(orders=(served(ORDERS[0]),), total=7, limit=1),
    )
    assert b"<resultCount>7</resultCount>" in answer


def test_stock_goes_through_the_wowma_api() -> None:
    updates = [StockUpdate("shirt", ("red", "M"), 3), StockUpdate("000123", (), 0)]
    requests = wowma_manager.build_stock_requests(updates, ACCOUNT)
    assert [u for r in requests for u in wowma_manager.parse_stock_request(r)] == updates
    assert wowma_manager.CAPABILITY.stock_out == ("api",)
