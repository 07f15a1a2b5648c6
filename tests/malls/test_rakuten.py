from __future__ import annotations

import base64
import email
import json
from pathlib import Path

import msgspec
import pytest

from protocols.malls import rakuten
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

ACCOUNT = ApiAccount(base_url="https://api.rms.rakuten.co.jp", secret="SP123_abc:SL456_def")


def read(name: str, content: bytes, encoding: str = "cp932") -> list[StockRow | RowError]:
    return list(rakuten.read_stock_file(name, csv_records([content], encoding)))


def rows_of(result: list[StockRow | RowError]) -> list[StockRow]:
    assert all(isinstance(r, StockRow) for r in result), result
    return [r for r in result if isinstance(r, StockRow)]


def errors_of(result: list[StockRow | RowError]) -> list[RowError]:
    return [r for r in result if isinstance(r, RowError)]


def test_join_sku_covers_legacy_choices_and_sku_variants() -> None:
    assert rakuten.join_sku("000123", ()) == "000123"
    assert rakuten.join_sku("shirt", ("X11", "Y14")) == "shirtX11Y14"
    assert rakuten.join_sku("shirt", ("X11", "")) == "shirtX11"
    assert rakuten.join_sku("shirt", ("sku:shirt-red-m",)) == "shirt-red-m"
    # The migrated single variant stands for the item itself.
    assert rakuten.sku_variation("normal-inventory") == ()
    assert rakuten.sku_variation("01") == ("sku:01",)


UPDATES = [
    StockUpdate("000123", (), 5),
    StockUpdate("㈱髙①～", (), 0),
    StockUpdate("shirt", ("X11", "Y14"), 7),
    StockUpdate("shirt", ("0001", ""), 99999),
    StockUpdate("bag", ("sku:0042",), 3),
    StockUpdate("bag", ("sku:髙①～",), 1),
]


def test_stock_files_round_trip_with_text_codes() -> None:
    files = rakuten.write_stock_files(UPDATES)
    assert list(files) == ["item.csv", "select.csv", "normal-item.csv"]
    assert files["item.csv"].startswith(
        '"コントロールカラム","商品管理番号（商品URL）","在庫タイプ","在庫数"'.encode("cp932")
    )
    assert files["select.csv"].splitlines()[0] == ",".join(
        f'"{c}"' for c in rakuten.SELECT_HEADER
    ).encode("cp932")
    rows = (
        rows_of(read("item.csv", files["item.csv"]))
        + rows_of(read("select.csv", files["select.csv"]))
        + rows_of(read("normal-item.csv", files["normal-item.csv"]))
    )
    assert [(r.item_id, r.variation, r.quantity) for r in rows] == [
        (u.item_id, u.variation, u.quantity) for u in UPDATES
    ]
    assert [r.sku for r in rows] == [
        "000123",
        "㈱髙①～",
        "shirtX11Y14",
        "shirt0001",
        "0042",
        "髙①～",
    ]


def test_only_files_with_rows_are_written_and_quantity_is_capped() -> None:
    files = rakuten.write_stock_files([StockUpdate("a", (), 150_000)])
    assert list(files) == ["item.csv"]
    assert rows_of(read("rakuten_item", files["item.csv"]))[0].quantity == 99_999


def test_negative_quantity_is_never_written() -> None:
    with pytest.raises(ValueError, match="negative"):
        rakuten.write_stock_files([StockUpdate("a", (), -1)])


def test_item_csv_skips_items_whose_stock_is_per_choice() -> None:
    content = (
        "コントロールカラム,商品管理番号（商品URL）,在庫タイプ,在庫数\r\n"
        "u,plain,1,4\r\n"
        "u,choices,2,\r\n"
        "u,nostock,0,\r\n"
        "d,gone,1,9\r\n"
        "u,odd,7,1\r\n"
    ).encode("cp932")
    result = read("item.csv", content)
    assert [(r.sku, r.quantity) for r in result if isinstance(r, StockRow)] == [("plain", 4)]
    (error,) = errors_of(result)
    assert (error.line, error.field, error.code) == (6, "在庫タイプ", "odd")


