from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl

import msgspec
import pytest

from protocols.malls import qoo10
from protocols.malls.base import (
    ApiAccount,
    HttpRequest,
    MallOrder,
    MallOrderState,
    OrderLine,
    StockUpdate,
)

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


def test_orders_request() -> None:
    request = qoo10.build_orders_request(ACCOUNT, datetime(2024, 1, 1, 20, 0, tzinfo=UTC))
    assert form(request)["method"] == "ShippingBasic.GetShippingInfo_v2"
    assert form(request)["search_Sdate"] == "20240102"
    assert qoo10.parse_orders_request(request) == datetime(2024, 1, 2, tzinfo=JST)


LINES = (
    OrderLine(line_no=1, item_id="000123", sku="000123", quantity=2, name="㈱髙①～"),
    OrderLine(
        line_no=2, item_id="TEE", variation=("RED-M",), sku="TEERED-M", quantity=1, name="Tシャツ"
    ),
)


@pytest.mark.parametrize(
    ("status", "cancelled_lines", "row_states"),
    [
        ("unpaid", (), ["入金待ち", "入金待ち"]),
        ("new", (), ["配送要請", "配送要請"]),
        ("cancelled", (), ["キャンセル", "キャンセル"]),
        ("partially_cancelled", (2,), ["配送要請", "キャンセル"]),
    ],
)
def test_orders_round_trip_with_each_status(
    status: MallOrderState, cancelled_lines: tuple[int, ...], row_states: list[str]
) -> None:
    order = MallOrder(
        order_no="900001",
        ordered_at="2024-01-02T10:11:12+09:00",
        status=status,
        lines=LINES,
        cancelled_lines=cancelled_lines,
    )
    body = qoo10.render_orders_response([order])
    assert [
        row["shippingStatus"] for row in msgspec.json.decode(body)["ResultObject"]
    ] == row_states
    assert qoo10.parse_orders_response(body) == [order]


def test_rows_group_by_cart_with_stable_line_numbers() -> None:
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
    ]
    body = msgspec.json.encode({"ResultCode": 0, "ResultMsg": "SUCCESS", "ResultObject": rows})
    first, second = qoo10.parse_orders_response(body)
    assert (
        first.order_no == "77"
        and first.status == "partially_cancelled"
        and first.cancelled_lines == (1,)
    )
    assert [line.item_id for line in first.lines] == ["A", "B"]
    assert second.status == "unpaid" and second.lines[0].sku == "00012301"
    assert second.ordered_at == "2024-02-03T05:00:00+09:00"


def test_orders_errors() -> None:
    with pytest.raises(ValueError, match="ResultCode -401: 認証キーが無効です"):
        qoo10.parse_orders_response(qoo10.render_error(401, "認証キーが無効です"))
    row = {
        "packNo": "1",
        "orderNo": "1",
        "orderDate": "2024-02-03 04:05:06",
        "shippingStatus": "返品",
        "sellerItemCode": "A",
        "orderQty": 1,
    }
    with pytest.raises(ValueError, match="unknown shippingStatus '返品'"):
        qoo10.parse_orders_response(
            msgspec.json.encode({"ResultCode": 0, "ResultMsg": "", "ResultObject": [row]})
        )
    assert (
        qoo10.parse_orders_response(
            b'{"ResultCode": 0, "ResultMsg": "SUCCESS", "ResultObject": null}'
        )
        == []
    )
