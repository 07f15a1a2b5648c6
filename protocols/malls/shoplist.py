"""SHOPLIST (shoplist): order intake from the new-order notice mail, and stock out through a small
JSON stock API.

Unverified: both the mail layout and the stock API are zaiko's design (SHOPLIST publishes neither).
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
    kind="shoplist",
    name_ja="SHOPLIST",
    intake=("mail",),
    stock_out=("api",),
    api_batch_size=100,
    api_requests_per_s=1.0,
    unverified="order-mail layout and stock API are zaiko's design (neither is public)",
)

# SHOPLIST items vary by colour and size; each has its own code line.
MAIL_LAYOUT = LabelLayout(
    mall="SHOPLIST",
    order_no="注文番号",
    ordered_at="注文日時",
    item_code="品番",
    quantity="数量",
    name="商品名",
    variation=("カラーコード", "サイズコード"),
    subject_marks=("注文",),
)
_SENDER = "order@shoplist.example"
_API = JsonStockApi(path="/api/v1/stocks", batch_size=CAPABILITY.api_batch_size)

build_stock_requests = _API.build_stock_requests
parse_stock_request = _API.parse_stock_request
parse_stock_response = _API.parse_stock_response
render_stock_response = _API.render_stock_response
render_error = _API.render_error


def join_sku(item_id: str, variation: tuple[str, ...]) -> str:
    """SKU = 品番 + カラーコード + サイズコード (absent codes are skipped)."""
    return joined(item_id, variation)


def parse_order_mail(raw: bytes) -> MallOrder:
    """Read a SHOPLIST new-order notice."""
    return parse_labelled_order(raw, MAIL_LAYOUT, join_sku)


def render_order_mail(order: MallOrder, shop_name: str) -> bytes:
    """The SHOPLIST new-order notice for ``order`` (simulator template)."""
    require_new(order)
    body = [
        f"{shop_name} 御中",
        "",
        "SHOPLISTで新しいご注文が入りました。",
        "",
        f"■注文番号：{order.order_no}",
        f"■注文日時：{format_ja_datetime(order.ordered_at, '%Y年%m月%d日 %H:%M:%S')}",
        "",
        "■ご注文商品",
    ]
    for line in order.lines:
        if len(line.variation) > len(MAIL_LAYOUT.variation):
            raise ValueError(f"{line.item_id}: SHOPLIST items have a colour and a size code only")
        body += ["―" * 20, f"品番：{line.item_id}", f"商品名：{line.name}"]
        body += [
            f"{label}：{code}"
            for label, code in zip(MAIL_LAYOUT.variation, line.variation, strict=False)
        ]
        body += [f"単価：{PLACEHOLDER_UNIT_PRICE:,}円", f"数量：{line.quantity}点"]
    body += ["―" * 20, ""]
    return render_mail(
        sender=f"SHOPLIST <{_SENDER}>",
        recipient="shop@example.jp",
        subject=f"【SHOPLIST】新規注文のお知らせ（注文番号：{order.order_no}）",
        body="\n".join(body),
        sent_at=order.ordered_at,
    )
