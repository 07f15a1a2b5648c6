from __future__ import annotations

import pytest

from protocols.malls import futureshop
from protocols.malls.base import (
    MailError,
    MallOrder,
    OrderLine,
    RowError,
    StockRow,
    StockUpdate,
    csv_records,
)
from tests.malls.mail_variants import alternative, every_shape, single_part


def read(name: str, content: bytes, encoding: str = "cp932") -> list[StockRow | RowError]:
    return list(futureshop.read_stock_file(name, csv_records([content], encoding)))


UPDATES = [
    StockUpdate("000123", (), 5),
    StockUpdate("㈱髙①～", (), 0),
    StockUpdate("SHIRT-01", ("001",), 12),
    StockUpdate("SHIRT-01", ("002",), 99999),
]


def test_stock_files_round_trip_keeps_codes_as_text() -> None:
    files = futureshop.write_stock_files(UPDATES)
    assert set(files) == {"goodsStock.csv", "goodsVariation.csv"}
    assert files["goodsStock.csv"].startswith(
        '"コントロールカラム","商品番号","在庫数"\r\n'.encode("cp932")
    )
    rows = read("goodsStock.csv", files["goodsStock.csv"]) + read(
        "goodsVariation.csv", files["goodsVariation.csv"]
    )
    assert all(isinstance(r, StockRow) for r in rows)
    assert [(r.item_id, r.variation, r.quantity) for r in rows if isinstance(r, StockRow)] == [
        (u.item_id, u.variation, u.quantity) for u in UPDATES
    ]
    assert [r.sku for r in rows if isinstance(r, StockRow)] == [
        "000123",
        "㈱髙①～",
        "SHIRT-01001",
        "SHIRT-01002",
    ]
    assert [r.line for r in rows if isinstance(r, StockRow)] == [2, 3, 2, 3]


def test_import_format_names_select_the_same_codecs() -> None:
    files = futureshop.write_stock_files(UPDATES)
    assert read("futureshop_stock", files["goodsStock.csv"]) == read(
        "goodsStock.csv", files["goodsStock.csv"]
    )
    assert read("futureshop_variation", files["goodsVariation.csv"])[0] == StockRow(
        line=2, sku="SHIRT-01001", item_id="SHIRT-01", variation=("001",), quantity=12
    )
    with pytest.raises(ValueError, match="unknown FutureShop stock file"):
        read("goods.csv", b"")


def test_only_files_with_rows_are_written() -> None:
    assert set(futureshop.write_stock_files([StockUpdate("A", (), 1)])) == {"goodsStock.csv"}


def test_invalid_cp932_byte_is_a_row_error_on_its_line() -> None:
    content = (
        '"コントロールカラム","商品番号","在庫数"\r\n"","A1","3"\r\n'.encode("cp932")
        + b'"","B\x81\x20","4"\r\n'
    )
    rows = read("goodsStock.csv", content)
    assert isinstance(rows[0], StockRow) and rows[0].sku == "A1"
    assert isinstance(rows[1], RowError) and rows[1].line == 3
    assert "0x81" in rows[1].reason


def test_non_integer_quantity_names_line_and_field() -> None:
    content = "商品番号,在庫数\r\n000123,3\r\n000124,三\r\n000125,1.5\r\n".encode("cp932")
    rows = read("goodsStock.csv", content)
    assert rows[0] == StockRow(line=2, sku="000123", item_id="000123", quantity=3)
    assert rows[1] == RowError(
        line=3, code="000124", field="在庫数", reason="'三' is not an integer"
    )
    assert isinstance(rows[2], RowError) and rows[2].line == 4 and rows[2].field == "在庫数"


def test_control_column_d_sets_zero_and_others_fail() -> None:
    content = '"コントロールカラム","商品番号","在庫数"\r\n"d","A",""\r\n"x","B","1"\r\n'.encode(
        "cp932"
    )
    rows = read("goodsStock.csv", content)
    assert rows[0] == StockRow(line=2, sku="A", item_id="A", quantity=0)
    assert isinstance(rows[1], RowError) and rows[1].field == "コントロールカラム"


def test_missing_header_column_stops_the_file() -> None:
    rows = read("goodsVariation.csv", "商品番号,在庫数\r\nA,1\r\n".encode("cp932"))
    assert len(rows) == 1
    assert isinstance(rows[0], RowError) and rows[0].line == 1 and rows[0].field == "規格コード"


def test_utf8_file_with_bom_reads() -> None:
    content = "\ufeff商品番号,規格コード,在庫数\n000123,01,7\n".encode()
    assert read("goodsVariation.csv", content, "utf-8") == [
        StockRow(line=2, sku="00012301", item_id="000123", variation=("01",), quantity=7)
    ]


def test_write_refuses_negative_and_over_limit() -> None:
    with pytest.raises(ValueError, match="negative"):
        futureshop.write_stock_files([StockUpdate("A", (), -1)])
    too_many = [StockUpdate(f"{n:06d}", (), 1) for n in range(futureshop.GOODS_STOCK_MAX_ROWS + 1)]
    with pytest.raises(ValueError, match="at most 5000"):
        futureshop.write_stock_files(too_many)
    with pytest.raises(ValueError, match="one spec code"):
        futureshop.write_stock_files([StockUpdate("A", ("R", "M"), 1)])


ORDER = MallOrder(
    order_no="FS0000123",
    ordered_at="2024-01-02T10:11:12+09:00",
    lines=(
        OrderLine(
            line_no=1,
            item_id="SHIRT-01",
            variation=("001",),
            sku="SHIRT-01001",
            quantity=2,
            name="【送料無料】Tシャツ",
        ),
        OrderLine(line_no=2, item_id="000123", sku="000123", quantity=1, name="㈱髙①～マグカップ"),
    ),
)


