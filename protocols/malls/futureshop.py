"""FutureShop2 (futureshop): stock files goodsStock.csv / goodsVariation.csv uploaded to
``/fsgoodsupload``, and order intake from the order-confirmation mail (``label：value`` lines;
each item's 注文商品名 ends with the spec tag 【code】 that names its variation).

Unverified: the stock-file column names are zaiko's choice (not public; kept in
GOODS_STOCK_COLUMNS / GOODS_VARIATION_COLUMNS); the mail layout follows a public parser, not a real mail.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import msgspec

from protocols.malls._api import require_pushable
from protocols.malls._mail import (
    PLACEHOLDER_UNIT_PRICE,
    LabelLayout,
    format_ja_datetime,
    parse_labelled_order,
    render_mail,
    require_new,
)
from protocols.malls.base import (
    Capability,
    CsvRecords,
    MallOrder,
    RowError,
    StockRow,
    StockUpdate,
    display_name,
    encode_csv,
    header_records,
    identifier,
    int_field,
    joined,
)

CAPABILITY = Capability(
    kind="futureshop",
    name_ja="FutureShop2",
    intake=("mail",),
    stock_out=("ftp",),
    ftp_dir="/fsgoodsupload",
    stock_files=("goodsStock.csv", "goodsVariation.csv"),
    import_formats=("futureshop_stock", "futureshop_variation"),
    unverified=(
        "stock-file column names are zaiko's choice (not public); "
        "order-mail layout from a public parser, not a real mail"
    ),
)

GOODS_STOCK_FILE = "goodsStock.csv"
GOODS_VARIATION_FILE = "goodsVariation.csv"
# The one place to correct from a real file. コントロールカラム: blank = update, d = stock 0.
GOODS_STOCK_COLUMNS = ("コントロールカラム", "商品番号", "在庫数")
GOODS_VARIATION_COLUMNS = ("コントロールカラム", "商品番号", "規格コード", "在庫数")
# FutureShop's published upload limits: 5,000 rows per stock file, 1,000 products per
# variation-stock file. A longer push must be split into several uploads by the caller.
GOODS_STOCK_MAX_ROWS = 5000
GOODS_VARIATION_MAX_ITEMS = 1000
# quantities per upload: within both limits whatever the mix (a chunk is one upload)
UPLOAD_MAX_UPDATES = min(GOODS_STOCK_MAX_ROWS, GOODS_VARIATION_MAX_ITEMS)

_FORMATS = {
    GOODS_STOCK_FILE: GOODS_STOCK_COLUMNS,
    "futureshop_stock": GOODS_STOCK_COLUMNS,
    GOODS_VARIATION_FILE: GOODS_VARIATION_COLUMNS,
    "futureshop_variation": GOODS_VARIATION_COLUMNS,
}
_CONTROL_ZERO = "d"

MAIL_LAYOUT = LabelLayout(
    mall="FutureShop",
    order_no="注文コード",
    ordered_at="注文日時",
    item_code="商品番号",
    quantity="数量",
    name="注文商品名",
    subject_marks=("注文",),
)
# 注文商品名 ends with 【code】 (optionally followed by the spec's display text). Only a
# code-like tag after a non-empty name counts, so a name such as 【送料無料】Tシャツ keeps its tag.
_SPEC_TAG = re.compile(r"^(?P<name>.*\S.*?)【(?P<code>[0-9A-Za-z_\-]+)】(?P<spec>[^【】]*)$")
_SENDER = "order@futureshop.example"


def join_sku(item_id: str, variation: tuple[str, ...]) -> str:
    """SKU = 商品番号 + 規格コード (the variation's spec code), or 商品番号 alone."""
    return joined(item_id, variation)


def read_stock_file(name: str, records: CsvRecords) -> Iterator[StockRow | RowError]:
    """Read goodsStock.csv / goodsVariation.csv (by file name or import format) from CSV
    records; a 商品名 column, when the file has one, names the product."""
    columns = _FORMATS.get(name)
    if columns is None:
        raise ValueError(f"unknown FutureShop stock file {name!r} (known: {', '.join(_FORMATS)})")
    has_variation = columns is GOODS_VARIATION_COLUMNS
    required_columns = [c for c in columns if c != "コントロールカラム"]
    for number, row in header_records(records, required_columns):
        if isinstance(row, RowError):
            yield row
            continue
        item_id = identifier(row["商品番号"])
        if not item_id:
            yield RowError(line=number, field="商品番号", reason="empty")
            continue
        variation: tuple[str, ...] = ()
        if has_variation:
            spec_code = identifier(row["規格コード"])
            if not spec_code:
                yield RowError(line=number, code=item_id, field="規格コード", reason="empty")
                continue
            variation = (spec_code,)
        sku = join_sku(item_id, variation)
        control = row.get("コントロールカラム", "").strip()
        if control == _CONTROL_ZERO:
            quantity: int | RowError = 0
        elif control:
            quantity = RowError(
                line=number,
                code=sku,
                field="コントロールカラム",
                reason=f"{control!r} is neither blank nor {_CONTROL_ZERO!r}",
            )
        else:
            quantity = int_field(row["在庫数"], line=number, field="在庫数", code=sku)
        if isinstance(quantity, RowError):
            yield quantity
            continue
        yield StockRow(
            line=number,
            sku=sku,
            item_id=item_id,
            variation=variation,
            quantity=quantity,
            name=display_name(row.get("商品名", "")),
        )


def write_stock_files(updates: Sequence[StockUpdate]) -> dict[str, bytes]:
    """goodsStock.csv for plain items and goodsVariation.csv for variations (cp932, CRLF).

    Only files with rows are returned. Raises ValueError past FutureShop's upload limits.
    """
    require_pushable(updates)
    plain: list[tuple[str, str, str]] = []
    variations: list[tuple[str, str, str, str]] = []
    for update in updates:
        if not update.variation:
            plain.append(("", update.item_id, str(update.quantity)))
        elif len(update.variation) == 1:
            variations.append(("", update.item_id, update.variation[0], str(update.quantity)))
        else:
            raise ValueError(
                f"{update.item_id}: FutureShop has one spec code per variation, got {update.variation}"
            )
    if len(plain) > GOODS_STOCK_MAX_ROWS:
        raise ValueError(
            f"{len(plain)} rows for {GOODS_STOCK_FILE} (at most {GOODS_STOCK_MAX_ROWS})"
        )
    products = len({row[1] for row in variations})
    if products > GOODS_VARIATION_MAX_ITEMS:
        raise ValueError(
            f"{products} products for {GOODS_VARIATION_FILE} (at most {GOODS_VARIATION_MAX_ITEMS})"
        )
    files: dict[str, bytes] = {}
    if plain:
        files[GOODS_STOCK_FILE] = encode_csv(GOODS_STOCK_COLUMNS, plain)
    if variations:
        files[GOODS_VARIATION_FILE] = encode_csv(GOODS_VARIATION_COLUMNS, variations)
    return files


def parse_order_mail(raw: bytes) -> MallOrder:
    """Read a FutureShop order-confirmation mail; the spec tag of 注文商品名 is the variation."""
    order = parse_labelled_order(raw, MAIL_LAYOUT, join_sku)
    lines = []
    for line in order.lines:
        tagged = _SPEC_TAG.match(line.name)
        if tagged is None:
            lines.append(line)
            continue
        variation = (tagged.group("code"),)
        lines.append(
            msgspec.structs.replace(
                line,
                variation=variation,
                sku=join_sku(line.item_id, variation),
                name=tagged.group("name"),
            )
        )
    return msgspec.structs.replace(order, lines=tuple(lines))


def render_order_mail(order: MallOrder, shop_name: str) -> bytes:
    """The order-confirmation mail FutureShop sends for ``order`` (simulator template)."""
    require_new(order)
    rule = "━" * 30
    body = [
        f"{shop_name}をご利用いただき、誠にありがとうございます。",
        "下記の内容でご注文を承りました。",
        "",
        rule,
        "■ご注文内容",
        rule,
        f"注文コード：{order.order_no}",
        f"注文日時：{format_ja_datetime(order.ordered_at, '%Y年%m月%d日 %H時%M分%S秒')}",
        "氏名：注文 太郎",
        "氏名（フリガナ）：チュウモン タロウ",
        "Ｅメールアドレス：buyer@example.jp",
        "支払方法：クレジットカード",
        "",
        rule,
        "■ご注文商品",
        rule,
    ]
    total = 0
    for line in order.lines:
        if len(line.variation) > 1:
            raise ValueError(f"{line.item_id}: FutureShop has one spec code per variation")
        tag = f"【{line.variation[0]}】" if line.variation else ""
        subtotal = PLACEHOLDER_UNIT_PRICE * line.quantity
        total += subtotal
        body += [
            f"商品番号：{line.item_id}",
            f"注文商品名：{line.name}{tag}",
            f"単価：￥{PLACEHOLDER_UNIT_PRICE:,}",
            f"数量：{line.quantity}",
            f"小計：￥{subtotal:,}",
            "-" * 40,
        ]
    body += [
        "送料：￥0",
        "ポイント利用額：▲￥0(0)",
        f"合計金額(税込)：￥{total:,}",
        "",
        "　送付先1氏名：注文 太郎",
        "　送付先1住所：東京都千代田区千代田1-1",
        "",
    ]
    return render_mail(
        sender=f"{shop_name} <{_SENDER}>",
        recipient="shop@example.jp",
        subject=f"【{shop_name}】ご注文ありがとうございます",
        body="\n".join(body),
        sent_at=order.ordered_at,
        charset="iso-2022-jp",
    )
