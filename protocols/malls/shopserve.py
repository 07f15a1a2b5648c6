"""ショップサーブ (shopserve): order intake from the order-confirmation mail in the layout with
品番 / 品名 / 単価 / 数量 / 小計 headings repeated per item (the manual's タイプB, meant for
machine reading), and stock out through a small JSON stock API.

Unverified: no sample mail exists (layout built from the manual's heading names); the stock API is
zaiko's design (ShopServe's is not public).
"""

from __future__ import annotations

from protocols.malls._api import JsonStockApi
from protocols.malls._mail import (
    PLACEHOLDER_UNIT_PRICE,
    LabelLayout,
    format_ja_datetime,
    parse_labelled_order,
    render_mail,
    require_new,
)
from protocols.malls.base import Capability, MallOrder, joined

CAPABILITY = Capability(
    kind="shopserve",
    name_ja="ショップサーブ",
    intake=("mail",),
    stock_out=("api",),
    api_batch_size=100,
    api_requests_per_s=1.0,
    unverified=(
        "order-mail layout built from the manual's タイプB headings (no sample); "
        "stock API is zaiko's design (not public)"
    ),
)

MAIL_LAYOUT = LabelLayout(
    mall="ShopServe",
    order_no="受注番号",
    ordered_at="受注日時",
    item_code="品番",
    quantity="数量",
    name="品名",
    subject_marks=("注文",),
)
_SENDER = "order@shopserve.example"
_API = JsonStockApi(path="/api/v1/stock/update", batch_size=CAPABILITY.api_batch_size)

build_stock_requests = _API.build_stock_requests
parse_stock_request = _API.parse_stock_request
parse_stock_response = _API.parse_stock_response
render_stock_response = _API.render_stock_response
render_error = _API.render_error


def join_sku(item_id: str, variation: tuple[str, ...]) -> str:
    """SKU = 品番 followed by any variation codes (ShopServe mails carry the 品番 only)."""
    return joined(item_id, variation)


def parse_order_mail(raw: bytes) -> MallOrder:
    """Read a ShopServe order-confirmation mail (per-item 品番/品名/単価/数量/小計)."""
    return parse_labelled_order(raw, MAIL_LAYOUT, join_sku)


def render_order_mail(order: MallOrder, shop_name: str) -> bytes:
    """The ShopServe order-confirmation mail for ``order`` (simulator template)."""
    require_new(order)
    rule = "-" * 60
    body = [
        f"{shop_name} です。",
        "このたびはご注文いただき、誠にありがとうございます。",
        "以下の内容でご注文を承りました。",
        "",
        f"◆受注番号：{order.order_no}",
        f"◆受注日時：{format_ja_datetime(order.ordered_at, '%Y/%m/%d %H:%M:%S')}",
        "◆お支払方法：クレジットカード",
        "",
        "◆ご注文商品",
        rule,
    ]
    total = 0
    for line in order.lines:
        subtotal = PLACEHOLDER_UNIT_PRICE * line.quantity
        total += subtotal
        body += [
            f"品番：{line.item_id}{''.join(line.variation)}",
            f"品名：{line.name}",
            f"単価：{PLACEHOLDER_UNIT_PRICE:,}円",
            f"数量：{line.quantity}",
            f"小計：{subtotal:,}円",
            rule,
        ]
    body += [f"商品合計：{total:,}円", "送料：0円", f"総合計：{total:,}円", ""]
    return render_mail(
        sender=f"{shop_name} <{_SENDER}>",
        recipient="shop@example.jp",
        subject=f"【{shop_name}】ご注文ありがとうございます",
        body="\n".join(body),
        sent_at=order.ordered_at,
        charset="iso-2022-jp",
    )
