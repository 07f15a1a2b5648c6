"""Yahoo!ショッピング (yahoo): quantity.csv, the setStock API (≤1,000 ``code:subcode`` items a
request, 1 request/s) and new-format 注文確認 mails. An item with options is the variation
``(sub-code,)`` and its SKU is that sub-code, else the item code (SPEC §2).

Unverified: quantity.csv columns, setStock XML bodies and the mail's ``商品コード：code/subcode`` line follow public third-party code, not an official spec.
"""

from __future__ import annotations

import re
import urllib.parse
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
    int_field,
)

BATCH_SIZE = 1000
REQUESTS_PER_SECOND = 1.0
MAX_QUANTITY = 999_999_999
STOCK_PATH = "/ShoppingWebService/V1/setStock"
QUANTITY_CSV = "quantity.csv"
# The older public form; allow-overdraft left blank keeps the store's own setting.
QUANTITY_HEADER = ("code", "sub-code", "quantity", "allow-overdraft")

CAPABILITY = Capability(
    kind="yahoo",
    name_ja="Yahoo!ショッピング",
    intake=("mail",),
    stock_out=("ftp", "api"),
    options=("clear_store_cancel_flag",),
    ftp_dir="/",
    stock_files=(QUANTITY_CSV,),
    import_formats=("yahoo_quantity",),
    api_batch_size=BATCH_SIZE,
    api_requests_per_s=REQUESTS_PER_SECOND,
    stock_read=True,
    unverified=(
        "quantity.csv columns, setStock XML bodies and the mail's code line follow public "
        "third-party code, not an official spec"
    ),
)


def join_sku(item_id: str, variation: tuple[str, ...]) -> str:
    """The sub-code when there is one, else the item code (each by ``base.identifier``)."""
    sub_code = identifier(variation[0]) if variation else ""
    return sub_code or identifier(item_id)


def _variation(sub_code: str) -> tuple[str, ...]:
    code = identifier(sub_code)
    return (code,) if code else ()


# --- quantity.csv (also ポンパレモール's shape) --------------------------------------------


def read_quantity_csv(records: CsvRecords) -> Iterator[StockRow | RowError]:
    """Rows of a ``code,sub-code,quantity,...`` file; extra columns (stock-close) are kept
    out of the way, sub-code may be missing, name names the product."""
    for number, row in header_records(records, ("code", "quantity")):
        if isinstance(row, RowError):
            yield row
            continue
        code = identifier(row["code"])
        if not code:
            yield RowError(line=number, field="code", reason="is empty")
            continue
        variation = _variation(row.get("sub-code", ""))
        sku = join_sku(code, variation)
        quantity = int_field(row["quantity"], line=number, field="quantity", code=sku)
        if isinstance(quantity, RowError):
            yield quantity
            continue
        yield StockRow(
            line=number,
            sku=sku,
            item_id=code,
            variation=variation,
            quantity=quantity,
            name=display_name(row.get("name", "")),
        )


def write_quantity_csv(updates: Sequence[StockUpdate]) -> bytes:
    _api.require_pushable(updates)
    return encode_csv(
        QUANTITY_HEADER,
        ([u.item_id, _sub_code(u), str(u.quantity), ""] for u in updates),
    )


def _sub_code(update: StockUpdate) -> str:
    if len(update.variation) > 1:
        raise ValueError(f"{update.item_id} {update.variation}: one sub-code at most")
    return update.variation[0] if update.variation else ""


def read_stock_file(name: str, records: CsvRecords) -> Iterator[StockRow | RowError]:
    """quantity.csv (``name`` is the file name or the ``yahoo_quantity`` format)."""
    if name not in (QUANTITY_CSV, "yahoo_quantity"):
        raise ValueError(f"unknown yahoo stock file {name!r} (known: {QUANTITY_CSV})")
    return read_quantity_csv(records)


def write_stock_files(updates: Sequence[StockUpdate]) -> dict[str, bytes]:
    return {QUANTITY_CSV: write_quantity_csv(updates)}


# --- setStock ------------------------------------------------------------------------------


