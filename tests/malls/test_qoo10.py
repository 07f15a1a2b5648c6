from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl

import msgspec
import pytest

from protocols.malls import qoo10
from protocols.malls._api import OrderSearch
from protocols.malls.base import (
    ApiAccount,
    HttpRequest,
    MallApiError,
    MallOrder,
    MallOrderState,
    OrderLine,
    StockUpdate,
)
from tests.malls.order_api import FakeMall, run_poll, served

ACCOUNT = ApiAccount(base_url="https://api.qoo10.jp", secret="qkey")
JST = timezone(timedelta(hours=9))


def form(request: HttpRequest) -> dict[str, str]:
    return dict(parse_qsl(request.body.decode(), keep_blank_values=True))


def test_stock_calls_per_item_round_trip() -> None:
    updates = [
        StockUpdate("000123", (), 5),
        StockUpdate("TEE", ("RED-M",), 2),
        StockUpdate("TEE", ("㈱髙①～",), 0),
        StockUpdate("CAP", ("F",), 9),
    ]
    requests = qoo10.build_stock_requests(updates, ACCOUNT)
    assert [form(r)["method"] for r in requests] == [
        "ItemsOrder.SetGoodsPriceQty",
        "ItemsOptions.EditGoodsInventory",
        "ItemsOptions.EditGoodsInventory",
    ]
    assert all(
        r.path == "/GMKT.INC.Front.QAPIService/ebayjapan.qapi" and form(r)["key"] == "qkey"
        for r in requests
    )
    assert form(requests[0])["SellerCode"] == "000123" and form(requests[0])["Qty"] == "5"
    assert form(requests[1])["InventoryInfo"] == "||*||*||*2||*RED-M$$||*||*||*0||*㈱髙①～"
    parsed = [u for r in requests for u in qoo10.parse_stock_request(r)]
    assert parsed == updates


def test_stock_call_validation() -> None:
    with pytest.raises(ValueError, match="separator"):
        qoo10.build_stock_requests([StockUpdate("A", ("x$$y",), 1)], ACCOUNT)
    request = qoo10.build_stock_requests([StockUpdate("A", (), 1)], ACCOUNT)[0]
    with pytest.raises(ValueError, match="Qty '-1'"):
        qoo10.parse_stock_request(
            msgspec.structs.replace(request, body=request.body.replace(b"Qty=1", b"Qty=-1"))
        )
    with pytest.raises(ValueError, match="missing key"):
        qoo10.parse_stock_request(
            msgspec.structs.replace(request, body=request.body.replace(b"key=qkey", b"key="))
        )


def test_stock_responses() -> None:
    qoo10.parse_stock_response(200, qoo10.render_stock_response([]))
    with pytest.raises(ValueError, match="ResultCode -400: 該当商品がありません"):
        qoo10.parse_stock_response(200, qoo10.render_error(400, "該当商品がありません"))
    with pytest.raises(ValueError, match="HTTP 503"):
        qoo10.parse_stock_response(503, b"")


# --- orders: ShippingBasic.GetShippingInfo_v2 ------------------------------------------------

SINCE = datetime(2024, 1, 2, 10, 0, tzinfo=JST)
UNTIL = datetime(2024, 1, 3, tzinfo=JST)

LINES = (
    OrderLine(line_no=1, item_id="000123", sku="000123", quantity=2, name="㈱髙①～"),
    OrderLine(
        line_no=2, item_id="TEE", variation=("RED-M",), sku="TEERED-M", quantity=1, name="Tシャツ"
    ),
)


def test_orders_call_by_order_date_page_after_page() -> None:
    held = [
        served(
            MallOrder(order_no=f"90000{n}", ordered_at=f"2024-01-02T1{n}:00:00+09:00", lines=LINES)
        )
        for n in range(5)
    ]
    poll = qoo10.start_order_poll(ACCOUNT, SINCE, UNTIL)
    mall = FakeMall(qoo10, held, page_size=2)
    run_poll(poll, mall)
    forms = [form(r) for r in mall.requests]
    assert {f["method"] for f in forms} == {"ShippingBasic.GetShippingInfo_v2"}
    assert (forms[0]["search_condition"], forms[0]["search_Sdate"], forms[0]["search_Edate"]) == (
        "1",
        "20240102",
        "20240102",
    )
    assert forms[0]["key"] == "qkey"
    # pages of two carts until one brings no new row
    assert [f["Page"] for f in forms] == ["1", "2", "3", "4"]
    assert [o.order_no for o in poll.orders] == ["900000", "900001", "900002", "900003", "900004"]
    assert poll.orders[0].lines == LINES


def test_a_long_window_is_searched_90_days_at_a_time() -> None:
    poll = qoo10.start_order_poll(ACCOUNT, SINCE, SINCE + timedelta(days=100))
    mall = FakeMall(qoo10, [])
    run_poll(poll, mall)
    assert [(form(r)["search_Sdate"], form(r)["search_Edate"]) for r in mall.requests] == [
        ("20240102", "20240331"),
        ("20240401", "20240411"),
    ]


