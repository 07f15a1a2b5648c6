from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import msgspec
import pytest

from protocols.malls import amazon
from protocols.malls._api import ItemsFetch, OrderAnswer, OrderSearch, ServedOrder
from protocols.malls.base import (
    ApiAccount,
    HttpRequest,
    MallApiError,
    MallOrder,
    MallOrderState,
    OrderLine,
    RateLimited,
    StockUpdate,
)
from tests.malls.order_api import FakeMall, run_poll

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


# --- orders: getOrders, then getOrderItems ---------------------------------------------------

JST = timezone(timedelta(hours=9))
SINCE = datetime(2024, 1, 2, 9, 0, tzinfo=JST)
UNTIL = SINCE + timedelta(hours=6)


def page(orders: list[dict[str, object]], next_token: str | None = None) -> bytes:
    payload: dict[str, object] = {"Orders": orders}
    if next_token is not None:
        payload["NextToken"] = next_token
    return msgspec.json.encode({"payload": payload})


def items(order_id: str, rows: list[dict[str, object]], next_token: str | None = None) -> bytes:
    payload: dict[str, object] = {"AmazonOrderId": order_id, "OrderItems": rows}
    if next_token is not None:
        payload["NextToken"] = next_token
    return msgspec.json.encode({"payload": payload})


def amazon_order(
    order_id: str, status: str, marketplace: str = "A1VC38T7YXB528"
) -> dict[str, object]:
    return {
        "AmazonOrderId": order_id,
        "PurchaseDate": "2024-01-02T01:02:03Z",
        "LastUpdateDate": "2024-01-02T02:00:00Z",
        "OrderStatus": status,
        "MarketplaceId": marketplace,
        "SalesChannel": "Amazon.co.jp",
    }


def feed_all(poll, answers: list[bytes]) -> list[HttpRequest]:  # type: ignore[no-untyped-def]
    """Answer the poll's calls in turn with ``answers`` (200 each); return the calls."""
    sent = []
    for body in answers:
        request = poll.next_request()
        assert request is not None
        sent.append(request)
        poll.feed(200, {"content-type": "application/json"}, body)
    assert poll.next_request() is None
    return sent


def test_getorders_pages_then_each_orders_items_pages_in_amazon_shape() -> None:
    poll = amazon.start_order_poll(ACCOUNT, SINCE, UNTIL)
    sent = feed_all(
        poll,
        [
            page([amazon_order("503-1", "Unshipped"), amazon_order("503-2", "Pending")], "tok-2"),
            page(
                [
                    amazon_order("503-3", "Shipped", marketplace="A1F83G8C2ARO7P"),
                    amazon_order("503-4", "Canceled"),
                    amazon_order("503-5", "PartiallyShipped"),
                ]
            ),
            items(
                "503-1",
                [
                    {
                        "OrderItemId": "20",
                        "SellerSKU": "000777",
                        "ASIN": "B0X",
                        "QuantityOrdered": 1,
                    },
                    {
                        "OrderItemId": "9",
                        "SellerSKU": "000778",
                        "QuantityOrdered": 3,
                        "Title": "㈱髙①～",
                    },
                ],
                "items-2",
            ),
            items("503-1", [{"OrderItemId": "100", "SellerSKU": "000779", "QuantityOrdered": 2}]),
            items("503-2", [{"OrderItemId": "1", "SellerSKU": "A", "QuantityOrdered": 1}]),
            items("503-4", [{"OrderItemId": "1", "SellerSKU": "B", "QuantityOrdered": 4}]),
            items("503-5", [{"OrderItemId": "1", "ASIN": "B0NOSKU", "QuantityOrdered": 1}]),
        ],
    )
    first = sent[0]
    assert (first.method, first.path) == ("GET", "/orders/v0/orders")
    assert first.query == (
        ("MarketplaceIds", "A1VC38T7YXB528"),
        ("LastUpdatedAfter", "2024-01-02T00:00:00Z"),
        ("LastUpdatedBefore", "2024-01-02T06:00:00Z"),
        ("MaxResultsPerPage", "100"),
    )
    assert ("x-amz-access-token", "Atza|token") in first.headers
    assert sent[1].query == (("MarketplaceIds", "A1VC38T7YXB528"), ("NextToken", "tok-2"))
    assert [(r.path, r.query) for r in sent[2:]] == [
        ("/orders/v0/orders/503-1/orderItems", ()),
        ("/orders/v0/orders/503-1/orderItems", (("NextToken", "items-2"),)),
        ("/orders/v0/orders/503-2/orderItems", ()),
        ("/orders/v0/orders/503-4/orderItems", ()),
        ("/orders/v0/orders/503-5/orderItems", ()),
    ]
    assert poll.ignored == 1  # 503-3 was sold on Amazon.co.uk: no items asked for it
    assert [(o.order_no, o.status) for o in poll.orders] == [
        ("503-1", "new"),
        ("503-2", "pending"),
        ("503-4", "cancelled"),
        ("503-5", "new"),
    ]
    first_order = poll.orders[0]
    assert datetime.fromisoformat(first_order.ordered_at) == datetime(
        2024, 1, 2, 1, 2, 3, tzinfo=UTC
    )
    # by OrderItemId (9 < 20 < 100), across both item pages
    assert [(ln.line_no, ln.sku, ln.quantity, ln.name) for ln in first_order.lines] == [
        (1, "000778", 3, "㈱髙①～"),
        (2, "000777", 1, ""),
        (3, "000779", 2, ""),
    ]
    assert poll.orders[3].lines[0].item_id == "B0NOSKU"  # no SellerSKU: the ASIN keeps the line


