from __future__ import annotations

import pytest

from protocols.malls import shoplist
from protocols.malls.base import ApiAccount, MailError, MallOrder, OrderLine, StockUpdate
from tests.malls.mail_variants import every_shape, single_part

ACCOUNT = ApiAccount(base_url="http://127.0.0.1:9000", secret="tok")


def test_stock_requests_round_trip_and_batch() -> None:
    updates = [StockUpdate(f"SL{n:05d}", ("BK", "M"), n) for n in range(101)]
    requests = shoplist.build_stock_requests(updates, ACCOUNT)
    assert len(requests) == 2
    assert [u for r in requests for u in shoplist.parse_stock_request(r)] == updates
    assert shoplist.build_stock_requests([], ACCOUNT) == []


def test_error_response() -> None:
    shoplist.parse_stock_response(200, shoplist.render_stock_response([]))
    with pytest.raises(ValueError, match="HTTP 429: too many requests"):
        shoplist.parse_stock_response(429, shoplist.render_error(429, "too many requests"))


ORDER = MallOrder(
    order_no="SL20240102-0001",
    ordered_at="2024-01-02T10:11:12+09:00",
    lines=(
        OrderLine(
            line_no=1,
            item_id="000123",
            variation=("BK", "M"),
            sku="000123BKM",
            quantity=1,
            name="ワンピース①",
        ),
        OrderLine(
            line_no=2,
            item_id="BAG",
            variation=("RD",),
            sku="BAGRD",
            quantity=2,
            name="㈱髙～バッグ",
        ),
    ),
)


def test_order_mail_round_trip() -> None:
    assert shoplist.parse_order_mail(shoplist.render_order_mail(ORDER, "テスト商店")) == ORDER


BODY = """テスト商店 御中

SHOPLISTで新しいご注文が入りました。

■注文番号：SL20240304-0042
■注文日時：2024年03月04日 05:06:07

■ご注文商品
――――――――――――――――――――
品番：000123
商品名：ワンピース
カラーコード：BK
サイズコード：M
単価：3,000円
数量：2点
――――――――――――――――――――
"""


@pytest.mark.parametrize(("shape", "raw"), every_shape(BODY))
def test_hand_written_mail_in_every_shape(shape: str, raw: bytes) -> None:
    assert shoplist.parse_order_mail(raw) == MallOrder(
        order_no="SL20240304-0042",
        ordered_at="2024-03-04T05:06:07+09:00",
        lines=(
            OrderLine(
                line_no=1,
                item_id="000123",
                variation=("BK", "M"),
                sku="000123BKM",
                quantity=2,
                name="ワンピース",
            ),
        ),
    ), shape


def test_broken_mail() -> None:
    with pytest.raises(MailError, match="数量 '2個半' is not a whole number"):
        shoplist.parse_order_mail(single_part(BODY.replace("数量：2点", "数量：2個半")))
