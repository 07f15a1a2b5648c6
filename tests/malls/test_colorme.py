from __future__ import annotations

import msgspec
import pytest

from protocols.malls import colorme
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
from tests.malls.mail_variants import every_shape, single_part

ACCOUNT = ApiAccount(base_url="https://api.shop-pro.jp", secret="oauth-token")
HEADER = "商品ID,登録種別,オプション名1,オプション名2,オプションID,型番,在庫数,適正在庫数,販売価格,会員価格\r\n"


def read(content: bytes, name: str = "colorme_option") -> list[StockRow | RowError]:
    return list(colorme.read_stock_file(name, csv_records([content])))


def test_option_csv_round_trip() -> None:
    updates = [
        StockUpdate("000123", ("赤", "M"), 3),
        StockUpdate("000123", ("㈱髙①～", "L"), 0),
        StockUpdate("456", ("フリー",), 10),
    ]
    content = colorme.write_stock_files(updates)["option.csv"]
    assert content.startswith(('"' + '","'.join(colorme.OPTION_COLUMNS) + '"\r\n').encode("cp932"))
    rows = read(content, "option.csv")
    assert [(r.item_id, r.variation, r.quantity) for r in rows if isinstance(r, StockRow)] == [
        (u.item_id, u.variation, u.quantity) for u in updates
    ]
    assert [r.sku for r in rows if isinstance(r, StockRow)] == [
        "000123赤M",
        "000123㈱髙①～L",
        "456フリー",
    ]


def test_option_csv_rows() -> None:
    content = (
        HEADER
        + "000123,name,カラー,サイズ,,,,,,\r\n"
        + "000123,item,赤,M,11,T-RED-M,5,2,1000,900\r\n"
        + "000123,item,赤,L,12,T-RED-L,,2,1000,900\r\n"
        + "000123,item,青,M,13,T-BLU-M,5.0,2,1000,900\r\n"
        + "000123,other,青,L,14,,1,,,\r\n"
    ).encode("cp932") + b"000124,item,\x81\x20,M,15,,1,,,\r\n"
    rows = read(content)
    assert rows[0] == StockRow(
        line=3, sku="000123赤M", item_id="000123", variation=("赤", "M"), quantity=5
    )
    assert rows[1] == StockRow(
        line=4, sku="000123赤L", item_id="000123", variation=("赤", "L"), quantity=None
    )
    assert rows[2] == RowError(
        line=5, code="000123青M", field="在庫数", reason="'5.0' is not an integer"
    )
    assert isinstance(rows[3], RowError) and rows[3].line == 6 and rows[3].field == "登録種別"
    assert (
        isinstance(rows[4], RowError) and rows[4].line == 7 and "not valid cp932" in rows[4].reason
    )


def test_option_csv_needs_every_column_and_an_option() -> None:
    rows = read("商品ID,登録種別,在庫数\r\n1,item,2\r\n".encode("cp932"))
    assert len(rows) == 1 and isinstance(rows[0], RowError) and rows[0].field == "オプション名1"
    with pytest.raises(ValueError, match="1 or 2 option values"):
        colorme.write_stock_files([StockUpdate("1", (), 2)])


def test_stock_requests_one_product_per_put() -> None:
    updates = [
        StockUpdate("000123", ("赤", "M"), 3),
        StockUpdate("999", (), 7),
        StockUpdate("000123", ("赤", "L"), 0),
    ]
    requests = colorme.build_stock_requests(updates, ACCOUNT)
    assert [(r.method, r.path) for r in requests] == [
        ("PUT", "/v1/products/000123.json"),
        ("PUT", "/v1/products/999.json"),
    ]
    assert ("Authorization", "Bearer oauth-token") in requests[0].headers
    assert msgspec.json.decode(requests[1].body) == {"product": {"stocks": 7}}
    assert msgspec.json.decode(requests[0].body) == {
        "product": {
            "variants": [
                {"option1_value": "赤", "option2_value": "M", "stocks": 3},
                {"option1_value": "赤", "option2_value": "L", "stocks": 0},
            ]
        }
    }
    parsed = [u for r in requests for u in colorme.parse_stock_request(r)]
    assert sorted(parsed, key=repr) == sorted(updates, key=repr)


def test_stock_request_validation() -> None:
    with pytest.raises(ValueError, match="expected PUT"):
        colorme.parse_stock_request(HttpRequest(method="POST", path="/v1/products/1.json"))
    with pytest.raises(ValueError, match="sets no stock"):
        colorme.parse_stock_request(
            HttpRequest(method="PUT", path="/v1/products/1.json", body=b'{"product":{}}')
        )
    with pytest.raises(ValueError, match="negative"):
        colorme.parse_stock_request(
            HttpRequest(method="PUT", path="/v1/products/1.json", body=b'{"product":{"stocks":-1}}')
        )


def test_stock_responses() -> None:
    body = colorme.render_stock_response([StockUpdate("000123", ("赤",), 3)])
    assert msgspec.json.decode(body) == {
        "product": {"id": "000123", "variants": [{"option1_value": "赤", "stocks": 3}]}
    }
    colorme.parse_stock_response(200, body)
    with pytest.raises(ValueError, match="HTTP 404: 対象の商品が存在しません"):
        colorme.parse_stock_response(404, colorme.render_error(404, "対象の商品が存在しません"))


ORDER = MallOrder(
    order_no="123456789",
    ordered_at="2024-01-02T10:11:12+09:00",
    lines=(
        OrderLine(
            line_no=1,
            item_id="000123",
            variation=("赤", "M"),
            sku="000123赤M",
            quantity=2,
            name="Tシャツ①",
        ),
        OrderLine(line_no=2, item_id="999", sku="999", quantity=1, name="㈱髙～タオル"),
    ),
)


def test_order_mail_round_trip() -> None:
    assert colorme.parse_order_mail(colorme.render_order_mail(ORDER, "テスト商店")) == ORDER


BODY = """テスト商店 様

カラーミーショップで注文がありました。

■受注番号：987654321
■受注日時：2024年06月07日 08:09:10

■ご注文商品
[1]
商品ID：000123
商品名：Tシャツ
オプション1：青
オプション2：サイズ：S
価格：1,000円
数量：4個
"""


@pytest.mark.parametrize(("shape", "raw"), every_shape(BODY))
def test_hand_written_mail_in_every_shape(shape: str, raw: bytes) -> None:
    assert colorme.parse_order_mail(raw) == MallOrder(
        order_no="987654321",
        ordered_at="2024-06-07T08:09:10+09:00",
        lines=(
            OrderLine(
                line_no=1,
                item_id="000123",
                variation=("青", "サイズ：S"),
                sku="000123青サイズ：S",
                quantity=4,
                name="Tシャツ",
            ),
        ),
    ), shape


def test_broken_mail() -> None:
    with pytest.raises(MailError, match="no item"):
        colorme.parse_order_mail(single_part(BODY.split("■ご注文商品")[0]))
