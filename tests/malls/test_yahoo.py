from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ET

import pytest

from protocols.malls import yahoo
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

ACCOUNT = ApiAccount(base_url="https://circus.shopping.yahooapis.jp", secret="tok", seller_id="st")


def read(content: bytes, name: str = "quantity.csv") -> list[StockRow | RowError]:
    return list(yahoo.read_stock_file(name, csv_records([content])))


UPDATES = [
    StockUpdate("000123", (), 5),
    StockUpdate("㈱髙①～", (), 0),
    StockUpdate("shirt", ("shirt-red-m",), 12),
    StockUpdate("shirt", ("0007",), 999),
]


def test_join_sku_is_sub_code_else_code() -> None:
    assert yahoo.join_sku("shirt", ("shirt-red",)) == "shirt-red"
    assert yahoo.join_sku("000123", ()) == "000123"
    assert yahoo.join_sku("000123", ("",)) == "000123"


def test_quantity_csv_round_trip() -> None:
    files = yahoo.write_stock_files(UPDATES)
    content = files["quantity.csv"]
    assert content.splitlines()[0] == b'"code","sub-code","quantity","allow-overdraft"'
    rows = read(content)
    assert [
        (r.line, r.item_id, r.variation, r.sku, r.quantity) for r in rows if isinstance(r, StockRow)
    ] == [
        (2, "000123", (), "000123", 5),
        (3, "㈱髙①～", (), "㈱髙①～", 0),
        (4, "shirt", ("shirt-red-m",), "shirt-red-m", 12),
        (5, "shirt", ("0007",), "0007", 999),
    ]
    assert len(rows) == 4
    assert read(content, "yahoo_quantity") == rows


def test_quantity_csv_with_name_column_and_errors() -> None:
    content = (
        "code,name,sub-code,quantity,allow-overdraft,stock-close\r\n"
        "000123,①㈱髙～ボトル,,3,0,0\r\n"
        "a,x,,12.0,0,0\r\n"
        ",x,,1,0,0\r\n"
    ).encode("cp932") + b"b,\x81\x20,,1,0,0\r\n"
    result = read(content)
    assert result[0] == StockRow(
        line=2, sku="000123", item_id="000123", quantity=3, name="①㈱髙～ボトル"
    )
    errors = [r for r in result[1:] if isinstance(r, RowError)]
    assert [(e.line, e.field) for e in errors] == [(3, "quantity"), (4, "code"), (5, "")]
    assert "not valid cp932" in errors[2].reason


def test_missing_quantity_column_is_reported() -> None:
    (error,) = read(b"code,sub-code\r\na,b\r\n")
    assert isinstance(error, RowError)
    assert (error.line, error.field) == (1, "quantity")


def test_set_stock_batches_of_1000_round_trip() -> None:
    updates = [StockUpdate(f"{n:05d}", (f"{n:05d}-s",) if n % 3 else (), n) for n in range(2500)]
    requests = yahoo.build_stock_requests(updates, ACCOUNT)
    assert len(requests) == 3
    first = requests[0]
    assert (first.method, first.path) == ("POST", "/ShoppingWebService/V1/setStock")
    assert dict(first.headers)["Authorization"] == "Bearer tok"
    form = dict(urllib.parse.parse_qsl(first.body.decode()))
    assert form["seller_id"] == "st"
    assert form["item_code"].split(",")[:2] == ["00000", "00001:00001-s"]
    assert len(form["quantity"].split(",")) == 1000
    assert [u for r in requests for u in yahoo.parse_stock_request(r)] == updates


def test_set_stock_refuses_what_it_cannot_express() -> None:
    with pytest.raises(ValueError, match="contains ','"):
        yahoo.build_stock_requests([StockUpdate("a,b", (), 1)], ACCOUNT)
    with pytest.raises(ValueError, match="negative"):
        yahoo.build_stock_requests([StockUpdate("a", (), -1)], ACCOUNT)
    relative = HttpRequest(
        method="POST",
        path=yahoo.STOCK_PATH,
        body=b"seller_id=st&item_code=a&quantity=%2B1",
    )
    with pytest.raises(ValueError, match="not an absolute whole number"):
        yahoo.parse_stock_request(relative)


