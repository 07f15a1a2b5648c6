from __future__ import annotations

import urllib.parse

import pytest

from protocols.malls import ponpare
from protocols.malls.base import (
    ApiAccount,
    MailError,
    MallOrder,
    OrderLine,
    RowError,
    StockRow,
    StockUpdate,
    csv_records,
)
from tests.malls.mail_variants import single_part
from tests.malls.subject_shapes import every_shape_with_subject

ACCOUNT = ApiAccount(base_url="https://api.example.jp", secret="tok", seller_id="shop-1")


def test_quantity_csv_round_trip() -> None:
    updates = [
        StockUpdate("000123", (), 4),
        StockUpdate("㈱髙①～", ("㈱髙①～-M",), 0),
    ]
    content = ponpare.write_stock_files(updates)["quantity.csv"]
    rows = list(ponpare.read_stock_file("ponpare_quantity", csv_records([content])))
    assert rows == [
        StockRow(line=2, sku="000123", item_id="000123", quantity=4),
        StockRow(line=3, sku="㈱髙①～-M", item_id="㈱髙①～", variation=("㈱髙①～-M",), quantity=0),
    ]


def test_bad_byte_in_quantity_csv_is_a_row_error() -> None:
    content = b"code,sub-code,quantity\r\na,,1\r\nb\x81\x20,,2\r\n"
    rows = list(ponpare.read_stock_file("quantity.csv", csv_records([content])))
    assert isinstance(rows[1], RowError) and rows[1].line == 3


def test_stock_api_batches_and_round_trips() -> None:
    updates = [StockUpdate(f"{n:04d}", (f"{n:04d}S",) if n % 2 else (), n) for n in range(1001)]
    requests = ponpare.build_stock_requests(updates, ACCOUNT)
    assert [r.path for r in requests] == ["/api/setStock", "/api/setStock"]
    form = dict(urllib.parse.parse_qsl(requests[1].body.decode()))
    assert form == {"shop_id": "shop-1", "item_code": "1000", "quantity": "1000"}
    assert [u for r in requests for u in ponpare.parse_stock_request(r)] == updates
    ponpare.parse_stock_response(200, ponpare.render_stock_response(updates[:2]))
    with pytest.raises(ValueError, match=r"^HTTP 401: token expired$"):
        ponpare.parse_stock_response(401, ponpare.render_error(401, "token expired"))


ORDER = MallOrder(
    order_no="ponpare-0001",
    ordered_at="2026-06-12T10:31:07+09:00",
    lines=(
        OrderLine(line_no=1, item_id="000123", sku="000123", quantity=1, name="水筒"),
        OrderLine(
            line_no=2,
            item_id="shirt",
            variation=("shirtredm",),
            sku="shirtredm",
            quantity=3,
            name="【送料無料】シャツ（綿）",
        ),
    ),
)


def test_mail_round_trip() -> None:
    raw = ponpare.render_order_mail(ORDER, "テスト店")
    assert b'charset="iso-2022-jp"' in raw
    assert ponpare.parse_order_mail(raw) == ORDER


def test_sub_code_that_is_not_code_plus_options_cannot_be_mailed() -> None:
    order = MallOrder(
        order_no="1",
        ordered_at=ORDER.ordered_at,
        lines=(OrderLine(line_no=1, item_id="a", variation=("zz",), sku="zz", quantity=1),),
    )
    with pytest.raises(ValueError, match="item code"):
        ponpare.render_order_mail(order, "店")


HAND_WRITTEN = """テスト店 様

[注文番号]：pm-20240102-77
[注文日時]：2024/01/02 10:11:12
ショップ名：テスト店
[送付先]：山田 花子 様

[商品]
---------------------------------------------
[送料無料] ステンレスボトル（bottle-500）
価格 2,980(円) × 2(個) = 5,960(円)
---------------------------------------------
ジャケット（jacket）
サイズ:L(l)
カラー:紺(nv)
価格 21,560(円) × 1(個) = 21,560(円)
---------------------------------------------
小計：27,520円
"""
EXPECTED = MallOrder(
    order_no="pm-20240102-77",
    ordered_at="2024-01-02T10:11:12+09:00",
    lines=(
        OrderLine(
            line_no=1,
            item_id="bottle-500",
            sku="bottle-500",
            quantity=2,
            name="[送料無料] ステンレスボトル",
        ),
        OrderLine(
            line_no=2,
            item_id="jacket",
            variation=("jacketlnv",),
            sku="jacketlnv",
            quantity=1,
            name="ジャケット",
        ),
    ),
)


@pytest.mark.parametrize(("shape", "raw"), every_shape_with_subject(HAND_WRITTEN, ponpare.SUBJECT))
def test_hand_written_mail_parses_in_every_transport_shape(shape: str, raw: bytes) -> None:
    assert ponpare.parse_order_mail(raw) == EXPECTED, shape


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (("[注文番号]", "注文番号"), r"no \[注文番号\] line"),
        (("[商品]", "商品"), r"no \[商品\] block"),
        (("（jacket）", " jacket"), r"item 2 has no （code）"),
        (("× 1(個)", "1個"), "item 2 has no quantity"),
        (("2024/01/02 10:11:12", "近日"), "is not a date and time"),
    ],
)
def test_broken_mail_says_why(edit: tuple[str, str], reason: str) -> None:
    raw = single_part(HAND_WRITTEN.replace(*edit), subject=ponpare.SUBJECT)
    with pytest.raises(MailError, match=reason):
        ponpare.parse_order_mail(raw)


def test_other_subject_is_not_an_order() -> None:
    with pytest.raises(MailError, match="not an order confirmation"):
        ponpare.parse_order_mail(
            single_part(HAND_WRITTEN, subject="【ポンパレモール】発送のお知らせ")
        )
