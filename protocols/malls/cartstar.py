"""CARTSTAR (cartstar): order intake from the 「TEMPOSTAR連携メール」 CARTSTAR sends for each order,
and stock out through a small JSON stock API.

Unverified: both the mail layout and the stock API are zaiko's design (CARTSTAR publishes neither).
"""

from __future__ import annotations

from protocols.malls._api import JsonStockApi
from protocols.malls._mail import (
    LabelLayout,
    format_ja_datetime,
    parse_labelled_order,
    render_mail,
    require_new,
)
from protocols.malls.base import Capability, MallOrder, joined

CAPABILITY = Capability(
    kind="cartstar",
    name_ja="CARTSTAR",
    intake=("mail",),
    stock_out=("api",),
    api_batch_size=100,
    api_requests_per_s=1.0,
    unverified="order-mail layout and stock API are zaiko's design (neither is public)",
)

# 横軸 / 縦軸 are the two variation axes CARTSTAR items may have; either line may be absent.
MAIL_LAYOUT = LabelLayout(
    mall="CARTSTAR",
    order_no="注文番号",
    ordered_at="注文日時",
    item_code="商品コード",
    quantity="数量",
    name="商品名",
    variation=("横軸コード", "縦軸コード"),
    subject_marks=("注文", "TEMPOSTAR連携"),
)
_SENDER = "tempostar@cartstar.example"
_API = JsonStockApi(path="/api/v1/inventories", batch_size=CAPABILITY.api_batch_size)

build_stock_requests = _API.build_stock_requests
parse_stock_request = _API.parse_stock_request
parse_stock_response = _API.parse_stock_response
render_stock_response = _API.render_stock_response
render_error = _API.render_error


def join_sku(item_id: str, variation: tuple[str, ...]) -> str:
    """SKU = 商品コード + 横軸コード + 縦軸コード (absent axes are skipped)."""
    return joined(item_id, variation)


def parse_order_mail(raw: bytes) -> MallOrder:
    """Read a CARTSTAR TEMPOSTAR連携メール."""
    return parse_labelled_order(raw, MAIL_LAYOUT, join_sku)


def render_order_mail(order: MallOrder, shop_name: str) -> bytes:
    """The CARTSTAR TEMPOSTAR連携メール for ``order`` (simulator template)."""
    require_new(order)
    body = [
        "TEMPOSTAR連携メール（CARTSTAR）",
        "",
        f"ショップ名：{shop_name}",
        f"注文番号：{order.order_no}",
        f"注文日時：{format_ja_datetime(order.ordered_at, '%Y-%m-%d %H:%M:%S')}",
        "",
    ]
    for line in order.lines:
        if len(line.variation) > len(MAIL_LAYOUT.variation):
            raise ValueError(f"{line.item_id}: CARTSTAR items have at most two axes")
        body += ["[商品]", f"商品コード：{line.item_id}"]
        body += [
            f"{label}：{code}"
            for label, code in zip(MAIL_LAYOUT.variation, line.variation, strict=False)
        ]
        body += [f"商品名：{line.name}", f"数量：{line.quantity}", ""]
    return render_mail(
        sender=f"CARTSTAR <{_SENDER}>",
        recipient="shop@example.jp",
        subject=f"[CARTSTAR] TEMPOSTAR連携メール 注文番号 {order.order_no}",
        body="\n".join(body),
        sent_at=order.ordered_at,
    )