def test_set_stock_responses() -> None:
    ok = yahoo.render_stock_response(UPDATES[2:3])
    root = ET.fromstring(ok)
    assert root.tag == "ResultSet"
    assert root.findtext("Result/SubCode") == "shirt-red-m"
    yahoo.parse_stock_response(200, ok)
    error = yahoo.render_error(400, "INI is no longer supported", "st-02104")
    with pytest.raises(ValueError, match="HTTP 400: st-02104 INI is no longer supported"):
        yahoo.parse_stock_response(400, error)
    with pytest.raises(ValueError, match="HTTP 502"):
        yahoo.parse_stock_response(502, b"<html>Bad Gateway")


ORDER = MallOrder(
    order_no="teststore-10000001",
    ordered_at="2026-06-12T10:31:07+09:00",
    lines=(
        OrderLine(line_no=1, item_id="000123", sku="000123", quantity=2, name="水筒（500ml）"),
        OrderLine(
            line_no=2,
            item_id="shirt",
            variation=("shirt-red-m",),
            sku="shirt-red-m",
            quantity=1000,
            name="①㈱髙～シャツ",
        ),
    ),
)


def test_mail_round_trip() -> None:
    raw = yahoo.render_order_mail(ORDER, "テストストア")
    assert raw.startswith(b"From: ") and b"\r\nMessage-ID: <" in raw
    assert yahoo.parse_order_mail(raw) == ORDER


HAND_WRITTEN = """テストストア ご担当者様

注文ID　：teststore-10000042
注文日時：2024年01月02日 10時11分12秒

商品情報
￣￣￣￣￣￣￣￣￣￣
（1）ステンレスボトル
商品コード：bottle-500
カラー：ブラック
2,980円×1＝2,980円

（2）ジャケット
商品コード：jacket/jacket-l
サイズ：L
21,560円×2＝43,120円
===============
商品の合計金額 ：46,100円
合計金額 ：46,100円
"""
EXPECTED = MallOrder(
    order_no="teststore-10000042",
    ordered_at="2024-01-02T10:11:12+09:00",
    lines=(
        OrderLine(
            line_no=1, item_id="bottle-500", sku="bottle-500", quantity=1, name="ステンレスボトル"
        ),
        OrderLine(
            line_no=2,
            item_id="jacket",
            variation=("jacket-l",),
            sku="jacket-l",
            quantity=2,
            name="ジャケット",
        ),
    ),
)
SUBJECT = "【Yahoo!ショッピング】注文確認：テストストア"


@pytest.mark.parametrize(("shape", "raw"), every_shape_with_subject(HAND_WRITTEN, SUBJECT))
def test_hand_written_mail_parses_in_every_transport_shape(shape: str, raw: bytes) -> None:
    assert yahoo.parse_order_mail(raw) == EXPECTED, shape


@pytest.mark.parametrize(
    ("subject", "reason"),
    [
        ("Yahoo!ショッピング テストストアでのご注文:12345", "old-format"),
        ("【Yahoo!ウォレット】ご利用内容", "not an order confirmation"),
    ],
)
def test_other_mails_are_refused(subject: str, reason: str) -> None:
    with pytest.raises(MailError, match=reason):
        yahoo.parse_order_mail(single_part(HAND_WRITTEN, subject=subject))


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (("注文ID　：teststore-10000042", ""), "no 注文ID line"),
        (("注文日時：", "注文日："), "no 注文日時 line"),
        (("商品情報", "商品"), "no 商品情報 section"),
        (("21,560円×2＝43,120円", "21,560円"), "item 2 has no quantity"),
        (("2,980円×1＝", "2,980円×0＝"), "item 1 has quantity 0"),
    ],
)
def test_broken_mail_says_why(edit: tuple[str, str], reason: str) -> None:
    with pytest.raises(MailError, match=reason):
        yahoo.parse_order_mail(single_part(HAND_WRITTEN.replace(*edit), subject=SUBJECT))
