from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from protocols.malls import wowma
from protocols.malls.base import (
    ApiAccount,
    HttpRequest,
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

ACCOUNT = ApiAccount(base_url="https://api.manager.wowma.jp", secret="key", seller_id="64197720")
HEADER = ",".join(wowma.STOCK_HEADER)


def read(content: bytes, name: str = "stock.csv") -> list[StockRow | RowError]:
    return list(wowma.read_stock_file(name, csv_records([content])))


def test_join_sku_skips_missing_axes() -> None:
    assert wowma.join_sku("item", ("H1", "V1")) == "itemH1V1"
    assert wowma.join_sku("item", ("H1", "-")) == "itemH1"
    assert wowma.join_sku("item", ("", "V1")) == "itemV1"
    assert wowma.join_sku("000123", ()) == "000123"


UPDATES = [
    StockUpdate("000123", (), 5),
    StockUpdate("㈱髙①～", (), 0),
    StockUpdate("shirt", ("red", "M"), 7),
    StockUpdate("shirt", ("0001", ""), 999),
]


def test_stock_csv_round_trip() -> None:
    content = wowma.write_stock_files(UPDATES)["stock.csv"]
    assert content.splitlines()[0] == ",".join(f'"{c}"' for c in wowma.STOCK_HEADER).encode()
    rows = read(content)
    assert [(r.item_id, r.variation, r.quantity) for r in rows if isinstance(r, StockRow)] == [
        (u.item_id, u.variation, u.quantity) for u in UPDATES
    ]
    assert [r.sku for r in rows if isinstance(r, StockRow)] == [
        "000123",
        "㈱髙①～",
        "shirtredM",
        "shirt0001",
    ]
    assert read(content, "wowma_stock") == rows


def test_stock_csv_reads_hyphen_axes_names_and_errors() -> None:
    content = (
        f"{HEADER}\r\n"
        "U,,shirt,2,,①赤～,red,1,㈱髙,-,1,3,,,,\r\n"
        "U,,shirt,2,,,,,,,,,,,,\r\n"
        "D,,old,1,9,,,,,,,,,,,\r\n"
        "U,,bad,3,1,,,,,,,,,,,\r\n"
        "U,,cnt,1,x,,,,,,,,,,,\r\n"
    ).encode("cp932") + b"U,,b\x81\x20,1,1,,,,,,,,,,,\r\n"
    result = read(content)
    assert result[0] == StockRow(
        line=2,
        sku="shirtred",
        item_id="shirt",
        variation=("red", ""),
        quantity=3,
        name="①赤～ ㈱髙",
    )
    errors = [r for r in result[1:] if isinstance(r, RowError)]
    assert [(e.line, e.field) for e in errors] == [(5, "stockSegment"), (6, "stockCount"), (7, "")]
    assert len(result) == 4


def test_missing_column_is_reported() -> None:
    (error,) = read(b"itemCode,stockSegment,stockCount\r\na,1,1\r\n")
    assert isinstance(error, RowError)
    assert (error.line, error.field) == (1, "choicesStockHorizontalCode")


def test_update_stock_groups_choices_per_item_and_round_trips() -> None:
    requests = wowma.build_stock_requests(UPDATES, ACCOUNT)
    assert len(requests) == 3  # one item per request; shirt's two choices travel together
    shirt = ET.fromstring(requests[2].body)
    assert shirt.findtext("shopId") == "64197720"
    assert shirt.findtext("stockUpdateItem/stockSegment") == "2"
    assert len(shirt.findall("stockUpdateItem/choicesStocks")) == 2
    assert dict(requests[0].headers)["Authorization"] == "Bearer key"
    assert [u for r in requests for u in wowma.parse_stock_request(r)] == UPDATES


def test_update_stock_refuses_mixed_segments_and_bad_bodies() -> None:
    with pytest.raises(ValueError, match="item stock and choice stock"):
        wowma.build_stock_requests(
            [StockUpdate("a", (), 1), StockUpdate("a", ("H", "V"), 1)], ACCOUNT
        )
    bad = HttpRequest(method="POST", path=wowma.STOCK_PATH, body=b"<request><shopId>1</shopId>")
    with pytest.raises(ValueError, match="not XML"):
        wowma.parse_stock_request(bad)


def test_update_stock_responses() -> None:
    wowma.parse_stock_response(200, wowma.render_stock_response(UPDATES))
    error = wowma.render_error(400, "itemCode が存在しません", "PME0106")
    with pytest.raises(ValueError, match=r"^HTTP 400: PME0106 itemCode が存在しません$"):
        wowma.parse_stock_response(400, error)
    # Wowma answers 200 with status 1 for a refused update.
    with pytest.raises(ValueError, match="HTTP 200: PME0106"):
        wowma.parse_stock_response(200, error)


ORDER = MallOrder(
    order_no="12345678",
    ordered_at="2026-06-12T10:31:07+09:00",
    lines=(
        OrderLine(line_no=1, item_id="000123", sku="000123", quantity=2, name="水筒：500ml"),
        OrderLine(
            line_no=2,
            item_id="shirt",
            variation=("red", ""),
            sku="shirtred",
            quantity=1,
            name="①㈱髙～シャツ",
        ),
    ),
)


def test_mail_round_trip() -> None:
    assert wowma.parse_order_mail(wowma.render_order_mail(ORDER, "テスト店")) == ORDER


HAND_WRITTEN = """テスト店 御中

■注文番号：87654321
■注文日時：2024/01/02 10:11:12

■ご注文商品
------------------------------------------------------------
商品名：ステンレスボトル
商品コード：bottle-500
単価：2,980円
数量：2
------------------------------------------------------------
商品名：ジャケット
商品コード：jacket
横軸コード：-
縦軸コード：L
単価：21,560円
数量：1
------------------------------------------------------------
■合計金額：27,520円
"""
EXPECTED = MallOrder(
    order_no="87654321",
    ordered_at="2024-01-02T10:11:12+09:00",
    lines=(
        OrderLine(
            line_no=1, item_id="bottle-500", sku="bottle-500", quantity=2, name="ステンレスボトル"
        ),
        OrderLine(
            line_no=2,
            item_id="jacket",
            variation=("", "L"),
            sku="jacketL",
            quantity=1,
            name="ジャケット",
        ),
    ),
)


@pytest.mark.parametrize(("shape", "raw"), every_shape_with_subject(HAND_WRITTEN, wowma.SUBJECT))
def test_hand_written_mail_parses_in_every_transport_shape(shape: str, raw: bytes) -> None:
    assert wowma.parse_order_mail(raw) == EXPECTED, shape


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (("■注文番号：87654321", ""), "no 注文番号 line"),
        (("商品コード：jacket", ""), "item 2: no 商品コード line"),
        (("数量：1\n", "数量：一\n"), "is not a whole number"),
        (("商品名：", "品名："), "no 商品名 line"),
    ],
)
def test_broken_mail_says_why(edit: tuple[str, str], reason: str) -> None:
    raw = single_part(HAND_WRITTEN.replace(*edit), subject=wowma.SUBJECT)
    with pytest.raises(MailError, match=reason):
        wowma.parse_order_mail(raw)


def test_other_subject_is_not_an_order() -> None:
    with pytest.raises(MailError, match="not an order confirmation"):
        wowma.parse_order_mail(single_part(HAND_WRITTEN, subject="【au PAY マーケット】発送完了"))