def item_code_list(updates: Sequence[StockUpdate]) -> tuple[str, str]:
    """``item_code`` and ``quantity`` parameter values: comma lists aligned by position,
    an item with a sub-code written ``code:subcode``."""
    codes = []
    for update in updates:
        sub_code = _sub_code(update)
        for part in (update.item_id, sub_code):
            if "," in part or ":" in part:
                raise ValueError(f"code {part!r} contains ',' or ':' and cannot be sent")
        codes.append(f"{update.item_id}:{sub_code}" if sub_code else update.item_id)
    return ",".join(codes), ",".join(str(u.quantity) for u in updates)


def parse_item_code_list(item_code: str, quantity: str) -> list[StockUpdate]:
    codes = item_code.split(",")
    quantities = quantity.split(",")
    if len(codes) != len(quantities):
        raise ValueError(f"{len(codes)} item codes but {len(quantities)} quantities")
    updates = []
    for code, value in zip(codes, quantities, strict=True):
        if not code:
            raise ValueError("empty item code")
        # A leading + or - would add or subtract: zaiko always overwrites.
        if not (value.isascii() and value.isdigit()):
            raise ValueError(f"{code}: quantity {value!r} is not an absolute whole number")
        item_id, _, sub_code = code.partition(":")
        updates.append(StockUpdate(item_id, _variation(sub_code), int(value)))
    return updates


def form_fields(request: HttpRequest) -> dict[str, str]:
    """The form-encoded body as a dict; a repeated field is an error."""
    pairs = urllib.parse.parse_qsl(request.body.decode("ascii"), keep_blank_values=True)
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise ValueError("a form field is repeated")
    return fields


def build_stock_requests(updates: Sequence[StockUpdate], account: ApiAccount) -> list[HttpRequest]:
    """One setStock per 1,000 items (Bearer token, seller_id, item_code, quantity)."""
    _api.require_pushable(updates)
    requests = []
    for batch in _api.chunks(updates, BATCH_SIZE):
        item_code, quantity = item_code_list(batch)
        form = {"seller_id": account.seller_id, "item_code": item_code, "quantity": quantity}
        requests.append(_form_post(STOCK_PATH, account, form))
    return requests


