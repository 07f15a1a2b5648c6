"""カラーミーショップ (colorme): stock out through the shop API (``PUT /v1/products/{id}.json``,
one product per request, options addressed by their option values), the option CSV (10
columns) as an importable stock file, and order intake from the forwarded order mail.

Unverified: the per-option ``variants`` body of the PUT follows the API's product object, not a
documented example; the order-mail layout is zaiko's design (no sample is public).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from urllib.parse import quote, unquote

import msgspec

from protocols.malls._api import JSON_CONTENT_TYPE, require_pushable
from protocols.malls._mail import (
    PLACEHOLDER_UNIT_PRICE,
    LabelLayout,
    format_ja_datetime,
    parse_labelled_order,
    render_mail,
    require_new,
)
from protocols.malls.base import (
    ApiAccount,
    Capability,
    CsvRecords,
    HttpRequest,
    MallOrder,
    RowError,
    StockRow,
    StockUpdate,
    encode_csv,
    header_records,
    identifier,
    identifiers,
    int_field,
    joined,
)

CAPABILITY = Capability(
    kind="colorme",
    name_ja="カラーミーショップ",
    intake=("mail",),
    stock_out=("api",),
    import_formats=("colorme_option",),
    api_batch_size=1,
    api_requests_per_s=2.0,
    unverified=(
        "per-option variants body of PUT /v1/products/{id}.json follows the product object, "
        "not a documented example; order-mail layout is zaiko's design (no sample)"
    ),
)

OPTION_FILE = "option.csv"
# The option CSV of shop-pro.jp/manual/option_imp. 登録種別 "name" rows name the option axes,
# "item" rows are the option combinations and carry 在庫数.
OPTION_COLUMNS = (
    "商品ID",
    "登録種別",
    "オプション名1",
    "オプション名2",
    "オプションID",
    "型番",
    "在庫数",
    "適正在庫数",
    "販売価格",
    "会員価格",
)
_OPTION_FORMATS = frozenset({OPTION_FILE, "colorme_option"})
_AXIS_ROW = "name"
_COMBINATION_ROW = "item"
_MAX_OPTIONS = 2
_PRODUCT_PATH = re.compile(r"^/v1/products/(?P<id>[^/]+)\.json$")

MAIL_LAYOUT = LabelLayout(
    mall="colorme",
    order_no="受注番号",
    ordered_at="受注日時",
    item_code="商品ID",
    quantity="数量",
    name="商品名",
    variation=("オプション1", "オプション2"),
    subject_marks=("注文",),
)
_SENDER = "order@shop-pro.example"


def join_sku(item_id: str, variation: tuple[str, ...]) -> str:
    """SKU = 商品ID + option value 1 + option value 2 (absent options are skipped)."""
    return joined(item_id, variation)


# --- option CSV ---------------------------------------------------------------------------


def read_stock_file(name: str, records: CsvRecords) -> Iterator[StockRow | RowError]:
    """Read the option CSV; one StockRow per "item" row (blank 在庫数 → quantity None)."""
    if name not in _OPTION_FORMATS:
        raise ValueError(
            f"unknown colorme stock file {name!r} (known: {', '.join(_OPTION_FORMATS)})"
        )
    for number, row in header_records(records, OPTION_COLUMNS):
        if isinstance(row, RowError):
            yield row
            continue
        kind = row["登録種別"].strip()
        if kind == _AXIS_ROW:
            continue
        item_id = identifier(row["商品ID"])
        if kind != _COMBINATION_ROW:
            yield RowError(
                line=number,
                code=item_id,
                field="登録種別",
                reason=f"{kind!r} is neither {_AXIS_ROW!r} nor {_COMBINATION_ROW!r}",
            )
            continue
        if not item_id:
            yield RowError(line=number, field="商品ID", reason="empty")
            continue
        variation = tuple(v for v in identifiers((row["オプション名1"], row["オプション名2"])) if v)
        sku = join_sku(item_id, variation)
        quantity: int | RowError | None = None
        if row["在庫数"].strip():
            quantity = int_field(row["在庫数"], line=number, field="在庫数", code=sku)
        if isinstance(quantity, RowError):
            yield quantity
            continue
        yield StockRow(
            line=number, sku=sku, item_id=item_id, variation=variation, quantity=quantity
        )


def write_stock_files(updates: Sequence[StockUpdate]) -> dict[str, bytes]:
    """The option CSV with one "item" row per option combination (cp932, CRLF).

    Columns zaiko does not know are left blank. Products without options have no row in this
    file (their stock goes through the API).
    """
    require_pushable(updates)
    rows = []
    for update in updates:
        if not 1 <= len(update.variation) <= _MAX_OPTIONS:
            raise ValueError(
                f"{update.item_id}: the option CSV needs 1 or 2 option values, got {update.variation}"
            )
        option1, option2 = (*update.variation, "")[:_MAX_OPTIONS]
        rows.append(
            (update.item_id, _COMBINATION_ROW, option1, option2, "", "", str(update.quantity))
            + ("",) * 3
        )
    return {OPTION_FILE: encode_csv(OPTION_COLUMNS, rows)}


# --- stock API ----------------------------------------------------------------------------


class _Variant(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True):
    option1_value: str
    stocks: int
    option2_value: str = ""


class _ProductStock(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True):
    stocks: int | None = None
    variants: list[_Variant] = []


class _ProductBody(msgspec.Struct, forbid_unknown_fields=True):
    product: _ProductStock


class _ProductResult(msgspec.Struct, omit_defaults=True):
    id: str
    stocks: int | None = None
    variants: list[_Variant] = []


class _ResultBody(msgspec.Struct):
    product: _ProductResult


class _Error(msgspec.Struct):
    code: int
    message: str
    status: int


class _ErrorBody(msgspec.Struct):
    errors: list[_Error]


def _product_stock(updates: Sequence[StockUpdate]) -> _ProductStock:
    stock = _ProductStock()
    for update in updates:
        if not update.variation:
            stock.stocks = update.quantity
        elif len(update.variation) <= _MAX_OPTIONS:
            option1, option2 = (*update.variation, "")[:_MAX_OPTIONS]
            stock.variants.append(_Variant(option1, update.quantity, option2))
        else:
            raise ValueError(f"{update.item_id}: colorme has at most two options")
    return stock


def build_stock_requests(updates: Sequence[StockUpdate], account: ApiAccount) -> list[HttpRequest]:
    """One ``PUT /v1/products/{id}.json`` per product, carrying all its options' stock."""
    require_pushable(updates)
    by_product: dict[str, list[StockUpdate]] = {}
    for update in updates:
        by_product.setdefault(update.item_id, []).append(update)
    return [
        HttpRequest(
            method="PUT",
            path=f"/v1/products/{quote(product_id, safe='')}.json",
            headers=(("Authorization", f"Bearer {account.secret}"), JSON_CONTENT_TYPE),
            body=msgspec.json.encode(_ProductBody(product=_product_stock(product_updates))),
        )
        for product_id, product_updates in by_product.items()
    ]