def test_select_csv_reads_choice_names_and_skips_plain_options() -> None:
    content = (
        "項目選択肢用コントロールカラム,商品管理番号（商品URL）,選択肢タイプ,Select/Checkbox用項目名,"
        "項目選択肢別在庫用横軸選択肢,項目選択肢別在庫用横軸選択肢子番号,項目選択肢別在庫用縦軸選択肢,"
        "項目選択肢別在庫用縦軸選択肢子番号,項目選択肢別在庫用在庫数\r\n"
        "u,shirt,s,ラッピング,,,,,\r\n"
        "u,shirt,i,,①赤～,001,㈱髙サイズ,M,12\r\n"
    ).encode("cp932")
    (row,) = rows_of(read("select.csv", content))
    assert row == StockRow(
        line=3,
        sku="shirt001M",
        item_id="shirt",
        variation=("001", "M"),
        quantity=12,
        name="①赤～ ㈱髙サイズ",
    )


def test_normal_item_csv_sku_rows_inherit_the_parent_item() -> None:
    content = (
        "商品管理番号（商品URL）,商品番号,SKU管理番号,システム連携用SKU番号,在庫数\r\n"
        "tshirt,T-001,,,\r\n"
        ",,tshirt-red,sys-1,8\r\n"
        "tshirt,,normal-inventory,,2\r\n"
    ).encode("cp932")
    rows = rows_of(read("rakuten_normal_item", content))
    assert [(r.line, r.item_id, r.variation, r.sku, r.quantity) for r in rows] == [
        (3, "tshirt", ("sku:tshirt-red",), "tshirt-red", 8),
        (4, "tshirt", (), "tshirt", 2),
    ]


@pytest.mark.parametrize("bad", [b"\x81\x20", b"\x85\x40", b"\xff"])
def test_undecodable_byte_is_a_row_error_with_its_line(bad: bytes) -> None:
    content = (
        "コントロールカラム,商品管理番号（商品URL）,在庫タイプ,在庫数\r\n".encode("cp932")
        + b"u,ok,1,1\r\n"
        + b"u,bad"
        + bad
        + b",1,2\r\n"
        + b"u,after,1,3\r\n"
    )
    result = read("item.csv", content)
    assert [r.sku for r in result if isinstance(r, StockRow)] == ["ok", "after"]
    (error,) = errors_of(result)
    assert error.line == 3
    assert "not valid cp932" in error.reason


@pytest.mark.parametrize("value", ["12.0", "１２", "", "4.97E+3", "1,000"])
def test_non_integer_quantity_names_line_and_field(value: str) -> None:
    content = (
        "コントロールカラム,商品管理番号（商品URL）,在庫タイプ,在庫数\r\n"
        + f'u,000123,1,"{value}"\r\n'
    ).encode("cp932")
    (error,) = read("item.csv", content)
    assert isinstance(error, RowError)
    assert (error.line, error.field, error.code) == (2, "在庫数", "000123")


def test_missing_required_column_is_reported_on_the_header_line() -> None:
    content = "コントロールカラム,商品管理番号（商品URL）,在庫数\r\nu,a,1\r\n".encode("cp932")
    (error,) = read("item.csv", content)
    assert isinstance(error, RowError)
    assert (error.line, error.field) == (1, "在庫タイプ")


def test_unknown_file_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown rakuten stock file"):
        rakuten.read_stock_file("items.txt", [])


# --- Inventory API ---------------------------------------------------------------------