def _form_post(path: str, account: ApiAccount, form: dict[str, str]) -> HttpRequest:
    return HttpRequest(
        method="POST",
        path=path,
        headers=(
            ("Authorization", f"Bearer {account.secret}"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ),
        body=urllib.parse.urlencode(form).encode("ascii"),
    )


def parse_stock_request(request: HttpRequest) -> list[StockUpdate]:
    _api.check_route(request, "POST", STOCK_PATH)
    fields = form_fields(request)
    for name in ("seller_id", "item_code", "quantity"):
        if not fields.get(name):
            raise ValueError(f"setStock without {name}")
    updates = parse_item_code_list(fields["item_code"], fields["quantity"])
    if len(updates) > BATCH_SIZE:
        raise ValueError(f"{len(updates)} item codes in one request (at most {BATCH_SIZE})")
    return updates


def _xml_bytes(root: ET.Element) -> bytes:
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def render_stock_response(updates: Sequence[StockUpdate]) -> bytes:
    """``<ResultSet>`` with one ``<Result>`` per item, as setStock answers."""
    root = ET.Element(
        "ResultSet",
        totalResultsAvailable=str(len(updates)),
        totalResultsReturned=str(len(updates)),
        firstResultPosition="1",
    )
    for update in updates:
        result = ET.SubElement(root, "Result")
        ET.SubElement(result, "ItemCode").text = update.item_id
        ET.SubElement(result, "SubCode").text = _sub_code(update)
        ET.SubElement(result, "Quantity").text = str(update.quantity)
    return _xml_bytes(root)


def render_error(status: int, message: str, code: str = "") -> bytes:
    """``<Error><Message/><Code/></Error>`` (status is the HTTP one; code e.g. ``st-02104``)."""
    root = ET.Element("Error")
    ET.SubElement(root, "Message").text = message
    ET.SubElement(root, "Code").text = code
    return _xml_bytes(root)


def parse_stock_response(status: int, body: bytes) -> None:
    """A ``<ResultSet>`` with status 200 is success; an ``<Error>`` raises ValueError."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        if 200 <= status < 300:
            raise ValueError(f"HTTP {status}: setStock answer is not XML") from None
        raise ValueError(f"HTTP {status}: {body.decode('utf-8', 'replace').strip()}") from None
    if root.tag == "Error":
        message = (root.findtext("Message") or "").strip()
        code = (root.findtext("Code") or "").strip()
        raise ValueError(f"HTTP {status}: " + " ".join(part for part in (code, message) if part))
    if not 200 <= status < 300:
        raise ValueError(f"HTTP {status}: {root.tag}")


# --- order mails (new format) --------------------------------------------------------------

SUBJECT_PREFIX = "【Yahoo!ショッピング】注文確認"
MAIL_SENDER = "Yahoo!ショッピング <store-shopping-order-master@mail.yahoo.co.jp>"
_OLD_FORMAT_MARK = "でのご注文:"
_ITEM_START = re.compile(r"^（(\d+)）\s*(.*)$")
_PRICE = re.compile(r"^([0-9,]+)円\s*×\s*([0-9,]+)\s*＝\s*([0-9,]+)円$")
_SECTION_END = re.compile(r"^={10,}$")


def parse_order_mail(raw: bytes) -> MallOrder:
    """A new-format 注文確認 mail → MallOrder (order number = the whole 注文ID)."""
    mail = _mail.read_mail(raw)
    if _OLD_FORMAT_MARK in mail.subject:
        raise MailError(f"old-format Yahoo order mail is not supported: subject {mail.subject!r}")
    if not mail.subject.startswith(SUBJECT_PREFIX):
        raise NotAnOrderMail(f"not an order confirmation: subject {mail.subject!r}")
    lines = [line.strip() for line in mail.lines]
    fields: dict[str, str] = {}
    for line in lines:
        labelled = _mail.split_label(line)
        if labelled is not None:
            fields.setdefault(*labelled)
    order_no = _mail.required(fields, "注文ID", "order")
    ordered_at = _mail.parse_ja_datetime(_mail.required(fields, "注文日時", "order"), "注文日時")
    return MallOrder(order_no=order_no, ordered_at=ordered_at, lines=tuple(_item_lines(lines)))


def _item_lines(lines: list[str]) -> Iterator[OrderLine]:
    try:
        start = lines.index("商品情報")
    except ValueError:
        raise MailError("no 商品情報 section") from None
    blocks: list[tuple[str, list[str]]] = []
    for line in lines[start + 1 :]:
        if _SECTION_END.match(line):
            break
        item_start = _ITEM_START.match(line)
        if item_start is not None:
            blocks.append((item_start.group(2), []))
        elif blocks and line:
            blocks[-1][1].append(line)
    if not blocks:
        raise MailError("no （1） item in the 商品情報 section")
    for number, (name, rest) in enumerate(blocks, start=1):
        if not rest:
            raise MailError(f"item {number} has no code line")
        code_line = rest[0]
        labelled = _mail.split_label(code_line)
        code_text = labelled[1] if labelled is not None else code_line
        item_id, _, sub_code = code_text.partition("/")
        item_id = identifier(item_id)
        if not item_id:
            raise MailError(f"item {number} has an empty item code")
        quantity = next(
            (
                _mail.parse_count(price.group(2), f"item {number} quantity")
                for price in map(_PRICE.match, rest[1:])
                if price is not None
            ),
            None,
        )
        if quantity is None:
            raise MailError(f"item {number} has no quantity (単価円×数量＝小計円 line)")
        if quantity == 0:
            raise MailError(f"item {number} has quantity 0")
        variation = _variation(sub_code)
        yield OrderLine(
            line_no=number,
            item_id=item_id,
            variation=variation,
            sku=join_sku(item_id, variation),
            quantity=quantity,
            name=name,
        )


def render_order_mail(order: MallOrder, shop_name: str) -> bytes:
    """The store copy of a new-format 注文確認 mail (buyer and prices are placeholders)."""
    if order.status != "new":
        raise ValueError(f"yahoo mails carry new orders only, not {order.status}")
    ordered_at = _mail.format_ja_datetime(order.ordered_at, "%Y年%m月%d日 %H時%M分%S秒")
    total = sum(line.quantity for line in order.lines) * 1000
    items = "\n".join(_render_item(n, line) for n, line in enumerate(order.lines, start=1))
    body = f"""{shop_name} ご担当者様

Yahoo!ショッピングで以下のご注文がありました。

注文ID　：{order.order_no}
注文日時：{ordered_at}
ご注文者：山田 花子 様

商品情報
￣￣￣￣￣￣￣￣￣￣
{items}
===============
商品の合計金額 ：{total:,}円
手数料：0円
送料：0円
ギフト包装料：0円
ポイント利用分：0円
クーポン利用分：-0円
合計金額 ：{total:,}円
付与ポイント：{total // 100}ポイント
"""
    return _mail.render_mail(
        sender=MAIL_SENDER,
        recipient="shop@example.jp",
        subject=f"{SUBJECT_PREFIX}：{shop_name}",
        body=body,
        sent_at=order.ordered_at,
        charset="utf-8",
    )


def _render_item(number: int, line: OrderLine) -> str:
    code = f"{line.item_id}/{line.variation[0]}" if line.variation else line.item_id
    amount = line.quantity * 1000
    return f"（{number}）{line.name}\n商品コード：{code}\n1,000円×{line.quantity:,}＝{amount:,}円\n"


# --- getStock: what the mall shows (the audit) -----------------------------------------------
# [V] POST /ShoppingWebService/V1/getStock with seller_id and item_code (≤ 1,000, code:subcode);
# the answer's XML follows setStock's (unverified).

STOCK_READ_PATH = "/ShoppingWebService/V1/getStock"
STOCK_READ_BATCH = BATCH_SIZE


def build_stock_read_requests(
    items: Sequence[tuple[str, tuple[str, ...]]], account: ApiAccount
) -> list[HttpRequest]:
    requests = []
    for batch in _api.chunks(list(items), STOCK_READ_BATCH):
        codes, _ = item_code_list([StockUpdate(item, variation, 0) for item, variation in batch])
        form = {"seller_id": account.seller_id, "item_code": codes}
        requests.append(_form_post(STOCK_READ_PATH, account, form))
    return requests


def parse_stock_read_response(status: int, body: bytes) -> list[StockUpdate]:
    """What the mall shows of the items asked; one it does not have is left out."""
    parse_stock_response(status, body)  # an <Error>, or no XML, raises
    root = ET.fromstring(body)
    shown = []
    for result in root.iter("Result"):
        code = result.findtext("ItemCode") or ""
        quantity = (result.findtext("Quantity") or "").strip()
        if not code or not quantity.lstrip("-").isdigit():
            raise ValueError(f"getStock result without item code or quantity: {code!r}")
        shown.append(StockUpdate(code, _variation(result.findtext("SubCode") or ""), int(quantity)))
    return shown


def read_stock_read_request(request: HttpRequest) -> list[tuple[str, tuple[str, ...]]]:
    _api.check_route(request, "POST", STOCK_READ_PATH)
    fields = form_fields(request)
    if not fields.get("seller_id") or not fields.get("item_code"):
        raise ValueError("getStock without seller_id or item_code")
    codes = fields["item_code"].split(",")
    if len(codes) > STOCK_READ_BATCH:
        raise ValueError(f"{len(codes)} item codes in one request (at most {STOCK_READ_BATCH})")
    keys = []
    for code in codes:
        item_id, _, sub_code = code.partition(":")
        if not item_id:
            raise ValueError("empty item code")
        keys.append((item_id, _variation(sub_code)))
    return keys


def render_stock_read_response(shown: Sequence[StockUpdate]) -> bytes:
    return render_stock_response(shown)