def test_sandbox_epoch_dates_and_mcf_orders_do_not_break_the_poll() -> None:
    poll = amazon.start_order_poll(ACCOUNT, SINCE, UNTIL)
    sandbox = {"AmazonOrderId": "902-1", "PurchaseDate": "1505701063", "OrderStatus": "Unshipped"}
    feed_all(
        poll,
        [
            page([sandbox, amazon_order("902-2", "Unfulfillable")]),
            items("902-1", [{"OrderItemId": "1", "SellerSKU": "S", "QuantityOrdered": 1}]),
        ],
    )
    (taken,) = poll.orders
    assert taken.ordered_at == "2017-09-18T02:17:43+00:00"
    assert poll.ignored == 1  # Unfulfillable: a Multi-Channel Fulfillment order


def test_an_order_updated_at_until_is_left_to_the_next_window() -> None:
    poll = amazon.start_order_poll(ACCOUNT, SINCE, UNTIL)
    at_until = {**amazon_order("503-9", "Unshipped"), "LastUpdateDate": "2024-01-02T06:00:00Z"}
    feed_all(poll, [page([at_until])])
    assert poll.orders == [] and poll.ignored == 0


def test_amazon_error_shapes() -> None:
    poll = amazon.start_order_poll(ACCOUNT, SINCE, UNTIL)
    with pytest.raises(
        MallApiError, match=r"^HTTP 403: Unauthorized: Access to requested resource is denied$"
    ):
        poll.feed(403, {}, amazon.render_error(403, "Access to requested resource is denied"))
    poll = amazon.start_order_poll(ACCOUNT, SINCE, UNTIL)
    with pytest.raises(MallApiError, match="getOrders: InvalidInput: bad date"):
        poll.feed(200, {}, b'{"errors": [{"code": "InvalidInput", "message": "bad date"}]}')
    poll = amazon.start_order_poll(ACCOUNT, SINCE, UNTIL)
    poll.feed(200, {}, page([amazon_order("1", "Unshipped")]))
    with pytest.raises(MallApiError, match="getOrderItems for 1 answered for 2"):
        poll.feed(
            200, {}, items("2", [{"OrderItemId": "1", "SellerSKU": "S", "QuantityOrdered": 1}])
        )
    poll = amazon.start_order_poll(ACCOUNT, SINCE, UNTIL)
    poll.feed(200, {}, page([amazon_order("1", "Unshipped")], "again"))
    with pytest.raises(MallApiError, match="the same NextToken came back twice"):
        poll.feed(200, {}, page([], "again"))


