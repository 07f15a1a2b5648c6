"""Reading back what a mall shows (the audit), for each mall with a stock read API: the
request names the items, the simulator side reads it back, and the answer reads as the
quantities shown; an item the mall does not have is left out."""

from __future__ import annotations

import pytest

from protocols.malls import amazon, capability, rakuten, yahoo
from protocols.malls.base import ApiAccount, StockUpdate

ACCOUNTS = {
    "rakuten": ApiAccount(base_url="https://api.rms.example", secret="svc:lic"),
    "yahoo": ApiAccount(base_url="https://circus.example", secret="tok", seller_id="store-1"),
    "amazon": ApiAccount(base_url="https://sp.example", secret="Atza|t", seller_id="SELLER"),
}
ITEMS = {
    "rakuten": [("item-1", ()), ("item-2", ("sku:v-2",))],
    "yahoo": [("code-1", ()), ("code-2", ("sub-2",))],
    "amazon": [("000123", ()), ("㈱髙①", ())],
}


@pytest.mark.parametrize("kind", ["rakuten", "yahoo", "amazon"])
def test_a_read_round_trips_and_an_unknown_item_is_left_out(kind: str) -> None:
    mod = {"rakuten": rakuten, "yahoo": yahoo, "amazon": amazon}[kind]
    assert capability(kind).stock_read
    requests = mod.build_stock_read_requests(ITEMS[kind], ACCOUNTS[kind])
    asked = [key for request in requests for key in mod.read_stock_read_request(request)]
    assert asked == ITEMS[kind]
    # the mall has the first item only
    first = ITEMS[kind][0]
    shown: list[StockUpdate] = []
    for request in requests:
        keys = mod.read_stock_read_request(request)
        found = [StockUpdate(k[0], k[1], 7) for k in keys if k == first]
        answer = mod.render_stock_read_response(found)
        status, body = answer if isinstance(answer, tuple) else (200, answer)
        shown += mod.parse_stock_read_response(status, body)
    assert shown == [StockUpdate(first[0], first[1], 7)]


def test_batches_follow_each_mall_s_limit() -> None:
    many = [(f"item-{n}", ()) for n in range(2001)]
    assert len(rakuten.build_stock_read_requests(many, ACCOUNTS["rakuten"])) == 3
    assert len(yahoo.build_stock_read_requests(many, ACCOUNTS["yahoo"])) == 3
    assert len(amazon.build_stock_read_requests(many[:3], ACCOUNTS["amazon"])) == 3


def test_an_error_answer_raises_with_the_mall_s_message() -> None:
    with pytest.raises(ValueError, match="GE0001 down"):
        rakuten.parse_stock_read_response(500, rakuten.render_error(500, "down"))
    with pytest.raises(ValueError, match="ed-00002"):
        yahoo.parse_stock_read_response(400, yahoo.render_error(400, "bad", "ed-00002"))
    with pytest.raises(ValueError, match="HTTP 403"):
        amazon.parse_stock_read_response(403, amazon.render_error(403, "no"))