def test_bulk_upsert_splits_at_400_and_round_trips() -> None:
    updates = [StockUpdate(f"{n:06d}", ("sku:v1",) if n % 2 else (), n % 7) for n in range(401)]
    requests = rakuten.build_stock_requests(updates, ACCOUNT)
    assert len(requests) == 2
    first = requests[0]
    assert (first.method, first.path) == ("POST", "/es/2.0/inventories/bulk-upsert")
    auth = dict(first.headers)["Authorization"]
    assert auth == "ESA " + base64.b64encode(b"SP123_abc:SL456_def").decode()
    body = json.loads(first.body)
    assert len(body["inventories"]) == 400
    assert body["inventories"][0] == {
        "manageNumber": "000000",
        "variantId": "normal-inventory",
        "mode": "ABSOLUTE",
        "quantity": 0,
    }
    parsed = [u for r in requests for u in rakuten.parse_stock_request(r)]
    assert parsed == updates


def test_bulk_upsert_refuses_legacy_choices_and_bad_credentials() -> None:
    with pytest.raises(ValueError, match=r"select\.csv"):
        rakuten.build_stock_requests([StockUpdate("a", ("X1", "Y1"), 1)], ACCOUNT)
    with pytest.raises(ValueError, match="serviceSecret:licenseKey"):
        rakuten.build_stock_requests(
            [StockUpdate("a", (), 1)], ApiAccount(base_url="", secret="no-colon")
        )


def test_parse_stock_request_refuses_relative_mode() -> None:
    (request,) = rakuten.build_stock_requests([StockUpdate("a", (), 1)], ACCOUNT)
    relative = request.body.replace(b"ABSOLUTE", b"RELATIVE")
    with pytest.raises(ValueError, match="RELATIVE"):
        rakuten.parse_stock_request(
            type(request)(method="POST", path=request.path, headers=request.headers, body=relative)
        )


def test_stock_response_success_and_error() -> None:
    rakuten.parse_stock_response(204, b"")
    body = rakuten.render_error(400, "manageNumber is too long")
    assert json.loads(body) == {
        "errors": [{"code": "GE0001", "message": "manageNumber is too long"}]
    }
    with pytest.raises(ValueError, match="HTTP 400: GE0001 manageNumber is too long"):
        rakuten.parse_stock_response(400, body)
    with pytest.raises(ValueError, match="HTTP 503: Service Unavailable"):
        rakuten.parse_stock_response(503, b"Service Unavailable")


# --- order mails -----------------------------------------------------------------------

MAIL_ORDER = MallOrder(
    order_no="123456-20260612-0123456789",
    ordered_at="2026-06-12T10:31:07+09:00",
    lines=(
        OrderLine(line_no=1, item_id="000123", sku="000123", quantity=2, name="水筒 (500ml)"),
        OrderLine(
            line_no=2,
            item_id="shirt",
            variation=("sku:shirt-red",),
            sku="shirt-red",
            quantity=1200,
            name="Tシャツ",
        ),
    ),
)


def test_mail_round_trip_is_iso_2022_jp() -> None:
    raw = rakuten.render_order_mail(MAIL_ORDER, "テスト商店")
    assert b'charset="iso-2022-jp"' in raw
    assert b"Message-ID: <" in raw and b"Date: Fri, 12 Jun 2026 10:31:07 +0900" in raw
    assert rakuten.parse_order_mail(raw) == MAIL_ORDER


def test_mail_round_trip_with_cp932_only_names() -> None:
    order = MallOrder(
        order_no="1-20260612-1",
        ordered_at="2026-06-12T10:31:07+09:00",
        lines=(OrderLine(line_no=1, item_id="A-01", sku="A-01", quantity=1, name="①㈱髙～"),),
    )
    assert rakuten.parse_order_mail(rakuten.render_order_mail(order, "㈱髙商店")) == order


def test_cancellation_mail_round_trip() -> None:
    cancelled = MallOrder(
        order_no=MAIL_ORDER.order_no,
        ordered_at=MAIL_ORDER.ordered_at,
        status="cancelled",
        lines=MAIL_ORDER.lines,
        cancelled_lines=(1, 2),
    )
    assert rakuten.parse_order_mail(rakuten.render_order_mail(cancelled, "店")) == cancelled


