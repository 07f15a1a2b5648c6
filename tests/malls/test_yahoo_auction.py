from __future__ import annotations

from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from protocols.malls import yahoo_auction
from protocols.malls.base import ApiAccount, MallOrder, MallOrderState, OrderLine

ACCOUNT = ApiAccount(base_url="https://auctions.yahooapis.jp", secret="yj-token")


def test_no_stock_out() -> None:
    assert yahoo_auction.CAPABILITY.stock_out == ()
    assert not hasattr(yahoo_auction, "build_stock_requests")


def test_orders_request_round_trip() -> None:
    since = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=9)))
    request = yahoo_auction.build_orders_request(ACCOUNT, since)
    assert (request.method, request.path) == ("GET", "/AuctionWebService/V2/myCloseList")
    assert ("Authorization", "Bearer yj-token") in request.headers
    assert yahoo_auction.parse_orders_request(request) == since


@pytest.mark.parametrize("status", ["new", "cancelled"])
def test_orders_round_trip(status: MallOrderState) -> None:
    order = MallOrder(
        order_no="x1234567890",
        ordered_at="2024-01-02T21:00:00+09:00",
        status=status,
        lines=(OrderLine(line_no=1, item_id="000123", sku="000123", quantity=1, name="㈱髙①～"),),
    )
    body = yahoo_auction.render_orders_response([order])
    assert (
        msgspec.json.decode(body)["ResultSet"]["Result"][0]["Status"]
        == {"new": "sold", "cancelled": "cancelled"}[status]
    )
    assert yahoo_auction.parse_orders_response(body) == [order]


def test_orders_errors() -> None:
    with pytest.raises(ValueError, match="invalid token"):
        yahoo_auction.parse_orders_response(yahoo_auction.render_error(401, "invalid token"))
    bad = b'{"ResultSet": {"totalResultsReturned": 1, "Result": [{"AuctionID": "a", "SellerItemCode": "A", "EndTime": "2024-01-02T21:00:00+09:00", "Status": "bidding"}]}}'
    with pytest.raises(ValueError, match="unknown Status 'bidding'"):
        yahoo_auction.parse_orders_response(bad)
    unpaid = MallOrder(
        order_no="a", ordered_at="2024-01-02T21:00:00+09:00", status="unpaid", lines=()
    )
    with pytest.raises(ValueError, match="no unpaid state"):
        yahoo_auction.render_orders_response([unpaid])