@pytest.mark.parametrize(
    ("status", "cancelled_lines", "row_states"),
    [
        ("unpaid", (), ["入金待ち", "入金待ち"]),
        ("new", (), ["配送要請", "配送要請"]),
        ("cancelled", (), ["キャンセル", "キャンセル"]),
        ("partially_cancelled", (2,), ["配送要請", "キャンセル"]),
    ],
)
def test_each_state_round_trips(
    status: MallOrderState, cancelled_lines: tuple[int, ...], row_states: list[str]
) -> None:
    order = MallOrder(
        order_no="900001",
        ordered_at="2024-01-02T10:11:12+09:00",
        status=status,
        lines=LINES,
        cancelled_lines=cancelled_lines,
    )
    poll = qoo10.start_order_poll(ACCOUNT, SINCE, UNTIL)
    mall = FakeMall(qoo10, [served(order)])
    run_poll(poll, mall)
    first_page = msgspec.json.decode(mall.answer(mall.requests[0])[2])["ResultObject"]
    assert [row["shippingStatus"] for row in first_page] == row_states
    assert poll.orders == [order]


def shipping_info(rows: list[dict[str, object]]) -> bytes:
    return msgspec.json.encode({"ResultCode": 0, "ResultMsg": "SUCCESS", "ResultObject": rows})


def test_rows_group_by_cart_with_line_numbers_by_orderno() -> None:
    rows = [
        {
            "packNo": "77",
            "orderNo": "1002",
            "orderDate": "2024-02-03 04:05:06",
            "shippingStatus": "配送要請",
            "sellerItemCode": "B",
            "orderQty": 1,
        },
        {
            "packNo": "88",
            "orderNo": "2001",
            "orderDate": "2024-02-03 05:00:00",
            "shippingStatus": "入金待ち",
            "sellerItemCode": "000123",
            "optionCode": "01",
            "orderQty": 4,
        },
        {
            "packNo": "77",
            "orderNo": "999",
            "orderDate": "2024-02-03 04:05:06",
            "shippingStatus": "キャンセル",
            "sellerItemCode": "A",
            "orderQty": 2,
        },
        {  # the same day, before the window: the poll leaves it out
            "packNo": "66",
            "orderNo": "500",
            "orderDate": "2024-02-03 00:59:59",
            "shippingStatus": "配送要請",
            "sellerItemCode": "A",
            "orderQty": 1,
        },
    ]
    since = datetime(2024, 2, 3, 1, 0, tzinfo=JST)
    poll = qoo10.start_order_poll(ACCOUNT, since, since + timedelta(hours=12))
    poll.feed(200, {}, shipping_info(rows))
    poll.feed(200, {}, shipping_info(rows))  # a QAPI that ignores Page: nothing new, done
    assert poll.next_request() is None
    first, second = poll.orders
    assert (first.order_no, first.status, first.cancelled_lines) == (
        "77",
        "partially_cancelled",
        (1,),
    )
    assert [line.item_id for line in first.lines] == ["A", "B"]
    assert second.status == "unpaid" and second.lines[0].sku == "00012301"
    assert second.ordered_at == "2024-02-03T05:00:00+09:00"


def test_order_errors() -> None:
    poll = qoo10.start_order_poll(ACCOUNT, SINCE, UNTIL)
    with pytest.raises(MallApiError, match="ResultCode -401: 認証キーが無効です"):
        poll.feed(200, {}, qoo10.render_error(401, "認証キーが無効です"))
    poll = qoo10.start_order_poll(ACCOUNT, SINCE, UNTIL)
    with pytest.raises(MallApiError, match=r"^HTTP 500: Qoo10 ResultCode -500: down$"):
        poll.feed(500, {}, qoo10.render_error(500, "down"))
    row = {
        "packNo": "1",
        "orderNo": "1",
        "orderDate": "2024-01-02 14:05:06",
        "shippingStatus": "返品",
        "sellerItemCode": "A",
        "orderQty": 1,
    }
    poll = qoo10.start_order_poll(ACCOUNT, SINCE, UNTIL)
    poll.feed(200, {}, shipping_info([row]))
    poll.feed(200, {}, b'{"ResultCode": 0, "ResultMsg": "SUCCESS", "ResultObject": null}')
    assert poll.next_request() is None  # one order that does not read never fails the poll
    assert poll.orders == [] and poll.unreadable == ["order 1: unknown shippingStatus '返品'"]


def test_simulator_reads_whole_days_and_pages() -> None:
    request = qoo10.start_order_poll(ACCOUNT, SINCE, UNTIL).next_request()
    assert request is not None
    assert qoo10.read_order_call(request) == OrderSearch(
        since=datetime(2024, 1, 2, tzinfo=JST), until=UNTIL, by="ordered", limit=200, page=1
    )
    stock = qoo10.build_stock_requests([StockUpdate("A", (), 1)], ACCOUNT)[0]
    with pytest.raises(ValueError, match="not an order call"):
        qoo10.read_order_call(stock)
    with pytest.raises(ValueError, match="search_condition"):
        qoo10.read_order_call(
            msgspec.structs.replace(
                request, body=request.body.replace(b"search_condition=1", b"search_condition=2")
            )
        )