def test_order_mail_round_trip() -> None:
    raw = futureshop.render_order_mail(ORDER, "テスト商店")
    for header in (b"From:", b"To:", b"Subject:", b"Date:", b"Message-ID:"):
        assert header in raw
    assert b"\r\n" in raw
    assert futureshop.parse_order_mail(raw) == ORDER


def test_order_mail_without_special_characters_is_iso_2022_jp() -> None:
    order = MallOrder(
        order_no="FS1",
        ordered_at="2024-01-02T10:11:12+09:00",
        lines=(OrderLine(line_no=1, item_id="A", sku="A", quantity=1, name="テスト"),),
    )
    raw = futureshop.render_order_mail(order, "テスト商店")
    assert b'charset="iso-2022-jp"' in raw
    assert futureshop.parse_order_mail(raw) == order


BODY = """テスト商店をご利用いただき、誠にありがとうございます。

注文コード：FS0000777
注文日時：2024年03月04日 05時06分07秒
氏名：注文 太郎
支払方法：銀行振込

■ご注文商品
商品番号：000123
注文商品名：【送料無料】Tシャツ【01】レッド/M
単価：￥1,000
数量：2
小計：￥2,000
----------
商品番号：MUG
注文商品名：マグカップ
単価：￥500
数量：１０
小計：￥5,000
送料：￥0
合計金額(税込)：￥7,000
　送付先1氏名：注文 太郎
"""
EXPECTED = MallOrder(
    order_no="FS0000777",
    ordered_at="2024-03-04T05:06:07+09:00",
    lines=(
        OrderLine(
            line_no=1,
            item_id="000123",
            variation=("01",),
            sku="00012301",
            quantity=2,
            name="【送料無料】Tシャツ",
        ),
        OrderLine(line_no=2, item_id="MUG", sku="MUG", quantity=10, name="マグカップ"),
    ),
)


@pytest.mark.parametrize(("shape", "raw"), every_shape(BODY))
def test_hand_written_mail_in_every_shape(shape: str, raw: bytes) -> None:
    assert futureshop.parse_order_mail(raw) == EXPECTED, shape


def test_html_table_mail() -> None:
    html = (
        "<html><body><table>"
        "<tr><th>注文コード</th><td>FS0000777</td></tr>"
        "<tr><th>注文日時</th><td>2024年03月04日 05時06分07秒</td></tr>"
        "<tr><th>商品番号</th><td>MUG</td></tr><tr><th>注文商品名</th><td>マグ&amp;カップ</td></tr>"
        "<tr><th>数量</th><td>3</td></tr></table></body></html>"
    )
    order = futureshop.parse_order_mail(single_part(html, subtype="html"))
    assert order.lines == (
        OrderLine(line_no=1, item_id="MUG", sku="MUG", quantity=3, name="マグ&カップ"),
    )


def test_cp932_only_characters_in_a_shift_jis_mail() -> None:
    body = BODY.replace("マグカップ", "㈱髙①～カップ")
    order = futureshop.parse_order_mail(single_part(body, charset="shift_jis"))
    assert order.lines[1].name == "㈱髙①～カップ"
    assert (
        futureshop.parse_order_mail(alternative(body, cte="quoted-printable")).lines[1].name
        == "㈱髙①～カップ"
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty mail"),
        (b"just some words without any header", "no mail header"),
        (single_part(BODY.replace("注文コード：FS0000777\n", "")), "no 注文コード line"),
        (single_part(BODY.split("■ご注文商品")[0]), "no item"),
        (
            single_part(BODY.replace("数量：2", "数量：二")),
            "item 1 数量 '二' is not a whole number",
        ),
        (single_part(BODY.replace("数量：2", "数量：0")), "数量 is 0"),
        (single_part(BODY.replace("2024年03月04日", "2024年13月04日")), "注文日時"),
        (single_part(BODY.replace("商品番号：MUG", "商品番号：")), "item 2: no 商品番号 line"),
        (
            b"From: a@example.jp\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\xff\xfe\xfd",
            "not valid utf-8",
        ),
        (
            b"From: a@example.jp\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n",
            "not valid base64",
        ),
        (
            b"From: a@example.jp\r\nContent-Type: image/png\r\n\r\nPNG",
            "no text/plain or text/html part",
        ),
    ],
)
def test_broken_mail_raises_mail_error_with_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(MailError, match=reason):
        futureshop.parse_order_mail(raw)


def test_cancelled_order_has_no_confirmation_mail() -> None:
    with pytest.raises(ValueError, match="only new orders"):
        futureshop.render_order_mail(
            MallOrder(
                order_no="X", ordered_at=ORDER.ordered_at, status="cancelled", lines=ORDER.lines
            ),
            "S",
        )


def test_join_sku() -> None:
    assert futureshop.join_sku("000123", ()) == "000123"
    assert futureshop.join_sku("000123", ("01",)) == "00012301"


def test_one_upload_of_the_most_quantities_stays_within_futureshop_s_limits() -> None:
    plain = [StockUpdate(f"p{n}", (), 1) for n in range(futureshop.UPLOAD_MAX_UPDATES)]
    variations = [StockUpdate(f"v{n}", ("c",), 1) for n in range(futureshop.UPLOAD_MAX_UPDATES)]
    assert futureshop.write_stock_files(plain) and futureshop.write_stock_files(variations)
