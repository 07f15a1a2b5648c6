from __future__ import annotations

from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from protocols.malls import yahoo_auction
from protocols.malls._api import OrderSearch
from protocols.malls.base import ApiAccount, MallApiError, MallOrder, MallOrderState, OrderLine
from tests.malls.order_api import FakeMall, run_poll, served

ACCOUNT = ApiAccount(base_url="https://auctions.yahooapis.jp", secret="yj-token")
JST = timezone(timedelta(hours=9))
SINCE = datetime(2024, 1, 2, 3, 4, 5, tzinfo=JST)
UNTIL = SINCE + timedelta(days=1)


def test_no_stock_out() -> None:
    assert yahoo_auction.CAPABILITY.stock_out == ()
    assert not hasattr(yahoo_auction, "build_stock_requests")


def auction(number: str, status: MallOrderState, hours: int) -> MallOrder:
    return MallOrder(
        order_no=number,
        ordered_at=(SINCE + timedelta(hours=hours)).isoformat(),
        status=status,
        lines=(OrderLine(line_no=1, item_id="000123", sku="000123", quantity=1, name="㈱髙①～"),),
    )


def test_closed_auctions_page_after_page() -> None:
    held = [auction(f"x{n}", "cancelled" if n == 3 else "new", n) for n in range(5)]
    poll = yahoo_auction.start_order_poll(ACCOUNT, SINCE, UNTIL)
    mall = FakeMall(yahoo_auction, [served(o) for o in held])
    run_poll(poll, mall)
    queries = [dict(r.query) for r in mall.requests]
    assert [q["start"] for q in queries] == ["1", "3", "5"]
    assert queries[0]["since"] == SINCE.isoformat() and queries[0]["until"] == UNTIL.isoformat()
    assert ("Authorization", "Bearer yj-token") in mall.requests[0].headers
    assert poll.orders == held
    rendered = msgspec.json.decode(mall.answer(mall.requests[1])[2])["ResultSet"]
    assert (rendered["totalResultsAvailable"], rendered["firstResultPosition"]) == (5, 3)
    assert [r["Status"] for r in rendered["Result"]] == ["sold", "cancelled"]


def test_orders_errors() -> None:
    poll = yahoo_auction.start_order_poll(ACCOUNT, SINCE, UNTIL)
    with pytest.raises(MallApiError, match=r"^HTTP 401: invalid token$"):
        poll.feed(401, {}, yahoo_auction.render_error(401, "invalid token"))
    bad = b'{"ResultSet": {"totalResultsAvailable": 1, "totalResultsReturned": 1, "firstResultPosition": 1, "Result": [{"AuctionID": "a", "SellerItemCode": "A", "EndTime": "2024-01-02T21:00:00+09:00", "Status": "bidding"}]}}'
    poll = yahoo_auction.start_order_poll(ACCOUNT, SINCE, UNTIL)
    poll.feed(200, {}, bad)
    assert poll.next_request() is None and poll.orders == []
    assert poll.unreadable == ["auction a: unknown Status 'bidding'"]
    unpaid = MallOrder(
        order_no="a", ordered_at="2024-01-02T21:00:00+09:00", status="unpaid", lines=()
    )
    poll = yahoo_auction.start_order_poll(ACCOUNT, SINCE, UNTIL)
    request = poll.next_request()
    assert request is not None
    with pytest.raises(ValueError, match="no unpaid state"):
        run_poll(poll, FakeMall(yahoo_auction, [served(unpaid)]))


def test_simulator_reads_the_window_and_the_page() -> None:
    request = yahoo_auction.start_order_poll(ACCOUNT, SINCE, UNTIL).next_request()
    assert request is not None
    assert yahoo_auction.read_order_call(request) == OrderSearch(
        since=SINCE, until=UNTIL, by="updated", limit=50
    )
    with pytest.raises(ValueError, match="Bearer"):
        yahoo_auction.read_order_call(msgspec.structs.replace(request, headers=()))
    with pytest.raises(ValueError, match="results '500'"):
        yahoo_auction.read_order_call(
            msgspec.structs.replace(request, query=(*request.query[:-1], ("results", "500")))
        )
