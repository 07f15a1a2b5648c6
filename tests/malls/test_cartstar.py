from __future__ import annotations

import msgspec
import pytest

from protocols.malls import cartstar
from protocols.malls.base import ApiAccount, MailError, MallOrder, OrderLine, StockUpdate
from tests.malls.mail_variants import every_shape, single_part

ACCOUNT = ApiAccount(base_url="http://127.0.0.1:9000", secret="tok")


def test_stock_requests_round_trip_and_batch() -> None:
    updates = [StockUpdate("000123", ("RED", "M"), 4), StockUpdate("㈱髙①～", (), 0)] * 60
    requests = cartstar.build_stock_requests(updates, ACCOUNT)
    assert [r.path for r in requests] == ["/api/v1/inventories"] * 2
    assert [len(cartstar.parse_stock_request(r)) for r in requests] == [100, 20]
    assert [u for r in requests for u in cartstar.parse_stock_request(r)] == updates
    first = msgspec.json.decode(requests[0].body)["stocks"][0]
    assert first == {"item_code": "000123", "quantity": 4, "variation_codes": ["RED", "M"]}


def test_error_response() -> None:
    with pytest.raises(ValueError, match="HTTP 401: token expired"):
        cartstar.parse_stock_response(401, cartstar.render_error(401, "token expired"))


ORDER = MallOrder(
    order_no="CS-000123",
    ordered_at="2024-01-02T10:11:12+09:00",
    lines=(
        OrderLine(
            line_no=1,
            item_id="TEE",
            variation=("RED", "M"),
            sku="TEEREDM",
            quantity=2,
            name="Tシャツ①",
        ),
        OrderLine(line_no=2, item_id="000123", sku="000123", quantity=1, name="髙級～タオル"),
    ),
)


def test_order_mail_round_trip() -> None:
    raw = cartstar.render_order_mail(ORDER, "テスト商店")
    assert cartstar.parse_order_mail(raw) == ORDER


BODY = """TEMPOSTAR連携メール（CARTSTAR）

ショップ名：テスト商店
注文番号：CS-000999
注文日時：2024-02-03 04:05:06

[商品]
商品コード：TEE
横軸コード：BLU
縦軸コード：L
商品名：Tシャツ
数量：1

[商品]
商品コード：000777
商品名：タオル
数量：12
"""


@pytest.mark.parametrize(("shape", "raw"), every_shape(BODY))
def test_hand_written_mail_in_every_shape(shape: str, raw: bytes) -> None:
    order = cartstar.parse_order_mail(raw)
    assert order.order_no == "CS-000999" and order.ordered_at == "2024-02-03T04:05:06+09:00", shape
    assert order.lines == (
        OrderLine(
            line_no=1,
            item_id="TEE",
            variation=("BLU", "L"),
            sku="TEEBLUL",
            quantity=1,
            name="Tシャツ",
        ),
        OrderLine(line_no=2, item_id="000777", sku="000777", quantity=12, name="タオル"),
    )


def test_broken_mail() -> None:
    with pytest.raises(MailError, match="item 2: no 数量 line"):
        cartstar.parse_order_mail(single_part(BODY.replace("数量：12", "")))
