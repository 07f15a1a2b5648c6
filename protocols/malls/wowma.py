"""Wowma! / au PAY マーケット (wowma): stock.csv, the updateStock XML API and order mails. A choice
(stockSegment 2) is the variation ``(横軸コード, 縦軸コード)`` and joins as itemCode + H code + V
code, where ``-`` or blank means "no such axis".

Unverified: stock.csv and updateStock XML follow public third-party code; the batch limit, response XML and the whole order mail are zaiko's choice (no public spec or sample).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence

from protocols.malls import _api, _mail
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
    display_name,
    encode_csv,
    header_records,
    identifier,
    identifiers,
    int_field,
)

# Public code sends one item (with all its choices) per updateStock call; the limit is not public.
ITEMS_PER_REQUEST = 1
REQUESTS_PER_SECOND = 1.0
STOCK_PATH = "/wmshopapi/updateStock"
STOCK_CSV = "stock.csv"
NO_AXIS = "-"

CAPABILITY = Capability(
    kind="wowma",
    name_ja="Wowma! (au PAY マーケット)",
    intake=("mail",),
    stock_out=("ftp", "api"),
    ftp_dir="/",
    stock_files=(STOCK_CSV,),
    import_formats=("wowma_stock",),
    api_batch_size=ITEMS_PER_REQUEST,
    api_requests_per_s=REQUESTS_PER_SECOND,
    unverified=(
        "stock.csv and updateStock XML follow public third-party code; batch limit, response "
        "XML and the order mail are zaiko's choice"
    ),
)

STOCK_HEADER = (
    "ctrlCol",
    "lotNumber",
    "itemCode",
    "stockSegment",
    "stockCount",
    "choicesStockHorizontalName",
    "choicesStockHorizontalCode",
    "choicesStockHorizontalSeq",
    "choicesStockVerticalName",
    "choicesStockVerticalCode",
    "choicesStockVerticalSeq",
    "choicesStockCount",
    "choicesStockShippingDayId",
    "choicesStockShippingDayDispTxt",
    "choicesStockImageUrl",
    "choicesStockColorSegment",
)
_SEGMENT_ITEM = "1"
_SEGMENT_CHOICE = "2"
_CONTROL_UPDATE = "U"
_CONTROL_DELETE = "D"


def join_sku(item_id: str, variation: tuple[str, ...]) -> str:
    """itemCode + H code + V code (each by ``base.identifier``); an axis written ``-`` (or
    blank) adds nothing."""
    return identifier(item_id) + "".join(code for code in identifiers(variation) if code != NO_AXIS)


def choice_variation(horizontal: str, vertical: str) -> tuple[str, ...]:
    """The variation of a choice, ``-`` normalised to blank so equal choices compare equal."""
    return tuple("" if code == NO_AXIS else code for code in identifiers((horizontal, vertical)))


def _axes(update: StockUpdate) -> tuple[str, str]:
    if len(update.variation) > 2:
        raise ValueError(f"{update.item_id} {update.variation}: a choice has at most two axes")
    horizontal, vertical = (*update.variation, "", "")[:2]
    return horizontal, vertical


# --- stock.csv ---------------------------------------------------------------------------


def read_stock_file(name: str, records: CsvRecords) -> Iterator[StockRow | RowError]:
    """stock.csv rows: stockSegment 1 → the item's stockCount, 2 → one choice's count. An
    ``itemName`` column, when the file has one, names the product."""
    if name not in (STOCK_CSV, "wowma_stock"):
        raise ValueError(f"unknown wowma stock file {name!r} (known: {STOCK_CSV})")
    return _read_stock_csv(records)


def _read_stock_csv(records: CsvRecords) -> Iterator[StockRow | RowError]:
    required = (
        "itemCode",
        "stockSegment",
        "stockCount",
        "choicesStockHorizontalCode",
        "choicesStockVerticalCode",
        "choicesStockCount",
    )
    for number, row in header_records(records, required):
        if isinstance(row, RowError):
            yield row
            continue
        item_id = identifier(row["itemCode"])
        if row.get("ctrlCol", "").strip().upper() == _CONTROL_DELETE:
            continue
        if not item_id:
            yield RowError(line=number, field="itemCode", reason="is empty")
            continue
        segment = row["stockSegment"].strip()
        if segment == _SEGMENT_ITEM:
            variation: tuple[str, ...] = ()
            count_field = "stockCount"
        elif segment == _SEGMENT_CHOICE:
            variation = choice_variation(
                row["choicesStockHorizontalCode"], row["choicesStockVerticalCode"]
            )
            count_field = "choicesStockCount"
            if not any(variation):
                if not row[count_field].strip():
                    continue  # the item's own line of a per-choice item carries no stock
                yield RowError(
                    line=number,
                    code=item_id,
                    field="choicesStockHorizontalCode",
                    reason="stockSegment 2 row without choice codes",
                )
                continue
        else:
            yield RowError(
                line=number, code=item_id, field="stockSegment", reason=f"unknown value {segment!r}"
            )
            continue
        sku = join_sku(item_id, variation)
        quantity = int_field(row[count_field], line=number, field=count_field, code=sku)
        if isinstance(quantity, RowError):
            yield quantity
            continue
        yield StockRow(
            line=number,
            sku=sku,
            item_id=item_id,
            variation=variation,
            quantity=quantity,
            name=display_name(
                row.get("itemName", ""),
                row.get("choicesStockHorizontalName", ""),
                row.get("choicesStockVerticalName", ""),
            ),
        )


def write_stock_files(updates: Sequence[StockUpdate]) -> dict[str, bytes]:
    """stock.csv with ctrlCol U; blank columns leave the mall's values unchanged."""
    _api.require_pushable(updates)
    rows = []
    for update in updates:
        values = {"ctrlCol": _CONTROL_UPDATE, "itemCode": update.item_id}
        if not update.variation:
            values |= {"stockSegment": _SEGMENT_ITEM, "stockCount": str(update.quantity)}
        else:
            horizontal, vertical = _axes(update)
            values |= {
                "stockSegment": _SEGMENT_CHOICE,
                "choicesStockHorizontalCode": horizontal,
                "choicesStockVerticalCode": vertical,
                "choicesStockCount": str(update.quantity),
            }
        rows.append([values.get(column, "") for column in STOCK_HEADER])
    return {STOCK_CSV: encode_csv(STOCK_HEADER, rows)}


