"""The RMS order API poll: searchOrder page after page (PaginationRequestModel), then getOrder
100 numbers at a time; order dates in 63-day windows; what RMS answers, read as it answers."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import msgspec
import pytest

from protocols.malls import rakuten
from protocols.malls._api import OrderAnswer, OrderFetch, OrderSearch
from protocols.malls.base import ApiAccount, HttpRequest, MallApiError, MallOrder, OrderLine
from tests.malls.order_api import JST, FakeMall, essence, order, run_poll, served

ACCOUNT = ApiAccount(base_url="https://api.rms.rakuten.co.jp", secret="SP123_abc:SL456_def")
SINCE = datetime(2026, 6, 12, tzinfo=JST)
UNTIL = SINCE + timedelta(days=1)


def body(request: HttpRequest) -> dict[str, object]:
    doc: dict[str, object] = json.loads(request.body)
    return doc


def search_answer(numbers: list[str], total: int | None, pages: int | None, page: int) -> bytes:
    """searchOrder's answer as the RMS spec's sample writes it."""
    return json.dumps(
        {
            "orderNumberList": numbers,
            "MessageModelList": [
                {
                    "messageType": "INFO",
                    "messageCode": "ORDER_EXT_API_SEARCH_ORDER_INFO_101",
                    "message": "注文検索に成功しました。",
                }
            ],
            "PaginationResponseModel": {
                "totalRecordsAmount": total,
                "totalPages": pages,
                "requestPage": page if total else None,
            },
        },
        ensure_ascii=False,
    ).encode()


def test_searchorder_pages_then_getorder_batches_of_100() -> None:
    held = [
        served(order(f"123456-20260612-{n:010d}", SINCE + timedelta(seconds=n), lines=1))
        for n in range(230)
    ]
    poll = rakuten.start_order_poll(ACCOUNT, SINCE, UNTIL)
    mall = FakeMall(rakuten, held, page_size=100)
    run_poll(poll, mall)
    searches = [r for r in mall.requests if r.path == rakuten.SEARCH_ORDER_PATH]
    fetches = [r for r in mall.requests if r.path == rakuten.GET_ORDER_PATH]
    assert [body(r)["PaginationRequestModel"]["requestPage"] for r in searches] == [1, 2, 3]  # type: ignore[index]
    first = body(searches[0])
    assert first["dateType"] == 1
    assert (first["startDatetime"], first["endDatetime"]) == (
        "2026-06-12T00:00:00+0900",
        "2026-06-12T23:59:59+0900",  # inclusive, to the second
    )
    assert first["PaginationRequestModel"] == {
        "requestRecordsAmount": 1000,
        "requestPage": 1,
        "SortModelList": [{"sortColumn": 1, "sortDirection": 1}],
    }
    assert dict(searches[0].headers)["Authorization"].startswith("ESA ")
    assert [len(body(r)["orderNumberList"]) for r in fetches] == [100, 100, 30]  # type: ignore[arg-type]
    assert all(body(r)["version"] == rakuten.GET_ORDER_VERSION for r in fetches)
    assert essence(poll.orders) == essence([s.order for s in held])


def test_a_window_longer_than_63_days_is_searched_in_parts() -> None:
    until = SINCE + timedelta(days=100)
    poll = rakuten.start_order_poll(ACCOUNT, SINCE, until)
    mall = FakeMall(
        rakuten, [served(order("123456-20260801-0000000001", SINCE + timedelta(days=80)))]
    )
    run_poll(poll, mall)
    windows = [
        (body(r)["startDatetime"], body(r)["endDatetime"])
        for r in mall.requests
        if r.path == rakuten.SEARCH_ORDER_PATH
    ]
    assert windows == [
        ("2026-06-12T00:00:00+0900", "2026-08-13T23:59:59+0900"),
        ("2026-08-14T00:00:00+0900", "2026-09-19T23:59:59+0900"),
    ]
    assert [o.order_no for o in poll.orders] == ["123456-20260801-0000000001"]


def test_more_than_15000_results_are_searched_again_in_halves() -> None:
    poll = rakuten.start_order_poll(ACCOUNT, SINCE, UNTIL)
    poll.feed(200, {}, search_answer(["x"] * 1000, 15_001, 16, 1))
    again = poll.next_request()
    assert again is not None
    assert (body(again)["startDatetime"], body(again)["endDatetime"]) == (
        "2026-06-12T00:00:00+0900",
        "2026-06-12T11:59:59+0900",
    )
    poll.feed(200, {}, search_answer([], None, None, 1))
    second_half = poll.next_request()
    assert second_half is not None
    assert body(second_half)["startDatetime"] == "2026-06-12T12:00:00+0900"
    poll.feed(200, {}, search_answer([], None, None, 1))
    assert poll.next_request() is None and poll.orders == []  # no getOrder for no numbers


def test_cancelled_and_partially_cancelled_orders() -> None:
    held = [
        served(order("123456-20260612-0000000001", SINCE, status="new")),
        served(
            order(
                "123456-20260612-0000000002",
                SINCE + timedelta(hours=1),
                status="partially_cancelled",
                cancelled_lines=(2,),
            )
        ),
        served(order("123456-20260612-0000000003", SINCE + timedelta(hours=2), status="cancelled")),
    ]
    poll = rakuten.start_order_poll(ACCOUNT, SINCE, UNTIL)
    run_poll(poll, FakeMall(rakuten, held))
    assert [(o.status, o.cancelled_lines) for o in poll.orders] == [
        ("new", ()),
        ("partially_cancelled", (2,)),
        ("cancelled", (1, 2, 3)),
    ]


def getorder_answer(orders: list[dict[str, object]]) -> bytes:
    return json.dumps({"OrderModelList": orders, "MessageModelList": []}).encode()


def rms_order(number: str, at: str, item_ids: list[int], progress: int = 300) -> dict[str, object]:
    return {
        "orderNumber": number,
        "orderProgress": progress,
        "orderDatetime": at,
        "PackageModelList": [
            {
                "ItemModelList": [
                    {
                        "itemDetailId": detail,
                        "itemName": f"商品{detail}",
                        "itemNumber": f"no-{detail}",
                        "manageNumber": f"item-{detail}",
                        "units": 1,
                        "SkuModelList": [{"variantId": f"v{detail}"}],
                    }
                    for detail in item_ids
                ]
            }
        ],
    }


def test_lines_follow_itemdetailid_and_orders_outside_the_window_are_left_out() -> None:
    poll = rakuten.start_order_poll(ACCOUNT, SINCE, UNTIL)
    poll.feed(200, {}, search_answer(["A", "B"], 2, 1, 1))
    poll.feed(
        200,
        {},
        getorder_answer(
            [
                rms_order("A", "2026-06-12T10:00:00+0900", [30, 4, 100]),
                rms_order("B", "2026-06-11T23:59:59+0900", [1]),  # before the window
            ]
        ),
    )
    assert poll.next_request() is None
    (taken,) = poll.orders
    assert [(ln.line_no, ln.item_id, ln.variation, ln.sku) for ln in taken.lines] == [
        (1, "item-4", ("sku:v4",), "v4"),
        (2, "item-30", ("sku:v30",), "v30"),
        (3, "item-100", ("sku:v100",), "v100"),
    ]


def test_rms_errors() -> None:
    error = json.dumps(
        {
            "orderNumberList": None,
            "MessageModelList": [
                {
                    "messageType": "ERROR",
                    "messageCode": "ORDER_EXT_API_SEARCH_ORDER_ERROR_012",
                    "message": "期間指定が不正です。",
                }
            ],
            "PaginationResponseModel": None,
        },
        ensure_ascii=False,
    ).encode()
    poll = rakuten.start_order_poll(ACCOUNT, SINCE, UNTIL)
    with pytest.raises(
        MallApiError, match=r"^HTTP 400: ORDER_EXT_API_SEARCH_ORDER_ERROR_012 期間指定が不正です。$"
    ):
        poll.feed(400, {}, error)
    poll = rakuten.start_order_poll(ACCOUNT, SINCE, UNTIL)
    with pytest.raises(MallApiError, match=r"^searchOrder: ORDER_EXT_API_SEARCH_ORDER_ERROR_012"):
        poll.feed(200, {}, error)
    poll = rakuten.start_order_poll(ACCOUNT, SINCE, UNTIL)
    with pytest.raises(MallApiError, match=r"^HTTP 401: GE0001 authentication failed$"):
        poll.feed(401, {}, rakuten.render_error(401, "authentication failed"))
    poll = rakuten.start_order_poll(ACCOUNT, SINCE, UNTIL)
    poll.feed(200, {}, search_answer(["A", "B"], 2, 1, 1))
    with pytest.raises(MallApiError, match="getOrder left out 1 order"):
        poll.feed(200, {}, getorder_answer([rms_order("A", "2026-06-12T10:00:00+0900", [1])]))
    with pytest.raises(ValueError, match="serviceSecret:licenseKey"):
        rakuten.start_order_poll(ApiAccount(base_url="x", secret="no-colon"), SINCE, UNTIL)


def test_simulator_reads_searchorder_and_getorder() -> None:
    poll = rakuten.start_order_poll(ACCOUNT, SINCE, UNTIL)
    search = poll.next_request()
    assert search is not None
    assert rakuten.read_order_call(search) == OrderSearch(
        since=SINCE, until=UNTIL, by="ordered", limit=1000, page=1
    )
    too_long = json.loads(search.body)
    too_long["endDatetime"] = "2026-08-15T00:00:00+0900"
    with pytest.raises(ValueError, match="期間指定が不正です"):
        rakuten.read_order_call(msgspec.structs.replace(search, body=json.dumps(too_long).encode()))
    numbers = [f"n{n}" for n in range(101)]
    get = HttpRequest(
        method="POST",
        path=rakuten.GET_ORDER_PATH,
        body=json.dumps({"orderNumberList": numbers[:2], "version": 7}).encode(),
    )
    assert rakuten.read_order_call(get) == OrderFetch(order_numbers=("n0", "n1"))
    with pytest.raises(ValueError, match="101 order numbers"):
        rakuten.read_order_call(
            msgspec.structs.replace(get, body=json.dumps({"orderNumberList": numbers}).encode())
        )
    with pytest.raises(ValueError, match="expected POST"):
        rakuten.read_order_call(HttpRequest(method="POST", path=rakuten.STOCK_PATH))


def test_rakuten_has_no_unpaid_orders_to_render() -> None:
    waiting = MallOrder(
        order_no="1",
        ordered_at=SINCE.isoformat(),
        status="unpaid",
        lines=(OrderLine(line_no=1, item_id="a", sku="a", quantity=1),),
    )
    with pytest.raises(ValueError, match="no unpaid orders"):
        rakuten.render_order_answer(
            OrderFetch(order_numbers=("1",)), OrderAnswer(orders=(served(waiting),), total=1)
        )