def test_legacy_choice_mail_carries_the_joined_code() -> None:
    order = MallOrder(
        order_no="1-20260612-2",
        ordered_at="2026-06-12T10:31:07+09:00",
        lines=(
            OrderLine(
                line_no=1, item_id="shirt", variation=("X1", "Y2"), sku="shirtX1Y2", quantity=1
            ),
        ),
    )
    (line,) = rakuten.parse_order_mail(rakuten.render_order_mail(order, "店")).lines
    assert (line.item_id, line.variation, line.sku) == ("shirtX1Y2", (), "shirtX1Y2")


HAND_WRITTEN = """山田 太郎 様

この度は楽天市場内のショップ「テスト商店」をご利用いただきまして、まことにありがとうございます。

**********************************************************************
  [受注番号] 123456-20220112-00012345
  [日時]     2022-01-12 09:05:00
  [注文者]   山田 太郎 (ヤマダ タロウ) 様
             〒100-0001 東京都千代田区千代田1-1
             (TEL) 03-0000-0000
  [支払方法] クレジットカード
  [ショップ名] テスト商店
==========
  [送付先]   山田 太郎 (ヤマダ タロウ) 様
  [商品]
  【送料無料】ステンレス (保温) ボトル (bottle-500)
  カラー:ブラック
  価格 2,980(円) x 1(個) = 2,980(円) ※10%税込
----------
  獲得ポイント 29
  ジャケット (メンズ) (jacket-01)
  サイズ:L
  SKU管理番号:jacket-01-l
  価格 21,560(円) x 1,002(個) = 21,560(円) ※10%税込
**********************************************************************
  小計     24,540(円)
  合計     24,540(円)
**********************************************************************
"""
EXPECTED = MallOrder(
    order_no="123456-20220112-00012345",
    ordered_at="2022-01-12T09:05:00+09:00",
    lines=(
        OrderLine(
            line_no=1,
            item_id="bottle-500",
            sku="bottle-500",
            quantity=1,
            name="【送料無料】ステンレス (保温) ボトル",
            choices=("ブラック",),
        ),
        OrderLine(
            line_no=2,
            item_id="jacket-01",
            variation=("sku:jacket-01-l",),
            sku="jacket-01-l",
            quantity=1002,
            name="ジャケット (メンズ)",
            choices=("L",),
        ),
    ),
)


@pytest.mark.parametrize(
    ("shape", "raw"),
    every_shape_with_subject(HAND_WRITTEN, "【楽天市場】注文内容ご確認（自動配信メール）"),
)
def test_hand_written_mail_parses_in_every_transport_shape(shape: str, raw: bytes) -> None:
    assert rakuten.parse_order_mail(raw) == EXPECTED, shape


def test_cp932_body_with_extension_characters() -> None:
    body = HAND_WRITTEN.replace("ステンレス", "①㈱髙～")
    raw = single_part(
        body, charset="shift_jis", subject="【楽天市場】注文内容ご確認（自動配信メール）"
    )
    assert rakuten.parse_order_mail(raw).lines[0].name == "【送料無料】①㈱髙～ (保温) ボトル"


@pytest.mark.parametrize(
    "subject",
    ["【楽天市場】在庫ゼロのお知らせ", "【楽天】注文内容ご確認(携帯)", "発送完了のお知らせ"],
)
def test_other_mails_are_not_orders(subject: str) -> None:
    with pytest.raises(MailError, match="not an order confirmation: subject"):
        rakuten.parse_order_mail(single_part(HAND_WRITTEN, subject=subject))


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (("[受注番号]", "[受付番号]"), r"no \[受注番号\] line"),
        (("[日時]", "[時刻]"), r"no \[日時\] line"),
        (("[商品]", "[品物]"), r"no \[商品\] block"),
        (("x 1,002(個)", "1,002 個"), "item block 2 has no quantity"),
        (("ボトル (bottle-500)", "ボトル bottle-500"), "item block 1 has no item code in"),
    ],
)
def test_broken_mail_says_why(edit: tuple[str, str], reason: str) -> None:
    body = HAND_WRITTEN.replace(*edit)
    subject = "【楽天市場】注文内容ご確認（自動配信メール）"
    with pytest.raises(MailError, match=reason):
        rakuten.parse_order_mail(single_part(body, subject=subject))