# --- updateStock API ---------------------------------------------------------------------


def _text(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = text


def xml_bytes(root: ET.Element) -> bytes:
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def build_stock_requests(updates: Sequence[StockUpdate], account: ApiAccount) -> list[HttpRequest]:
    """updateStock XML; one ``<stockUpdateItem>`` per item holds all of that item's choices."""
    if not account.seller_id:
        raise ValueError("Wowma! needs the shop's seller_id (its shopId) for updateStock")
    _api.require_pushable(updates)
    by_item: dict[str, list[StockUpdate]] = {}
    for update in updates:
        by_item.setdefault(update.item_id, []).append(update)
    requests = []
    for batch in _api.chunks(list(by_item.items()), ITEMS_PER_REQUEST):
        root = ET.Element("request")
        _text(root, "shopId", account.seller_id)
        for item_id, item_updates in batch:
            root.append(_stock_update_item(item_id, item_updates))
        requests.append(
            HttpRequest(
                method="POST",
                path=STOCK_PATH,
                headers=(
                    ("Authorization", f"Bearer {account.secret}"),
                    ("Content-Type", "application/xml; charset=utf-8"),
                ),
                body=xml_bytes(root),
            )
        )
    return requests


def _stock_update_item(item_id: str, updates: list[StockUpdate]) -> ET.Element:
    item = ET.Element("stockUpdateItem")
    _text(item, "itemCode", item_id)
    whole_item = [u for u in updates if not u.variation]
    if whole_item and len(whole_item) != len(updates):
        raise ValueError(f"{item_id}: item stock and choice stock in one push")
    if whole_item:
        _text(item, "stockSegment", _SEGMENT_ITEM)
        _text(item, "stockCount", str(whole_item[-1].quantity))
        return item
    _text(item, "stockSegment", _SEGMENT_CHOICE)
    for update in updates:
        horizontal, vertical = _axes(update)
        choice = ET.SubElement(item, "choicesStocks")
        _text(choice, "choicesStockHorizontalCode", horizontal)
        _text(choice, "choicesStockVerticalCode", vertical)
        _text(choice, "choicesStockCount", str(update.quantity))
    return item


def parse_stock_request(request: HttpRequest) -> list[StockUpdate]:
    _api.check_route(request, "POST", STOCK_PATH)
    try:
        root = ET.fromstring(request.body)
    except ET.ParseError as exc:
        raise ValueError(f"updateStock body is not XML: {exc}") from None
    if root.tag != "request" or not (root.findtext("shopId") or "").strip():
        raise ValueError("updateStock body needs <request> with <shopId>")
    items = root.findall("stockUpdateItem")
    if not 1 <= len(items) <= ITEMS_PER_REQUEST:
        raise ValueError(f"{len(items)} stockUpdateItem in one request (1–{ITEMS_PER_REQUEST})")
    updates = []
    for item in items:
        item_id = item.findtext("itemCode") or ""
        if not item_id:
            raise ValueError("stockUpdateItem without itemCode")
        segment = item.findtext("stockSegment")
        if segment == _SEGMENT_ITEM:
            updates.append(StockUpdate(item_id, (), _count(item, "stockCount", item_id)))
        elif segment == _SEGMENT_CHOICE:
            for choice in item.findall("choicesStocks"):
                variation = choice_variation(
                    choice.findtext("choicesStockHorizontalCode") or "",
                    choice.findtext("choicesStockVerticalCode") or "",
                )
                quantity = _count(choice, "choicesStockCount", item_id)
                updates.append(StockUpdate(item_id, variation, quantity))
        else:
            raise ValueError(f"{item_id}: stockSegment {segment!r} is not 1 or 2")
    return updates


def _count(element: ET.Element, tag: str, item_id: str) -> int:
    text = (element.findtext(tag) or "").strip()
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{item_id}: {tag} {text!r} is not a whole number")
    return int(text)


def response_root(status_code: str) -> tuple[ET.Element, ET.Element]:
    """A ``<response>`` and its ``<result>`` holding ``<status>``."""
    root = ET.Element("response")
    result = ET.SubElement(root, "result")
    _text(result, "status", status_code)
    return root, result


def render_stock_response(updates: Sequence[StockUpdate]) -> bytes:
    """``<response><result><status>0</status></result></response>``."""
    root, _ = response_root("0")
    return xml_bytes(root)


def render_error(status: int, message: str, code: str = "PME0000") -> bytes:
    """``<response><result><status>1</status><error><code/><message/></error></result>``."""
    root, result = response_root("1")
    error = ET.SubElement(result, "error")
    _text(error, "code", code)
    _text(error, "message", message)
    return xml_bytes(root)


def raise_on_error(status: int, body: bytes) -> ET.Element:
    """The parsed ``<response>``; raises ValueError unless result status is 0."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        text = body.decode("utf-8", "replace").strip() or "no body"
        raise ValueError(f"HTTP {status}: {text}") from None
    if root.findtext("result/status") != "0" or not 200 <= status < 300:
        code = (root.findtext("result/error/code") or "").strip()
        message = (root.findtext("result/error/message") or "").strip() or "no error message"
        raise ValueError(f"HTTP {status}: " + " ".join(part for part in (code, message) if part))
    return root


def parse_stock_response(status: int, body: bytes) -> None:
    raise_on_error(status, body)


# --- order mails (zaiko's layout: no public sample exists) --------------------------------

SUBJECT = "【au PAY マーケット】新規注文のお知らせ"
MAIL_SENDER = "au PAY マーケット <order@wowma.jp>"


def parse_order_mail(raw: bytes) -> MallOrder:
    mail = _mail.read_mail(raw)
    if SUBJECT not in mail.subject:
        raise NotAnOrderMail(f"not an order confirmation: subject {mail.subject!r}")
    order, items = _mail.labelled_blocks(mail.lines, "商品名")
    order_no = _mail.required(order, "注文番号", "order")
    ordered_at = _mail.parse_ja_datetime(_mail.required(order, "注文日時", "order"), "注文日時")
    if not items:
        raise MailError("no 商品名 line")
    lines = []
    for number, item in enumerate(items, start=1):
        where = f"item {number}"
        item_id = identifier(_mail.required(item, "商品コード", where))
        variation = (
            choice_variation(item.get("横軸コード", ""), item.get("縦軸コード", ""))
            if "横軸コード" in item or "縦軸コード" in item
            else ()
        )
        quantity = _mail.parse_count(_mail.required(item, "数量", where), f"{where} 数量")
        if quantity == 0:
            raise MailError(f"{where} has quantity 0")
        lines.append(
            OrderLine(
                line_no=number,
                item_id=item_id,
                variation=variation,
                sku=join_sku(item_id, variation),
                quantity=quantity,
                name=item["商品名"],
            )
        )
    return MallOrder(order_no=order_no, ordered_at=ordered_at, lines=tuple(lines))


def render_order_mail(order: MallOrder, shop_name: str) -> bytes:
    if order.status != "new":
        raise ValueError(f"wowma mails carry new orders only, not {order.status}")
    ordered_at = _mail.format_ja_datetime(order.ordered_at, "%Y/%m/%d %H:%M:%S")
    rule = "-" * 60
    items = "\n".join(f"{rule}\n{_render_item(line)}" for line in order.lines)
    total = sum(line.quantity for line in order.lines) * 1000
    body = f"""{shop_name} 御中

au PAY マーケットで新しいご注文がありました。

■注文番号：{order.order_no}
■注文日時：{ordered_at}
■ご注文者：山田 花子 様

■ご注文商品
{items}
{rule}
■合計金額：{total:,}円
"""
    return _mail.render_mail(
        sender=MAIL_SENDER,
        recipient="shop@example.jp",
        subject=SUBJECT,
        body=body,
        sent_at=order.ordered_at,
        charset="utf-8",
    )


def _render_item(line: OrderLine) -> str:
    choice = ""
    if line.variation:
        horizontal, vertical = _axes(StockUpdate(line.item_id, line.variation, line.quantity))
        choice = f"横軸コード：{horizontal or NO_AXIS}\n縦軸コード：{vertical or NO_AXIS}\n"
    return (
        f"商品名：{line.name}\n商品コード：{line.item_id}\n{choice}"
        f"単価：1,000円\n数量：{line.quantity:,}\n小計：{line.quantity * 1000:,}円"
    )
