"""ポンパレモール (ponpare): order-confirmation mails, a Yahoo-shaped quantity CSV for import and
export, and a Yahoo-shaped stock API. SKUs follow Yahoo's rule (sub-code, else code); in the mail
the option lines' codes in parentheses are appended to the item code to form the sub-code.

Unverified: no public stock API exists, so ``POST /api/setStock`` (Yahoo's form fields and XML) is zaiko's choice; the CSV and mail follow public third-party code, the [注文日時] line is zaiko's.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator, Sequence

from protocols.malls import _api, _mail, yahoo
from protocols.malls.base import (
    ApiAccount,
    Capability,
    CsvRecords,
    HttpRequest,
    MailError,
    MallOrder,
    NotAnOrderMail,
    OrderLine,
    RowError,
    StockRow,
    StockUpdate,
    identifier,
    joined,
)

BATCH_SIZE = 1000
REQUESTS_PER_SECOND = 1.0
STOCK_PATH = "/api/setStock"
QUANTITY_CSV = "quantity.csv"

CAPABILITY = Capability(
    kind="ponpare",
    name_ja="ポンパレモール",
    intake=("mail",),
    stock_out=("api",),
    import_formats=("ponpare_quantity",),
    api_batch_size=BATCH_SIZE,
    api_requests_per_s=REQUESTS_PER_SECOND,
    unverified=(
        "stock API not public: zaiko's Yahoo-shaped setStock; quantity CSV and mail follow "
        "public third-party code; [注文日時] line is zaiko's choice"
    ),
)

join_sku = yahoo.join_sku


# --- quantity CSV (``code,sub-code,quantity,allow-overdraft``, as Yahoo) ------------------


def read_stock_file(name: str, records: CsvRecords) -> Iterator[StockRow | RowError]:
    if name not in (QUANTITY_CSV, "ponpare_quantity"):
        raise ValueError(f"unknown ponpare stock file {name!r} (known: {QUANTITY_CSV})")
    return yahoo.read_quantity_csv(records)


def write_stock_files(updates: Sequence[StockUpdate]) -> dict[str, bytes]:
    return {QUANTITY_CSV: yahoo.write_quantity_csv(updates)}


# --- stock API (zaiko's choice, Yahoo-shaped) ---------------------------------------------


def build_stock_requests(updates: Sequence[StockUpdate], account: ApiAccount) -> list[HttpRequest]:
    """One form-encoded POST per 1,000 items: shop_id, item_code (``code:subcode``), quantity."""
    if not account.seller_id:
        raise ValueError("ポンパレモール needs the shop's seller_id (its shop id) for setStock")
    _api.require_pushable(updates)
    requests = []
    for batch in _api.chunks(updates, BATCH_SIZE):
        item_code, quantity = yahoo.item_code_list(batch)
        form = {"shop_id": account.seller_id, "item_code": item_code, "quantity": quantity}
        requests.append(
            HttpRequest(
                method="POST",
                path=STOCK_PATH,
                headers=(
                    ("Authorization", f"Bearer {account.secret}"),
                    ("Content-Type", "application/x-www-form-urlencoded"),
                ),
                body=urllib.parse.urlencode(form).encode("ascii"),
            )
        )
    return requests


def parse_stock_request(request: HttpRequest) -> list[StockUpdate]:
    _api.check_route(request, "POST", STOCK_PATH)
    fields = yahoo.form_fields(request)
    for name in ("shop_id", "item_code", "quantity"):
        if not fields.get(name):
            raise ValueError(f"setStock without {name}")
    updates = yahoo.parse_item_code_list(fields["item_code"], fields["quantity"])
    if len(updates) > BATCH_SIZE:
        raise ValueError(f"{len(updates)} item codes in one request (at most {BATCH_SIZE})")
    return updates


render_stock_response = yahoo.render_stock_response
render_error = yahoo.render_error
parse_stock_response = yahoo.parse_stock_response


# --- order mails -------------------------------------------------------------------------

SUBJECT = "【ポンパレモール】ご注文内容の確認"
MAIL_SENDER = "ポンパレモール <order@ponparemall.com>"
_ORDER_NO = re.compile(r"^\[注文番号\]\s*[：:]\s*(\S+)")
_ORDERED_AT = re.compile(r"^\[注文日時\]\s*[：:]\s*(\S.*)")
_NAME_CODE = re.compile(r"^(.*)（([^（）]+)）$")
_OPTION_CODE = re.compile(r"^[^:：]+[:：].*\(([^()]+)\)$")
_QUANTITY = re.compile(r"×\s*([0-9,]+)\s*\(個\)")
_SEPARATOR = re.compile(r"^-{3,}$")
# A ``[label]：`` line ends the item block; a name may itself start with ``[送料無料]``.
_LABEL = re.compile(r"^\[[^\]]+\]\s*[：:]")


def parse_order_mail(raw: bytes) -> MallOrder:
    mail = _mail.read_mail(raw)
    if SUBJECT not in mail.subject:
        raise NotAnOrderMail(f"not an order confirmation: subject {mail.subject!r}")
    lines = [line.strip() for line in mail.lines]
    order_no = _first_match(_ORDER_NO, lines, "[注文番号]")
    ordered_at = _mail.parse_ja_datetime(
        _first_match(_ORDERED_AT, lines, "[注文日時]"), "[注文日時]"
    )
    return MallOrder(order_no=order_no, ordered_at=ordered_at, lines=tuple(_item_lines(lines)))


def _first_match(pattern: re.Pattern[str], lines: list[str], label: str) -> str:
    for line in lines:
        found = pattern.match(line)
        if found is not None:
            return found.group(1)
    raise MailError(f"no {label} line")


def _item_lines(lines: list[str]) -> Iterator[OrderLine]:
    try:
        start = lines.index("[商品]")
    except ValueError:
        raise MailError("no [商品] block") from None
    blocks: list[list[str]] = [[]]
    for line in lines[start + 1 :]:
        if _LABEL.match(line) or line.startswith("小計"):
            break
        if _SEPARATOR.match(line):
            blocks.append([])
        elif line:
            blocks[-1].append(line)
    items = [block for block in blocks if block]
    if not items:
        raise MailError("the [商品] block lists no item")
    for number, block in enumerate(items, start=1):
        name_code = _NAME_CODE.match(block[0])
        if name_code is None:
            raise MailError(f"item {number} has no （code） at the end of its name line")
        name, item_id = name_code.group(1).strip(), identifier(name_code.group(2))
        option_codes = []
        quantity: int | None = None
        for line in block[1:]:
            if line.startswith("価格"):
                found = _QUANTITY.search(line)
                if found is not None:
                    quantity = _mail.parse_count(found.group(1), f"item {number} quantity")
                continue
            option = _OPTION_CODE.match(line)
            if option is not None:
                option_codes.append(option.group(1))
        if quantity is None:
            raise MailError(f"item {number} has no quantity (価格 … × N(個) line)")
        if quantity == 0:
            raise MailError(f"item {number} has quantity 0")
        variation = (joined(item_id, option_codes),) if option_codes else ()
        yield OrderLine(
            line_no=number,
            item_id=item_id,
            variation=variation,
            sku=join_sku(item_id, variation),
            quantity=quantity,
            name=name,
        )


def render_order_mail(order: MallOrder, shop_name: str) -> bytes:
    """The shop copy of the confirmation (buyer and prices are placeholders)."""
    if order.status != "new":
        raise ValueError(f"ponpare mails carry new orders only, not {order.status}")
    ordered_at = _mail.format_ja_datetime(order.ordered_at, "%Y/%m/%d %H:%M:%S")
    rule = "-" * 50
    items = f"\n{rule}\n".join(_render_item(line) for line in order.lines)
    total = sum(line.quantity for line in order.lines) * 1000
    body = f"""{shop_name} 様

ポンパレモールでご注文がありました。内容をご確認ください。

[注文番号]：{order.order_no}
[注文日時]：{ordered_at}
ショップ名：{shop_name}
[送付先]：山田 花子 様

[商品]
{rule}
{items}
{rule}
小計：{total:,}円
送料：0円
合計：{total:,}円
"""
    return _mail.render_mail(
        sender=MAIL_SENDER,
        recipient="shop@example.jp",
        subject=SUBJECT,
        body=body,
        sent_at=order.ordered_at,
        charset="iso-2022-jp",
    )


def _render_item(line: OrderLine) -> str:
    option = ""
    if line.variation:
        sub_code = line.variation[0]
        if len(line.variation) > 1 or not sub_code.startswith(line.item_id):
            raise ValueError(
                f"{line.item_id} {line.variation}: the mail shows a sub-code only as item code "
                "+ option code"
            )
        suffix = sub_code[len(line.item_id) :]
        option = f"\n選択肢:{suffix}({suffix})" if suffix else ""
    amount = line.quantity * 1000
    return f"{line.name}（{line.item_id}）{option}\n価格 1,000(円) × {line.quantity:,}(個) = {amount:,}(円)"