def test_an_order_that_does_not_read_is_left_out_and_said_the_others_are_taken() -> None:
    poll = amazon.start_order_poll(ACCOUNT, SINCE, UNTIL)
    feed_all(
        poll,
        [
            page(
                [
                    amazon_order("1", "Lost"),
                    amazon_order("2", "Unshipped"),
                    amazon_order("3", "Shipped"),
                ]
            ),
            items("2", []),
            items("3", [{"OrderItemId": "1", "SellerSKU": "S", "QuantityOrdered": 2}]),
        ],
    )
    assert [order.order_no for order in poll.orders] == ["3"]
    assert poll.unreadable == [
        "order 1: unknown OrderStatus 'Lost'",
        "order 2: getOrderItems gave no items",
    ]


def test_rate_limited_reads_retry_after() -> None:
    poll = amazon.start_order_poll(ACCOUNT, SINCE, UNTIL)
    request = poll.next_request()
    with pytest.raises(RateLimited) as limited:
        poll.feed(429, {"retry-after": "2"}, amazon.render_error(429, "You exceeded your quota"))
    assert limited.value.retry_after == 2.0
    assert str(limited.value) == "HTTP 429: QuotaExceeded: You exceeded your quota"
    assert poll.next_request() == request
    with pytest.raises(RateLimited) as limited:
        poll.feed(429, {"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, b"")
    assert limited.value.retry_after is None  # an HTTP date needs a clock: the daemon's backoff
    assert poll.next_request() == request


def _served(number: str, status: MallOrderState, *, foreign: bool = False) -> ServedOrder:
    return ServedOrder(
        order=MallOrder(
            order_no=number,
            ordered_at="2024-01-02T10:02:03+09:00",
            status=status,
            lines=(
                OrderLine(line_no=1, item_id="000123", sku="000123", quantity=2, name="㈱髙①～"),
                OrderLine(line_no=2, item_id="B-1", sku="B-1", quantity=1, name="B"),
                OrderLine(line_no=3, item_id="TS/01 赤%", sku="TS/01 赤%", quantity=5),
            ),
        ),
        updated_at=datetime(2024, 1, 2, 11, 0, tzinfo=JST),
        foreign=foreign,
    )


def test_simulated_answers_follow_amazon_and_the_poll_reads_them() -> None:
    held = [
        _served("250-0000001-0000001", "pending"),
        _served("250-0000002-0000002", "new"),
        _served("250-0000003-0000003", "cancelled", foreign=True),
        _served("250-0000004-0000004", "cancelled"),
    ]
    poll = amazon.start_order_poll(ACCOUNT, SINCE, UNTIL)
    mall = FakeMall(amazon, held, page_size=3, items_page_size=2)
    run_poll(poll, mall)
    # 2 order pages; 3 orders × 2 item pages
    assert len(mall.requests) == 2 + 3 * 2
    rendered = msgspec.json.decode(mall.answer(mall.requests[0])[2])["payload"]["Orders"]
    assert "OrderItems" not in rendered[0]  # getOrders carries no items
    assert [o["OrderStatus"] for o in rendered] == ["Pending", "Unshipped", "Canceled"]
    assert rendered[2]["MarketplaceId"] == amazon.OTHER_MARKETPLACE
    assert [(o.order_no, o.status) for o in poll.orders] == [
        ("250-0000001-0000001", "pending"),
        ("250-0000002-0000002", "new"),
        ("250-0000004-0000004", "cancelled"),
    ]
    assert poll.ignored == 1
    assert all(o.lines == held[0].order.lines for o in poll.orders)
    with pytest.raises(ValueError, match="no partially_cancelled state"):
        amazon.render_order_answer(
            amazon.read_order_call(mall.requests[0]),
            OrderAnswer(orders=(_served("1", "partially_cancelled"),), total=1, limit=1),
        )


def test_simulator_reads_only_what_amazon_would_take() -> None:
    request = amazon.start_order_poll(ACCOUNT, SINCE, UNTIL).next_request()
    assert request is not None
    call = amazon.read_order_call(request)
    assert call == OrderSearch(
        since=SINCE,
        until=UNTIL + timedelta(seconds=1),  # LastUpdatedBefore is inclusive
        by="updated",
        limit=100,
    )
    with pytest.raises(ValueError, match="MarketplaceIds"):
        amazon.read_order_call(msgspec.structs.replace(request, query=request.query[1:]))
    with pytest.raises(ValueError, match="x-amz-access-token"):
        amazon.read_order_call(msgspec.structs.replace(request, headers=()))
    with pytest.raises(ValueError, match="not one this mall gave"):
        amazon.read_order_call(
            msgspec.structs.replace(request, query=(request.query[0], ("NextToken", "@@")))
        )
    items_request = HttpRequest(
        method="GET",
        path="/orders/v0/orders/" + quote("250-1", safe="") + "/orderItems",
        headers=request.headers,
    )
    assert amazon.read_order_call(items_request) == ItemsFetch(order_no="250-1")
    with pytest.raises(ValueError, match="neither getOrders nor getOrderItems"):
        amazon.read_order_call(msgspec.structs.replace(items_request, path="/orders/v0/orders/1/x"))


# --- JSON_LISTINGS_FEED through the Feeds API --------------------------------------------


def _json(body: object) -> bytes:
    return msgspec.json.encode(body)


def test_a_feed_goes_document_upload_feed_polls_report_and_names_what_was_refused() -> None:
    updates = [StockUpdate("000123", (), 5), StockUpdate("㈱髙①", (), 0), StockUpdate("C", (), 7)]
    feed = amazon.start_stock_feed(updates, ACCOUNT)
    first = feed.next_request()
    assert first is not None
    assert (first.method, first.path) == ("POST", "/feeds/2021-06-30/documents")
    assert ("x-amz-access-token", "Atza|token") in first.headers
    assert amazon.read_feed_call(first) == amazon.FeedCall("create_document")
    url = "https://tortuga.example/doc-1?X-Amz-Signature=abc"
    feed.feed(201, {}, amazon.render_feed_document("doc-1", url))
    upload = feed.next_request()
    assert upload is not None and (upload.method, upload.path) == ("PUT", url)
    assert not any(k.lower() == "x-amz-access-token" for k, _ in upload.headers)  # pre-signed
    seller, taken, issues = amazon.read_listings_feed(upload.body)
    assert seller == "A2SELLER" and issues == []
    # every message names its product type, as patchListingsItem's body does
    messages = msgspec.json.decode(upload.body)["messages"]
    assert {m["productType"] for m in messages} == {"PRODUCT"}
    assert taken == [(1, updates[0]), (2, updates[1]), (3, updates[2])]
    feed.feed(200, {}, b"")
    create = feed.next_request()
    assert create is not None and amazon.read_feed_call(create) == amazon.FeedCall(
        "create_feed", "doc-1"
    )
    feed.feed(202, {}, amazon.render_created_feed("50001"))
    created = datetime(2026, 12, 1, tzinfo=UTC)
    # asked after 1 s, then 2, 4, …: the mall takes minutes
    waits = []
    for state in ("IN_QUEUE", "IN_PROGRESS", "IN_PROGRESS"):
        waits.append(feed.wait_s)
        poll = feed.next_request()
        assert poll is not None and amazon.read_feed_call(poll) == amazon.FeedCall(
            "get_feed", "50001"
        )
        feed.feed(200, {}, amazon.render_feed("50001", state, created))
    assert waits == [1.0, 2.0, 4.0]
    feed.feed(200, {}, amazon.render_feed("50001", "DONE", created, "report-1"))
    get_report = feed.next_request()
    assert get_report is not None
    assert amazon.read_feed_call(get_report) == amazon.FeedCall("get_document", "report-1")
    feed.feed(200, {}, amazon.render_feed_document("report-1", "https://tortuga.example/r1"))
    download = feed.next_request()
    assert download is not None and (download.method, download.path) == (
        "GET",
        "https://tortuga.example/r1",
    )
    report = amazon.render_processing_report("A2SELLER", "50001", 3, [(2, "90220", "bad SKU")])
    feed.feed(200, {}, report)
    assert feed.next_request() is None
    assert feed.refused == {1: "90220: bad SKU"}


def test_a_feed_report_may_come_gzipped_and_errors_keep_the_call_in_flight() -> None:
    feed = amazon.start_stock_feed([StockUpdate("A", (), 1)], ACCOUNT)
    with pytest.raises(RateLimited) as limited:
        feed.feed(429, {"Retry-After": "3"}, amazon.render_error(429, "slow down"))
    assert limited.value.retry_after == 3.0
    with pytest.raises(MallApiError, match="HTTP 503"):
        feed.feed(503, {}, b"down")
    request = feed.next_request()
    assert request is not None and request.path == "/feeds/2021-06-30/documents"
    feed.feed(201, {}, amazon.render_feed_document("d", "https://s3.example/d"))
    feed.feed(200, {}, b"")
    feed.feed(202, {}, amazon.render_created_feed("7"))
    feed.feed(200, {}, amazon.render_feed("7", "DONE", datetime(2026, 1, 1, tzinfo=UTC), "r"))
    feed.feed(
        200,
        {},
        _json(
            {"feedDocumentId": "r", "url": "https://s3.example/r", "compressionAlgorithm": "GZIP"}
        ),
    )
    feed.feed(200, {}, gzip.compress(amazon.render_processing_report("A2SELLER", "7", 1, [])))
    assert feed.next_request() is None and feed.refused == {}


@pytest.mark.parametrize(
    ("state", "report", "reason"),
    [
        ("CANCELLED", "", "was cancelled"),
        ("FATAL", "r", "failed: FATAL: not a feed"),
        ("DONE", "", "without a processing report"),
    ],
)
def test_a_feed_that_fails_says_why(state: str, report: str, reason: str) -> None:
    feed = amazon.start_stock_feed([StockUpdate("A", (), 1)], ACCOUNT)
    feed.feed(201, {}, amazon.render_feed_document("d", "https://s3.example/d"))
    feed.feed(200, {}, b"")
    feed.feed(202, {}, amazon.render_created_feed("7"))
    when = datetime(2026, 1, 1, tzinfo=UTC)
    if not report:
        with pytest.raises(MallApiError, match=reason):
            feed.feed(200, {}, amazon.render_feed("7", state, when, report))
        assert feed.next_request() is None
        return
    feed.feed(200, {}, amazon.render_feed("7", state, when, report))
    feed.feed(200, {}, amazon.render_feed_document("r", "https://s3.example/r"))
    with pytest.raises(MallApiError, match=reason):
        feed.feed(
            200,
            {},
            amazon.render_processing_report("A2SELLER", "7", 0, [(0, "FATAL", "not a feed")]),
        )
    assert feed.next_request() is None


def test_a_feed_takes_at_most_its_limit_and_needs_the_seller() -> None:
    too_many = [StockUpdate(f"S{n}", (), 1) for n in range(amazon.FEED_MAX_MESSAGES + 1)]
    with pytest.raises(ValueError, match="at most"):
        amazon.start_stock_feed(too_many, ACCOUNT)
    with pytest.raises(ValueError, match="seller_id"):
        amazon.start_stock_feed(too_many[:1], ApiAccount(base_url="x", secret="s"))
    bad = _json(
        {
            "header": {"sellerId": "A2SELLER", "version": "2.0"},
            "messages": [
                {"messageId": 1, "sku": "A", "operationType": "DELETE", "productType": "PRODUCT"}
            ],
        }
    )
    assert amazon.read_listings_feed(bad)[2][0][0] == 1
    with pytest.raises(ValueError, match="not a JSON_LISTINGS_FEED"):
        amazon.read_listings_feed(b"sku\tquantity\nA\t1\n")