def test_garbage_is_a_mail_error() -> None:
    with pytest.raises(MailError):
        rakuten.parse_order_mail(b"")


# --- files as merchants have them (issue 9) ------------------------------------------------

FIXTURES = Path(__file__).parent.parent / "fixtures"
SELECT_HEADER_LINE = (
    "項目選択肢用コントロールカラム,商品管理番号（商品URL）,選択肢タイプ,項目選択肢別在庫用横軸選択肢,"
    "項目選択肢別在庫用横軸選択肢子番号,項目選択肢別在庫用縦軸選択肢,項目選択肢別在庫用縦軸選択肢子番号,"
    "項目選択肢別在庫用在庫数\r\n"
)


def test_item_csv_as_downloaded_is_read_as_records_with_names_and_item_numbers() -> None:
    """58 columns, every field quoted, multi-line HTML with CRLF, LF and "" inside: 5 records
    on 20 lines, 3 with stock of their own (the others: per choice, not managed)."""
    content = (FIXTURES / "rakuten-item-download.csv").read_bytes()
    assert content.count(b"\n") == 20
    rows = rows_of(read("item.csv", content))
    assert [(r.line, r.sku, r.name, r.alt_item_id, r.quantity) for r in rows] == [
        (2, "mug-01", "マグカップ㈱特製", "MUG-01", 9),
        (12, "bag-02", "トートバッグ", "", 4),  # 商品番号 = 商品管理番号; <br> dropped
        (17, "case-04", "スマホケース", "Case-04", 2),  # spaces around the id dropped
    ]


def test_choices_with_empty_subcodes_take_codes_from_their_names() -> None:
    rows = rows_of(read("select.csv", (FIXTURES / "rakuten-select-download.csv").read_bytes()))
    assert [(r.line, r.sku, r.variation, r.quantity, r.name) for r in rows] == [
        (4, "tshirt-001-レッド", ("choice:レッド", ""), 5, "レッド"),
        (5, "tshirt-001-ブルー", ("choice:ブルー", ""), 3, "ブルー"),
        (6, "tshirt-001-グリーン", ("choice:グリーン", ""), 0, "グリーン"),
        # 子番号 " -bk" / " ": the default rule tells these apart once spaces are dropped
        (7, "cap-01-bk", ("-bk", ""), 7, "ブラック フリー"),
        (8, "cap-01-wh", ("-wh", ""), 2, "ホワイト フリー"),
        (9, "cap-01-gy", ("-gy", ""), 1, ""),
    ]
    # the job log says so, once per item
    assert [r.note for r in rows if r.note] == [
        "line 4 [tshirt-001]: 子番号 is empty for 3 choices, so their SKU codes are made from "
        "the choice names (tshirt-001-<choice name>); to use other codes, map them with zaiko "
        "listings import"
    ]


def test_a_lone_choice_with_empty_subcode_keeps_the_default_code() -> None:
    content = (SELECT_HEADER_LINE + "n,bag,i,フリー,,,,4\r\n").encode("cp932")
    (row,) = rows_of(read("select.csv", content))
    assert (row.sku, row.variation, row.note) == ("bag", ("", ""), "")


def test_only_the_axis_without_subcode_is_named_and_only_where_codes_collide() -> None:
    content = (
        SELECT_HEADER_LINE
        + "n,x,i,Ｓ,s,レッド,,1\r\nn,x,i,Ｓ,s,ブルー,,2\r\nn,x,i,Ｍ,m,レッド,,3\r\n"
    ).encode("cp932")
    rows = rows_of(read("select.csv", content))
    assert [(r.sku, r.variation) for r in rows] == [
        ("xs-レッド", ("s", "choice:レッド")),
        ("xs-ブルー", ("s", "choice:ブルー")),
        ("xm", ("m", "")),
    ]


