from __future__ import annotations

import msgspec
import pytest

from protocols.malls import shopserve
from protocols.malls.base import (
    ApiAccount,
    HttpRequest,
    MailError,
    MallOrder,
    OrderLine,
    StockUpdate,
)
from tests.malls.mail_variants import every_shape, single_part

ACCOUNT = ApiAccount(base_url="http://127.0.0.1:9000", secret="s3cret")


def test_stock_requests_round_trip_in_batches_of_100() -> None:
    updates = [StockUpdate(f"{n:06d}", ("R", "M") if n % 2 else (), n) for n in range(250)]
    requests = shopserve.build_stock_requests(updates, ACCOUNT)
    assert [len(msgspec.json.decode(r.body)["stocks"]) for r in requests] == [100, 100, 50]
    assert all(("Authorization", "Bearer s3cret") in r.headers for r in requests)
    assert [u for r in requests for u in shopserve.parse_stock_request(r)] == updates
    assert shopserve.parse_stock_request(requests[0])[0].item_id == "000000"


def test_stock_request_refuses_negative_and_foreign_requests() -> None:
    with pytest.raises(ValueError, match="negative"):
        shopserve.build_stock_requests([StockUpdate("A", (), -1)], ACCOUNT)
    with pytest.raises(ValueError, match="expected POST"):
        shopserve.parse_stock_request(HttpRequest(method="GET", path="/api/v1/stock/update"))
    bad = HttpRequest(
        method="POST",
        path="/api/v1/stock/update",
        body=b'{"stocks":[{"item_code":"A","quantity":-3}]}',
    )
    with pytest.raises(ValueError, match="invalid stock request"):
        shopserve.parse_stock_request(bad)
    over = HttpRequest(
        method="POST",
        path="/api/v1/stock/update",
        body=msgspec.json.encode(
            {"stocks": [{"item_code": str(n), "quantity": 1} for n in range(101)]}
        ),
    )
    with pytest.raises(ValueError, match="at most 100"):
        shopserve.parse_stock_request(over)


def test_stock_responses() -> None:
    updates = [StockUpdate("A", (), 1)]
    shopserve.parse_stock_response(200, shopserve.render_stock_response(updates))
    with pytest.raises(ValueError, match="HTTP 404: 品番 A がありません"):
        shopserve.parse_stock_response(404, shopserve.render_error(404, "品番 A がありません"))
    with pytest.raises(ValueError, match="HTTP 502: Bad Gateway"):
        shopserve.parse_stock_response(502, b"Bad Gateway")


ORDER = MallOrder(
    order_no="00012345",
    ordered_at="2024-01-02T10:11:12+09:00",
    lines=(
        OrderLine(line_no=1, item_id="000123", sku="000123", quantity=2, name="㈱髙①～セット"),
        OrderLine(line_no=2, item_id="CUP-S", sku="CUP-S", quantity=1, name="カップ"),
    ),
)


def test_order_mail_round_trip() -> None:
    raw = shopserve.render_order_mail(ORDER, "テスト商店")
    assert b"Message-ID:" in raw and b"Date: Tue, 02 Jan 2024 10:11:12 +0900" in raw
    assert shopserve.parse_order_mail(raw) == ORDER


def test_rendered_variation_codes_stay_in_the_sku() -> None:
    line = OrderLine(
        line_no=1, item_id="TEE", variation=("RED", "M"), sku="TEEREDM", quantity=1, name="T"
    )
    order = msgspec.structs.replace(ORDER, lines=(line,))
    parsed = shopserve.parse_order_mail(shopserve.render_order_mail(order, "S"))
    assert parsed.lines[0].sku == "TEEREDM"


BODY = """テスト商店 です。
このたびはご注文いただき、誠にありがとうございます。

◆受注番号：00098765
◆受注日時：2024/05/06 07:08:09
◆お支払方法：代金引換

◆ご注文商品
------------------------------------------------------------
品番：000123
品名：マグカップ（白）
単価：1,200円
数量：3
小計：3,600円
------------------------------------------------------------
商品合計：3,600円
"""


@pytest.mark.parametrize(("shape", "raw"), every_shape(BODY))
def test_hand_written_mail_in_every_shape(shape: str, raw: bytes) -> None:
    assert shopserve.parse_order_mail(raw) == MallOrder(
        order_no="00098765",
        ordered_at="2024-05-06T07:08:09+09:00",
        lines=(
            OrderLine(
                line_no=1, item_id="000123", sku="000123", quantity=3, name="マグカップ（白）"
            ),
        ),
    ), shape


def test_broken_mail() -> None:
    with pytest.raises(MailError, match="no 受注番号 line"):
        shopserve.parse_order_mail(single_part(BODY.replace("◆受注番号：00098765", "")))
    with pytest.raises(MailError, match="not a date and time"):
        shopserve.parse_order_mail(single_part(BODY.replace("2024/05/06 07:08:09", "近日中")))