def parse_stock_request(request: HttpRequest) -> list[StockUpdate]:
    match = _PRODUCT_PATH.match(request.path)
    if request.method != "PUT" or match is None:
        raise ValueError(
            f"expected PUT /v1/products/{{id}}.json, got {request.method} {request.path}"
        )
    product_id = unquote(match.group("id"))
    try:
        product = msgspec.json.decode(request.body, type=_ProductBody).product
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid product body: {exc}") from None
    updates = [] if product.stocks is None else [StockUpdate(product_id, (), product.stocks)]
    for variant in product.variants:
        options = tuple(v for v in (variant.option1_value, variant.option2_value) if v)
        updates.append(StockUpdate(product_id, options, variant.stocks))
    if not updates:
        raise ValueError(f"product {product_id}: the body sets no stock")
    require_pushable(updates)
    return updates


def parse_stock_response(status: int, body: bytes) -> None:
    if 200 <= status < 300:
        return
    try:
        errors = msgspec.json.decode(body, type=_ErrorBody).errors
        message = "; ".join(error.message for error in errors) or "no error message"
    except msgspec.DecodeError:
        message = body.decode("utf-8", "replace").strip() or "no error body"
    raise ValueError(f"HTTP {status}: {message}")


def render_stock_response(updates: Sequence[StockUpdate]) -> bytes:
    """The product object colorme returns after a PUT (the stock part of it)."""
    if not updates:
        raise ValueError("no update to answer")
    stock = _product_stock(updates)
    return msgspec.json.encode(
        _ResultBody(
            product=_ProductResult(
                id=updates[0].item_id, stocks=stock.stocks, variants=stock.variants
            )
        )
    )


def render_error(status: int, message: str) -> bytes:
    return msgspec.json.encode(
        _ErrorBody(errors=[_Error(code=status * 1000, message=message, status=status)])
    )


# --- order mail ---------------------------------------------------------------------------


def parse_order_mail(raw: bytes) -> MallOrder:
    """Read the colorme order mail forwarded by the shop (「サーバーに残す」 forwarding)."""
    return parse_labelled_order(raw, MAIL_LAYOUT, join_sku)


def render_order_mail(order: MallOrder, shop_name: str) -> bytes:
    """The colorme new-order mail for ``order`` (simulator template)."""
    require_new(order)
    body = [
        f"{shop_name} 様",
        "",
        "カラーミーショップで注文がありました。",
        "",
        f"■受注番号：{order.order_no}",
        f"■受注日時：{format_ja_datetime(order.ordered_at, '%Y年%m月%d日 %H:%M:%S')}",
        "",
        "■ご注文商品",
    ]
    for position, line in enumerate(order.lines, start=1):
        if len(line.variation) > _MAX_OPTIONS:
            raise ValueError(f"{line.item_id}: colorme has at most two options")
        body += [f"[{position}]", f"商品ID：{line.item_id}", f"商品名：{line.name}"]
        body += [
            f"{label}：{value}"
            for label, value in zip(MAIL_LAYOUT.variation, line.variation, strict=False)
        ]
        body += [f"価格：{PLACEHOLDER_UNIT_PRICE:,}円", f"数量：{line.quantity}個", ""]
    return render_mail(
        sender=f"カラーミーショップ <{_SENDER}>",
        recipient="shop@example.jp",
        subject=f"[{shop_name}] 注文がありました（受注番号：{order.order_no}）",
        body="\n".join(body),
        sent_at=order.ordered_at,
    )
