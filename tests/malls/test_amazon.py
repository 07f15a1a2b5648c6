from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import msgspec
import pytest

from protocols.malls import amazon
from protocols.malls.base import (
    ApiAccount,
    HttpRequest,
    MallOrder,
    MallOrderState,
    OrderLine,
    StockUpdate,
)

ACCOUNT = ApiAccount(
    base_url="https://sellingpartnerapi-fe.amazon.com", secret="Atza|token", seller_id="A2SELLER"
)


def test_one_patch_per_sku_round_trips() -> None:
    updates = [
        StockUpdate("000123", (), 5),
        StockUpdate("㈱髙①～/x y", (), 0),
        StockUpdate("B", (), 99999),
    ]
    requests = amazon.build_stock_requests(updates, ACCOUNT)
    assert len(requests) == 3
    first = requests[0]
    assert (first.method, first.path) == ("PATCH", "/listings/2021-08-01/items/A2SELLER/000123")
    assert first.query == (("marketplaceIds", "A1VC38T7YXB528"),)
    assert ("x-amz-access-token", "Atza|token") in first.headers
    assert msgspec.json.decode(first.body) == {
        "productType": "PRODUCT",
        "patches": [
            {
                "op": "replace",
                "path": "/attributes/fulfillment_availability",
                "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 5}],
            }
        ],
    }
    assert requests[1].path == "/listings/2021-08-01/items/A2SELLER/" + quote(
        "㈱髙①～/x y", safe=""
    )
    assert [u for r in requests for u in amazon.parse_stock_request(r)] == updates


def test_stock_request_validation() -> None:
    with pytest.raises(ValueError, match="seller_id"):
        amazon.build_stock_requests([StockUpdate("A", (), 1)], ApiAccount(base_url="x", secret="t"))
    with pytest.raises(ValueError, match="negative"):
        amazon.build_stock_requests([StockUpdate("A", (), -2)], ACCOUNT)
    request = amazon.build_stock_requests([StockUpdate("A", (), 1)], ACCOUNT)[0]
    with pytest.raises(ValueError, match="marketplaceIds"):
        amazon.parse_stock_request(msgspec.structs.replace(request, query=()))
    with pytest.raises(ValueError, match="expected PATCH"):
        amazon.parse_stock_request(HttpRequest(method="PUT", path=request.path))


def test_stock_responses() -> None:
    ok = amazon.render_stock_response([StockUpdate("000123", (), 5)])
    assert msgspec.json.decode(ok)["status"] == "ACCEPTED"
    amazon.parse_stock_response(200, ok)
    with pytest.raises(ValueError, match="HTTP 429: QuotaExceeded: You exceeded your quota"):
        amazon.parse_stock_response(429, amazon.render_error(429, "You exceeded your quota"))
    invalid = b'{"sku":"000123","status":"INVALID","issues":[{"code":"90220","message":"quantity is required","severity":"ERROR"}]}'
    with pytest.raises(ValueError, match="000123 INVALID: 90220: quantity is required"):
        amazon.parse_stock_response(200, invalid)


def test_orders_request() -> None:
    since = datetime(2024, 1, 2, 9, 0, tzinfo=timezone(timedelta(hours=9)))
    request = amazon.build_orders_request(ACCOUNT, since)
    assert (request.method, request.path) == ("GET", "/orders/v0/orders")
    assert ("LastUpdatedAfter", "2024-01-02T00:00:00Z") in request.query
    assert ("MarketplaceIds", "A1VC38T7YXB528") in request.query
    assert amazon.parse_orders_request(request) == since
    with pytest.raises(ValueError, match="no time zone"):
        amazon.build_orders_request(ACCOUNT, datetime(2024, 1, 2))


def _order(number: str, status: MallOrderState) -> MallOrder:
    return MallOrder(
        order_no=number,
        ordered_at="2024-01-02T01:02:03+00:00",
        status=status,
        lines=(
            OrderLine(line_no=1, item_id="000123", sku="000123", quantity=2, name="㈱髙①～"),
            OrderLine(line_no=2, item_id="B-1", sku="B-1", quantity=1, name="B"),
        ),
    )


def test_orders_round_trip_with_each_status() -> None:
    orders = [
        _order("250-0000001-0000001", "pending"),
        _order("250-0000002-0000002", "new"),
        _order("250-0000003-0000003", "cancelled"),
    ]
    body = amazon.render_orders_response(orders)
    assert [o["OrderStatus"] for o in msgspec.json.decode(body)["payload"]["Orders"]] == [
        "Pending",
        "Unshipped",
        "Canceled",
    ]
    assert amazon.parse_orders_response(body) == orders


def test_orders_response_from_amazon_shape() -> None:
    body = b"""{"payload": {"NextToken": null, "Orders": [
      {"AmazonOrderId": "503-1", "PurchaseDate": "2024-03-04T05:06:07Z", "OrderStatus": "Shipped",
       "OrderItems": [{"OrderItemId": "10", "SellerSKU": "000777", "ASIN": "B0X", "QuantityOrdered": 1},
                      {"OrderItemId": "9", "SellerSKU": "000778", "QuantityOrdered": 3, "Title": "t"}]}]}}"""
    (order,) = amazon.parse_orders_response(body)
    assert order.status == "new"
    assert datetime.fromisoformat(order.ordered_at) == datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert [(line.line_no, line.sku, line.quantity) for line in order.lines] == [
        (1, "000778", 3),
        (2, "000777", 1),
    ]


def test_orders_errors() -> None:
    with pytest.raises(ValueError, match="Unauthorized: Access to requested resource is denied"):
        amazon.parse_orders_response(
            amazon.render_error(403, "Access to requested resource is denied")
        )
    unknown = b'{"payload": {"Orders": [{"AmazonOrderId": "1", "PurchaseDate": "2024-01-01T00:00:00Z", "OrderStatus": "Unfulfillable", "OrderItems": []}]}}'
    with pytest.raises(ValueError, match="unknown OrderStatus 'Unfulfillable'"):
        amazon.parse_orders_response(unknown)
    with pytest.raises(ValueError, match="no partially_cancelled state"):
        amazon.render_orders_response([_order("1", "partially_cancelled")])