def test_choices_their_names_do_not_tell_apart_are_all_refused() -> None:
    content = (SELECT_HEADER_LINE + "n,x,i,Ａ,,,,1\r\nn,x,i,Ａ,,,,2\r\nn,y,i,Ａ,,,,3\r\n").encode(
        "cp932"
    )
    result = read("select.csv", content)
    assert [(e.line, e.code, e.field) for e in errors_of(result)] == [
        (2, "x-Ａ", "項目選択肢別在庫用横軸選択肢子番号"),
        (3, "x-Ａ", "項目選択肢別在庫用横軸選択肢子番号"),
    ]
    assert "give them their 子番号 in RMS" in errors_of(result)[0].reason
    assert [(r.line, r.sku) for r in result if isinstance(r, StockRow)] == [(4, "y")]


def test_a_choice_named_by_its_choice_is_written_back_by_name() -> None:
    updates = [
        StockUpdate("tshirt", ("choice:レッド",), 4),
        StockUpdate("tshirt", ("choice:ブルー",), 6),
    ]
    written = rakuten.write_stock_files(updates)[rakuten.SELECT_CSV]
    assert '"tshirt","i","","","レッド","","","","","4"' in written.decode("cp932")
    rows = rows_of(read("select.csv", written))
    assert [(r.variation, r.quantity) for r in rows] == [
        (("choice:レッド", ""), 4),
        (("choice:ブルー", ""), 6),
    ]


def test_identifier_rule_in_join_sku() -> None:
    assert rakuten.join_sku(" item ", (" -01", "Red ")) == "item-01Red"
    assert rakuten.join_sku("item", (" ", "\u3000")) == "item"
    assert rakuten.join_sku("item", ("sku: v-1 ",)) == "v-1"


def test_mail_and_api_carry_the_printed_option_values() -> None:
    line = OrderLine(
        line_no=1,
        item_id="tshirt",
        variation=("choice:レッド",),
        sku="tshirt-レッド",
        quantity=2,
        name="Tシャツ",
    )
    order = MallOrder(
        order_no="1-20260612-3", ordered_at="2026-06-12T10:31:07+09:00", lines=(line,)
    )
    mail = rakuten.render_order_mail(order, "店")
    assert "Tシャツ (tshirt)\r\n選択肢1:レッド\r\n" in email.message_from_bytes(mail).get_payload(
        decode=True
    ).decode("iso-2022-jp")
    (parsed,) = rakuten.parse_order_mail(mail).lines
    # the mail prints 商品番号 (+ the 子番号 there are) and the option values: the ledger's
    # listed_sku finds the SKU from those
    assert (parsed.item_id, parsed.variation, parsed.sku, parsed.choices) == (
        "tshirt",
        (),
        "tshirt",
        ("レッド",),
    )
    body = json.dumps(
        {
            "OrderModelList": [
                {
                    "orderNumber": "1",
                    "orderProgress": 100,
                    "orderDatetime": "2026-06-12T10:31:07+0900",
                    "PackageModelList": [
                        {
                            "ItemModelList": [
                                {
                                    "itemDetailId": 1,
                                    "itemName": "Tシャツ",
                                    "itemNumber": "TSHIRT",
                                    "manageNumber": "tshirt",
                                    "units": 1,
                                    "selectedChoice": "カラー:レッド\nギフト包装:する",
                                }
                            ]
                        }
                    ],
                }
            ]
        }
    ).encode()
    answer = msgspec.json.decode(body, type=rakuten._GetOrderResult)
    (order_line,) = rakuten._mall_order(answer.orders[0]).lines
    assert order_line.choices == ("レッド", "する")
