"""楽天市場 (rakuten): RMS batch files (item.csv, select.csv, SKU-era normal-item.csv), Inventory
API 2.0 bulk-upsert, order-confirmation mails and the RMS order API (searchOrder → getOrder). A
legacy choice is the variation ``(横軸子番号, 縦軸子番号)`` (SKU = 商品管理番号 + both); an SKU-format
variant is ``("sku:<SKU管理番号>",)`` (SKU = SKU管理番号; ``normal-inventory`` is the item itself);
the APIs only know SKU-format variants.

Unverified: headers, API payloads and mail layout follow public third-party code; normal-item.csv columns, error codes and the cancellation mail are zaiko's choice.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Literal, NamedTuple

import msgspec

from protocols.malls import _api, _mail
from protocols.malls.base import (
    CHOICE_PREFIX,
    ApiAccount,
    Capability,
    CsvRecords,
    HttpRequest,
    MailError,
    MallApiError,
    MallOrder,
    NotAnOrderMail,
    OrderLine,
    OrderPoll,
    RowError,
    StockRow,
    StockUpdate,
    display_name,
    encode_csv,
    header_records,
    identifier,
    int_field,
)

BATCH_SIZE = 400
REQUESTS_PER_SECOND = 1.0
MAX_QUANTITY = 99_999
GET_ORDER_BATCH_SIZE = 100
# RMS refuses a searchOrder window longer than 63 days (endDatetime is inclusive).
SEARCH_WINDOW = timedelta(days=63)

STOCK_PATH = "/es/2.0/inventories/bulk-upsert"
SEARCH_ORDER_PATH = "/es/2.0/order/searchOrder/"
GET_ORDER_PATH = "/es/2.0/order/getOrder/"

SKU_PREFIX = "sku:"
# Items migrated from 通常在庫 to the SKU model carry this SKU管理番号 (one per item).
NORMAL_INVENTORY = "normal-inventory"

ITEM_CSV = "item.csv"
SELECT_CSV = "select.csv"
NORMAL_ITEM_CSV = "normal-item.csv"

CAPABILITY = Capability(
    kind="rakuten",
    name_ja="楽天市場",
    intake=("mail", "api"),
    stock_out=("ftp", "api"),
    options=("take_buyer_cancel",),
    ftp_dir="/ritem/batch",
    stock_files=(ITEM_CSV, SELECT_CSV, NORMAL_ITEM_CSV),
    import_formats=("rakuten_item", "rakuten_select", "rakuten_normal_item"),
    api_batch_size=BATCH_SIZE,
    api_requests_per_s=REQUESTS_PER_SECOND,
    stock_read=True,
    unverified=(
        "headers, API payloads and mail layout follow public third-party code; normal-item.csv "
        "columns, error codes and the cancellation mail are zaiko's choice"
    ),
)

ITEM_HEADER = (
    "コントロールカラム",
    "商品管理番号（商品URL）",
    "在庫タイプ",
    "在庫数",
    "在庫数表示",
    "項目選択肢別在庫用横軸項目名",
    "項目選択肢別在庫用縦軸項目名",
    "項目選択肢別在庫用残り表示閾値",
    "在庫戻しフラグ",
    "在庫切れ時の注文受付",
    "在庫あり時納期管理番号",
    "在庫切れ時納期管理番号",
)
SELECT_HEADER = (
    "項目選択肢用コントロールカラム",
    "商品管理番号（商品URL）",
    "選択肢タイプ",
    "Select/Checkbox用項目名",
    "Select/Checkbox用選択肢",
    "項目選択肢別在庫用横軸選択肢",
    "項目選択肢別在庫用横軸選択肢子番号",
    "項目選択肢別在庫用縦軸選択肢",
    "項目選択肢別在庫用縦軸選択肢子番号",
    "項目選択肢別在庫用取り寄せ可能表示",
    "項目選択肢別在庫用在庫数",
    "在庫戻しフラグ",
    "在庫切れ時の注文受付",
    "在庫あり時納期管理番号",
    "在庫切れ時納期管理番号",
)
NORMAL_ITEM_HEADER = ("コントロールカラム", "商品管理番号（商品URL）", "SKU管理番号", "在庫数")

_MANAGE_NUMBER = "商品管理番号（商品URL）"
_STOCK_TYPE_NORMAL = "1"
# 0 = stock not managed, 2 = stock per choice (its rows are in select.csv): no SKU row here.
_STOCK_TYPES_ELSEWHERE = ("0", "2")
_CHOICE_TYPE_STOCK = "i"
# s / c are plain Select and Checkbox options that carry no stock.
_CHOICE_TYPES_WITHOUT_STOCK = ("s", "c")
_CONTROL_DELETE = "d"


# --- identifiers -------------------------------------------------------------------------

# A legacy choice whose 子番号 is empty is told apart by its choice name: the variation's
# component for that axis is base.CHOICE_PREFIX + the name, and joins into the SKU as
# "-" + the name.
_CHOICE_JOINER = "-"


def join_sku(item_id: str, variation: tuple[str, ...]) -> str:
    """SKU管理番号 for an SKU-format variant, else 商品管理番号 + 横軸子番号 + 縦軸子番号, where
    an axis named by its choice (its 子番号 is empty) adds "-" + the choice name. Every
    component by ``base.identifier`` (surrounding whitespace dropped)."""
    variant = _variant_id(variation)
    if variant is not None:
        return identifier(item_id) if variant == NORMAL_INVENTORY else variant
    return identifier(item_id) + "".join(map(_joined_axis, variation))


def _joined_axis(component: str) -> str:
    if component.startswith(CHOICE_PREFIX):
        return _CHOICE_JOINER + component[len(CHOICE_PREFIX) :]
    return identifier(component)


def item_id_forms(item_id: str) -> tuple[str, ...]:
    """The 商品管理番号 an order's printed code may stand for: itself, and lower-cased (RMS
    keeps 商品管理番号 in lower case; 商品番号, which mails print, may have capitals)."""
    return (item_id, item_id.lower())


def choice_axis(sub_code: str, choice_name: str) -> str:
    """One axis of a legacy choice: its 子番号, or, when that is empty (a real download can
    have it so), its choice name, so that two choices never join into one SKU."""
    code = identifier(sub_code)
    if code:
        return code
    name = display_name(choice_name)
    return CHOICE_PREFIX + name if name else ""


def is_named_by_choice(variation: tuple[str, ...]) -> bool:
    """Whether an axis of this variation is a choice name (its 子番号 was empty)."""
    return any(component.startswith(CHOICE_PREFIX) for component in variation)


def sku_variation(variant_id: str) -> tuple[str, ...]:
    """The variation that addresses an SKU-format variant (SKU管理番号 / API variantId)."""
    variant = identifier(variant_id)
    return () if variant in ("", NORMAL_INVENTORY) else (SKU_PREFIX + variant,)


def _variant_id(variation: tuple[str, ...]) -> str | None:
    if len(variation) == 1 and variation[0].startswith(SKU_PREFIX):
        return identifier(variation[0][len(SKU_PREFIX) :])
    return None


def _api_variant_id(update_item: str, variation: tuple[str, ...]) -> str:
    if not variation:
        return NORMAL_INVENTORY
    variant = _variant_id(variation)
    if variant is None:
        raise ValueError(
            f"{update_item} {variation}: a legacy 横軸/縦軸 choice cannot be addressed by the "
            "Inventory API (it needs the SKU管理番号); push it through select.csv"
        )
    return variant


# --- stock files -------------------------------------------------------------------------

_FORMATS = {
    "rakuten_item": ITEM_CSV,
    "rakuten_select": SELECT_CSV,
    "rakuten_normal_item": NORMAL_ITEM_CSV,
}


def read_stock_file(name: str, records: CsvRecords) -> Iterator[StockRow | RowError]:
    """Rows of item.csv, select.csv or normal-item.csv (by file name or import format name).

    ``records`` are ``csv_records(...)``. Rows without stock of their own (在庫タイプ 0/2,
    Select/Checkbox options, deletions, SKU parent rows) yield nothing. Extra columns are
    read where they help: 商品名 names the product, 商品番号 is kept beside 商品管理番号.
    """
    file_name = _FORMATS.get(name, name)
    if file_name == ITEM_CSV:
        return _read_item_csv(records)
    if file_name == SELECT_CSV:
        return _read_select_csv(records)
    if file_name == NORMAL_ITEM_CSV:
        return _read_normal_item_csv(records)
    known = ", ".join([*_FORMATS.values(), *_FORMATS])
    raise ValueError(f"unknown rakuten stock file {name!r} (known: {known})")


_ITEM_NUMBER = "商品番号"
_ITEM_NAME = "商品名"


def _alt_item_id(row: dict[str, str], item_id: str) -> str:
    """商品番号, which order mails print, when the file has it and it is not 商品管理番号."""
    item_number = identifier(row.get(_ITEM_NUMBER, ""))
    return item_number if item_number != item_id else ""


def _read_item_csv(records: CsvRecords) -> Iterator[StockRow | RowError]:
    required = (_MANAGE_NUMBER, "在庫タイプ", "在庫数")
    for number, row in header_records(records, required):
        if isinstance(row, RowError):
            yield row
            continue
        item_id = identifier(row[_MANAGE_NUMBER])
        if row.get("コントロールカラム", "").strip() == _CONTROL_DELETE:
            continue
        if not item_id:
            yield RowError(line=number, field=_MANAGE_NUMBER, reason="is empty")
            continue
        stock_type = row["在庫タイプ"].strip()
        if stock_type in _STOCK_TYPES_ELSEWHERE:
            continue
        if stock_type != _STOCK_TYPE_NORMAL:
            yield RowError(
                line=number,
                code=item_id,
                field="在庫タイプ",
                reason=f"unknown value {stock_type!r}",
            )
            continue
        quantity = int_field(row["在庫数"], line=number, field="在庫数", code=item_id)
        if isinstance(quantity, RowError):
            yield quantity
            continue
        yield StockRow(
            line=number,
            sku=item_id,
            item_id=item_id,
            quantity=quantity,
            name=display_name(row.get(_ITEM_NAME, "")),
            alt_item_id=_alt_item_id(row, item_id),
        )


_HORIZONTAL_CODE = "項目選択肢別在庫用横軸選択肢子番号"
_VERTICAL_CODE = "項目選択肢別在庫用縦軸選択肢子番号"
_HORIZONTAL_NAME = "項目選択肢別在庫用横軸選択肢"
_VERTICAL_NAME = "項目選択肢別在庫用縦軸選択肢"


_AXIS_COLUMNS = ((_HORIZONTAL_CODE, _HORIZONTAL_NAME), (_VERTICAL_CODE, _VERTICAL_NAME))


class _Choice(NamedTuple):
    """One stock choice row of select.csv, as read."""

    line: int
    codes: tuple[str, str]  # 横軸/縦軸 子番号, by base.identifier
    names: tuple[str, str]  # 横軸/縦軸 choice names
    quantity: str


_COUNT = "項目選択肢別在庫用在庫数"


def _read_select_csv(records: CsvRecords) -> Iterator[StockRow | RowError]:
    """The stock choices of select.csv, an item's rows at a time (RMS writes them together):
    the default rule's codes when they tell the item's choices apart, else see
    ``_item_choices``."""
    required = (_MANAGE_NUMBER, "選択肢タイプ", _HORIZONTAL_CODE, _VERTICAL_CODE, _COUNT)
    item_id, choices = "", list[_Choice]()
    for number, row in header_records(records, required):
        if isinstance(row, RowError):
            yield row
            continue
        row_item = identifier(row[_MANAGE_NUMBER])
        choice_type = row["選択肢タイプ"].strip()
        if row.get("項目選択肢用コントロールカラム", "").strip() == _CONTROL_DELETE:
            continue
        if choice_type in _CHOICE_TYPES_WITHOUT_STOCK:
            continue
        if choice_type != _CHOICE_TYPE_STOCK:
            yield RowError(
                line=number,
                code=row_item,
                field="選択肢タイプ",
                reason=f"unknown value {choice_type!r}",
            )
            continue
        if not row_item:
            yield RowError(line=number, field=_MANAGE_NUMBER, reason="is empty")
            continue
        if row_item != item_id:
            yield from _item_choices(item_id, choices)
            item_id, choices = row_item, []
        choices.append(
            _Choice(
                number,
                (identifier(row[_HORIZONTAL_CODE]), identifier(row[_VERTICAL_CODE])),
                (
                    display_name(row.get(_HORIZONTAL_NAME, "")),
                    display_name(row.get(_VERTICAL_NAME, "")),
                ),
                row[_COUNT],
            )
        )
    yield from _item_choices(item_id, choices)


def _item_choices(item_id: str, choices: list[_Choice]) -> Iterator[StockRow | RowError]:
    """One item's stock choices. Two choices never become one SKU: where the default rule
    (商品管理番号 + 子番号) gives several of them one code (a 子番号 is empty, as real downloads
    have it), each axis of theirs without 子番号 is told apart by its choice name
    (``choice_axis``), and the job log says so; choices that even their names do not tell
    apart are refused, all of them, naming the fix."""
    by_code: dict[str, list[_Choice]] = {}
    for choice in choices:
        by_code.setdefault(join_sku(item_id, choice.codes), []).append(choice)
    variations: dict[int, tuple[str, ...]] = {}
    for same in by_code.values():
        for choice in same:
            variations[choice.line] = (
                choice.codes
                if len(same) == 1
                else tuple(map(choice_axis, choice.codes, choice.names))
            )
    lines_of: dict[str, list[int]] = {}
    for line, variation in variations.items():
        lines_of.setdefault(join_sku(item_id, variation), []).append(line)
    named = [choice for choice in choices if is_named_by_choice(variations[choice.line])]
    note = (
        f"line {named[0].line} [{item_id}]: 子番号 is empty for {len(named)} choices, so "
        f"their SKU codes are made from the choice names ({item_id}-<choice name>); to use "
        "other codes, map them with zaiko listings import"
        if named
        else ""
    )
    for choice in choices:
        variation = variations[choice.line]
        sku = join_sku(item_id, variation)
        others = [line for line in lines_of[sku] if line != choice.line]
        if others:
            yield RowError(
                line=choice.line,
                code=sku,
                field=_HORIZONTAL_CODE,
                reason=f"is empty and the choice names do not tell this choice from line "
                f"{others[0]}'s either (no listing can): none of them is read; give them "
                "their 子番号 in RMS and download the file again",
            )
            continue
        quantity = int_field(choice.quantity, line=choice.line, field=_COUNT, code=sku)
        if isinstance(quantity, RowError):
            yield quantity
            continue
        is_named = is_named_by_choice(variation)
        yield StockRow(
            line=choice.line,
            sku=sku,
            item_id=item_id,
            variation=variation,
            quantity=quantity,
            name=display_name(*choice.names),
            note=note if is_named else "",
            code_hint=(
                "; 子番号 is empty, so the code is made from the choice name: set the 子番号 "
                "in RMS, or map the choice to a SKU with zaiko listings import (variation "
                f"{CHOICE_PREFIX}<choice name>) and import with --shop"
                if is_named
                else ""
            ),
        )
        if is_named:
            note = ""  # said once per item


def _read_normal_item_csv(records: CsvRecords) -> Iterator[StockRow | RowError]:
    required = (_MANAGE_NUMBER, "SKU管理番号", "在庫数")
    parent = parent_number = parent_name = ""
    for number, row in header_records(records, required):
        if isinstance(row, RowError):
            yield row
            continue
        variant = identifier(row["SKU管理番号"])
        if not variant:
            # A parent row (item-level fields only); its SKU rows may leave the item id blank.
            parent = identifier(row[_MANAGE_NUMBER])
            parent_number = _alt_item_id(row, parent)
            parent_name = display_name(row.get(_ITEM_NAME, ""))
            continue
        if row.get("コントロールカラム", "").strip() == _CONTROL_DELETE:
            continue
        item_id = identifier(row[_MANAGE_NUMBER]) or parent
        if not item_id:
            yield RowError(
                line=number, code=variant, field=_MANAGE_NUMBER, reason="is empty and no parent row"
            )
            continue
        variation = sku_variation(variant)
        sku = join_sku(item_id, variation)
        quantity = int_field(row["在庫数"], line=number, field="在庫数", code=sku)
        if isinstance(quantity, RowError):
            yield quantity
            continue
        own_parent = item_id == parent
        yield StockRow(
            line=number,
            sku=sku,
            item_id=item_id,
            variation=variation,
            quantity=quantity,
            name=display_name(row.get(_ITEM_NAME, "")) or (parent_name if own_parent else ""),
            alt_item_id=_alt_item_id(row, item_id) or (parent_number if own_parent else ""),
        )


def write_stock_files(updates: Sequence[StockUpdate]) -> dict[str, bytes]:
    """item.csv for whole items, select.csv for 横軸/縦軸 choices, normal-item.csv for SKUs.

    Only files with rows are returned, item.csv first (RMS applies item rows before choices).
    Blank columns leave the mall's value unchanged.
    """
    _api.require_pushable(updates)
    items: list[list[str]] = []
    choices: list[list[str]] = []
    skus: list[list[str]] = []
    for update in updates:
        quantity = str(min(update.quantity, MAX_QUANTITY))
        variant = _variant_id(update.variation)
        if not update.variation:
            items.append(
                _in_columns(
                    ITEM_HEADER,
                    {
                        "コントロールカラム": "u",
                        _MANAGE_NUMBER: update.item_id,
                        "在庫タイプ": _STOCK_TYPE_NORMAL,
                        "在庫数": quantity,
                    },
                )
            )
        elif variant is not None:
            skus.append(["u", update.item_id, variant, quantity])
        else:
            values = {
                "項目選択肢用コントロールカラム": "u",
                _MANAGE_NUMBER: update.item_id,
                "選択肢タイプ": _CHOICE_TYPE_STOCK,
                "項目選択肢別在庫用在庫数": quantity,
            }
            # an axis without 子番号 is addressed by its choice name
            for axis, (code_column, name_column) in zip(_axes(update), _AXIS_COLUMNS, strict=True):
                if axis.startswith(CHOICE_PREFIX):
                    values[name_column] = axis[len(CHOICE_PREFIX) :]
                else:
                    values[code_column] = axis
            choices.append(_in_columns(SELECT_HEADER, values))
    files: dict[str, bytes] = {}
    if items:
        files[ITEM_CSV] = encode_csv(ITEM_HEADER, items)
    if choices:
        files[SELECT_CSV] = encode_csv(SELECT_HEADER, choices)
    if skus:
        files[NORMAL_ITEM_CSV] = encode_csv(NORMAL_ITEM_HEADER, skus)
    return files


def _in_columns(header: Sequence[str], values: dict[str, str]) -> list[str]:
    return [values.get(column, "") for column in header]


def _axes(update: StockUpdate) -> tuple[str, str]:
    if len(update.variation) > 2:
        raise ValueError(
            f"{update.item_id} {update.variation}: a rakuten choice has at most two axes"
        )
    horizontal, vertical = (*update.variation, "")[:2]
    return horizontal, vertical


# --- Inventory API 2.0 -------------------------------------------------------------------


class _Inventory(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    manage_number: str
    variant_id: str
    mode: Literal["ABSOLUTE", "RELATIVE"]
    quantity: int


class _BulkUpsert(msgspec.Struct, forbid_unknown_fields=True):
    inventories: list[_Inventory]


class _ApiError(msgspec.Struct):
    code: str
    message: str


class _ErrorBody(msgspec.Struct):
    errors: list[_ApiError]


# The simulator's error code; the real codes per failure are not public.
SIMULATED_ERROR_CODE = "GE0001"


def authorization(account: ApiAccount) -> tuple[str, str]:
    """``Authorization: ESA base64(serviceSecret:licenseKey)``; ``account.secret`` holds both."""
    if ":" not in account.secret:
        raise ValueError("rakuten API credential must be 'serviceSecret:licenseKey'")
    return ("Authorization", "ESA " + base64.b64encode(account.secret.encode()).decode("ascii"))


def build_stock_requests(updates: Sequence[StockUpdate], account: ApiAccount) -> list[HttpRequest]:
    """One bulk-upsert per 400 items, quantities ABSOLUTE and capped at the mall's 99,999."""
    _api.require_pushable(updates)
    auth = authorization(account)
    inventories = [
        _Inventory(
            manage_number=u.item_id,
            variant_id=_api_variant_id(u.item_id, u.variation),
            mode="ABSOLUTE",
            quantity=min(u.quantity, MAX_QUANTITY),
        )
        for u in updates
    ]
    return [
        _json_post(STOCK_PATH, auth, _BulkUpsert(inventories=list(batch)))
        for batch in _api.chunks(inventories, BATCH_SIZE)
    ]


def _json_post(path: str, auth: tuple[str, str], body: msgspec.Struct) -> HttpRequest:
    return HttpRequest(
        method="POST",
        path=path,
        headers=(auth, _api.JSON_CONTENT_TYPE),
        body=msgspec.json.encode(body),
    )


def parse_stock_request(request: HttpRequest) -> list[StockUpdate]:
    _api.check_route(request, "POST", STOCK_PATH)
    try:
        body = msgspec.json.decode(request.body, type=_BulkUpsert)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid bulk-upsert body: {exc}") from None
    if not 1 <= len(body.inventories) <= BATCH_SIZE:
        raise ValueError(f"{len(body.inventories)} inventories in one request (1–{BATCH_SIZE})")
    updates = []
    for entry in body.inventories:
        if entry.mode != "ABSOLUTE":
            raise ValueError(f"{entry.manage_number}: mode {entry.mode} is not what zaiko sends")
        if not 0 <= entry.quantity <= MAX_QUANTITY:
            raise ValueError(f"{entry.manage_number}: quantity {entry.quantity} not in 0–99999")
        updates.append(
            StockUpdate(entry.manage_number, sku_variation(entry.variant_id), entry.quantity)
        )
    return updates


def parse_stock_response(status: int, body: bytes) -> None:
    """204 is success; anything else raises ValueError with the mall's messages."""
    if 200 <= status < 300:
        return
    raise ValueError(f"HTTP {status}: {_error_message(body)}")


def _error_message(body: bytes) -> str:
    try:
        errors = msgspec.json.decode(body, type=_ErrorBody).errors
    except msgspec.DecodeError:
        return body.decode("utf-8", "replace").strip() or "no error body"
    return "; ".join(f"{e.code} {e.message}" for e in errors) or "no error message"


def render_error(status: int, message: str) -> bytes:
    """The RMS 2.0 error body ``{"errors": [{"code", "message"}]}`` (status is the HTTP one)."""
    return msgspec.json.encode(_ErrorBody(errors=[_ApiError(SIMULATED_ERROR_CODE, message)]))


# --- Inventory API 2.0: what the mall shows (the audit) ------------------------------------
# Unverified: bulk-get's body and answer follow the public Inventory API 2.0 outline
# (manageNumber and variantId in, the same with quantity out), not an official sample.

STOCK_READ_PATH = "/es/2.0/inventories/bulk-get"
STOCK_READ_BATCH = 1000


class _InventoryKey(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    manage_number: str
    variant_id: str


class _BulkGet(msgspec.Struct, forbid_unknown_fields=True):
    inventories: list[_InventoryKey]


class _Shown(msgspec.Struct, rename="camel"):
    manage_number: str
    variant_id: str
    quantity: int


class _BulkGetAnswer(msgspec.Struct):
    inventories: list[_Shown]


def build_stock_read_requests(
    items: Sequence[tuple[str, tuple[str, ...]]], account: ApiAccount
) -> list[HttpRequest]:
    """bulk-get of what the mall shows, 1,000 items a request."""
    auth = authorization(account)
    keys = [
        _InventoryKey(item_id, _api_variant_id(item_id, variation)) for item_id, variation in items
    ]
    return [
        _json_post(STOCK_READ_PATH, auth, _BulkGet(inventories=list(batch)))
        for batch in _api.chunks(keys, STOCK_READ_BATCH)
    ]


def parse_stock_read_response(status: int, body: bytes) -> list[StockUpdate]:
    """What the mall shows of the items asked; one it does not have is left out."""
    if not 200 <= status < 300:
        raise ValueError(f"HTTP {status}: {_error_message(body)}")
    try:
        answer = msgspec.json.decode(body, type=_BulkGetAnswer)
    except msgspec.DecodeError as exc:
        raise ValueError(f"unreadable bulk-get answer: {exc}") from None
    return [
        StockUpdate(entry.manage_number, sku_variation(entry.variant_id), entry.quantity)
        for entry in answer.inventories
    ]


def read_stock_read_request(request: HttpRequest) -> list[tuple[str, tuple[str, ...]]]:
    """The items a bulk-get asks for (simulator side)."""
    _api.check_route(request, "POST", STOCK_READ_PATH)
    try:
        body = msgspec.json.decode(request.body, type=_BulkGet)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid bulk-get body: {exc}") from None
    if not 1 <= len(body.inventories) <= STOCK_READ_BATCH:
        raise ValueError(f"{len(body.inventories)} inventories in one request (1–1000)")
    return [(key.manage_number, sku_variation(key.variant_id)) for key in body.inventories]


def render_stock_read_response(shown: Sequence[StockUpdate]) -> bytes:
    return msgspec.json.encode(
        _BulkGetAnswer(
            inventories=[
                _Shown(u.item_id, _api_variant_id(u.item_id, u.variation), u.quantity)
                for u in shown
            ]
        )
    )


# --- RMS order API -----------------------------------------------------------------------
# searchOrder (order numbers, by order date, page after page of PaginationRequestModel)
# then getOrder (the orders, at most 100 numbers a call).

ORDER_SEARCH_DATE: _api.OrderSearchDate = "ordered"
SEARCH_PAGE_SIZE = 1000  # requestRecordsAmount: at most 1,000
# searchOrder hands out the first 15,000 numbers of a search only: a window holding more is
# searched again in halves.
SEARCH_RESULTS_LIMIT = 15_000
GET_ORDER_VERSION = 7
_DATE_TYPE_ORDERED = 1  # dateType 1 = 注文日
_SORT_BY_ORDER_DATE = 1
_OLDEST_FIRST = 1
_ORDER_CANCELLED = 900  # orderProgress 900 = キャンセル確定
_ORDER_WAITING = 100  # orderProgress 100 = 注文確認待ち


class _Message(msgspec.Struct, rename="camel"):
    message_type: str
    message_code: str = ""
    message: str = ""


class _Sort(msgspec.Struct, rename="camel"):
    sort_column: int
    sort_direction: int


class _Pagination(msgspec.Struct, rename="camel"):
    request_records_amount: int = 30
    request_page: int = 1
    sorts: list[_Sort] = msgspec.field(name="SortModelList", default_factory=list)


class _SearchOrder(msgspec.Struct, rename="camel"):
    date_type: int
    start_datetime: str
    end_datetime: str
    pagination: _Pagination = msgspec.field(
        name="PaginationRequestModel", default_factory=_Pagination
    )


class _PageInfo(msgspec.Struct, rename="camel"):
    total_records_amount: int | None = None
    total_pages: int | None = None
    request_page: int | None = None


class _SearchResult(msgspec.Struct):
    order_numbers: list[str] | None = msgspec.field(name="orderNumberList", default=None)
    messages: list[_Message] = msgspec.field(name="MessageModelList", default_factory=list)
    page: _PageInfo | None = msgspec.field(name="PaginationResponseModel", default=None)


class _GetOrder(msgspec.Struct):
    order_numbers: list[str] = msgspec.field(name="orderNumberList")
    version: int = GET_ORDER_VERSION


class _Sku(msgspec.Struct, rename="camel"):
    variant_id: str = ""


class _Item(msgspec.Struct, rename="camel"):
    item_detail_id: int
    item_name: str
    item_number: str
    manage_number: str
    units: int
    delete_item_flag: int = 0
    # legacy choices as "label:value" lines, e.g. "カラー:レッド\nサイズ:M"
    selected_choice: str = ""
    skus: list[_Sku] = msgspec.field(name="SkuModelList", default_factory=list)


class _Package(msgspec.Struct):
    items: list[_Item] = msgspec.field(name="ItemModelList")


class _Order(msgspec.Struct, rename="camel"):
    order_number: str
    order_progress: int
    order_datetime: str
    packages: list[_Package] = msgspec.field(name="PackageModelList")


class _GetOrderResult(msgspec.Struct):
    orders: list[_Order] | None = msgspec.field(name="OrderModelList", default=None)
    messages: list[_Message] = msgspec.field(name="MessageModelList", default_factory=list)


def _rms_datetime(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("rakuten order search needs an aware datetime")
    return moment.astimezone(_mail.JST).strftime("%Y-%m-%dT%H:%M:%S%z")


def _message_errors(messages: Sequence[_Message]) -> str:
    return "; ".join(
        f"{m.message_code} {m.message}".strip() for m in messages if m.message_type == "ERROR"
    )


def start_order_poll(account: ApiAccount, since: datetime, until: datetime) -> OrderPoll:
    """searchOrder by order date (dateType 1) over ``[since, until)`` in windows of at most 63
    days, every page, oldest first; then getOrder for the numbers found, 100 at a time. RMS
    has no search by last change: a cancellation is seen by a poll whose window holds the
    order's date."""
    return _OrdersPoll(account, since, until)


class _OrdersPoll(_api.ApiOrderPoll):
    def __init__(self, account: ApiAccount, since: datetime, until: datetime) -> None:
        _api.check_window(since, until)
        self._auth = (authorization(account), _api.JSON_CONTENT_TYPE)
        self._since, self._until = since, until
        self._windows = _api.window_chunks(since, until, SEARCH_WINDOW)
        self._page = 1
        self._numbers: dict[str, None] = {}  # in the order found, once each
        self._batches: list[list[str]] = []
        self._asked: list[str] = []
        self._taken: dict[str, MallOrder | None] = {}  # None: did not read
        super().__init__(self._search() if self._windows else None)

    def _search(self) -> HttpRequest:
        start, end = self._windows[0]
        search = _SearchOrder(
            date_type=_DATE_TYPE_ORDERED,
            start_datetime=_rms_datetime(start),
            # endDatetime is inclusive, to the second
            end_datetime=_rms_datetime(end - timedelta(microseconds=1)),
            pagination=_Pagination(
                request_records_amount=SEARCH_PAGE_SIZE,
                request_page=self._page,
                sorts=[_Sort(_SORT_BY_ORDER_DATE, _OLDEST_FIRST)],
            ),
        )
        return HttpRequest(
            method="POST",
            path=SEARCH_ORDER_PATH,
            headers=self._auth,
            body=msgspec.json.encode(search),
        )

    def _get_order(self) -> HttpRequest:
        self._asked = self._batches.pop(0)
        return HttpRequest(
            method="POST",
            path=GET_ORDER_PATH,
            headers=self._auth,
            body=msgspec.json.encode(_GetOrder(order_numbers=self._asked)),
        )

    def _error_text(self, body: bytes) -> str:
        try:
            errors = _message_errors(msgspec.json.decode(body, type=_SearchResult).messages)
        except msgspec.DecodeError:
            errors = ""
        return errors or _error_message(body)

    def _answer(self, body: bytes) -> HttpRequest | None:
        if self._asked:
            return self._read_orders(body)
        return self._read_numbers(body)

    def _read_numbers(self, body: bytes) -> HttpRequest | None:
        try:
            result = msgspec.json.decode(body, type=_SearchResult)
        except msgspec.DecodeError as exc:
            raise MallApiError(f"unreadable searchOrder answer: {exc}") from None
        errors = _message_errors(result.messages)
        if errors:
            raise MallApiError(f"searchOrder: {errors}")
        page = result.page or _PageInfo()
        start, end = self._windows[0]
        if self._page == 1 and (page.total_records_amount or 0) > SEARCH_RESULTS_LIMIT:
            if end - start <= timedelta(seconds=1):
                raise MallApiError(
                    f"searchOrder: more than {SEARCH_RESULTS_LIMIT:,} orders in one second"
                )
            middle = start + (end - start) / 2
            self._windows[0:1] = [(start, middle), (middle, end)]
            return self._search()
        self._numbers.update(dict.fromkeys(result.order_numbers or ()))
        if page.total_pages and self._page < page.total_pages:
            self._page += 1
            return self._search()
        self._windows.pop(0)
        self._page = 1
        if self._windows:
            return self._search()
        self._batches = [
            list(batch) for batch in _api.chunks(list(self._numbers), GET_ORDER_BATCH_SIZE)
        ]
        if self._batches:
            return self._get_order()
        self._finish_found()
        return None

    def _read_orders(self, body: bytes) -> HttpRequest | None:
        try:
            result = msgspec.json.decode(body, type=_GetOrderResult)
        except msgspec.DecodeError as exc:
            raise MallApiError(f"unreadable getOrder answer: {exc}") from None
        errors = _message_errors(result.messages)
        if errors:
            raise MallApiError(f"getOrder: {errors}")
        for order in result.orders or ():
            self._taken[order.order_number] = self._readable(partial(_mall_order, order))
        missing = [number for number in self._asked if number not in self._taken]
        if missing:
            raise MallApiError(
                f"getOrder left out {len(missing)} order(s): {', '.join(missing[:3])}"
            )
        self._asked = []
        if self._batches:
            return self._get_order()
        self._finish_found()
        return None

    def _finish_found(self) -> None:
        found = (self._taken[number] for number in self._numbers)
        self._finish(
            [
                order
                for order in found
                if order is not None
                and _api.in_window(
                    datetime.fromisoformat(order.ordered_at), self._since, self._until
                )
            ]
        )


def _mall_order(order: _Order) -> MallOrder:
    """getOrder's order → MallOrder; deleted items make it partially cancelled. Lines are
    numbered by itemDetailId, so the same order read again numbers them the same way."""
    items = sorted(
        (item for package in order.packages for item in package.items),
        key=lambda item: item.item_detail_id,
    )
    lines: list[OrderLine] = []
    deleted: list[int] = []
    for line_no, item in enumerate(items, start=1):
        variation = sku_variation(item.skus[0].variant_id) if item.skus else ()
        lines.append(
            OrderLine(
                line_no=line_no,
                item_id=identifier(item.manage_number),
                variation=variation,
                sku=join_sku(item.manage_number, variation),
                quantity=item.units,
                name=item.item_name,
                choices=_choice_values(item.selected_choice.splitlines()),
            )
        )
        if item.delete_item_flag:
            deleted.append(line_no)
    try:
        ordered_at = datetime.fromisoformat(order.order_datetime).isoformat()
    except ValueError:
        raise MallApiError(
            f"order {order.order_number}: orderDatetime {order.order_datetime!r} is not a date"
        ) from None
    if not lines:
        raise MallApiError(f"order {order.order_number}: no items")
    if order.order_progress == _ORDER_CANCELLED or len(deleted) == len(lines):
        return MallOrder(
            order_no=order.order_number,
            ordered_at=ordered_at,
            status="cancelled",
            lines=tuple(lines),
            cancelled_lines=tuple(line.line_no for line in lines),
        )
    return MallOrder(
        order_no=order.order_number,
        ordered_at=ordered_at,
        status="partially_cancelled" if deleted else "new",
        lines=tuple(lines),
        cancelled_lines=tuple(deleted),
    )


# --- RMS order API, simulator side -----------------------------------------------------------


def read_order_call(request: HttpRequest) -> _api.OrderCall:
    """What a searchOrder or getOrder request asks for (simulator side)."""
    if request.method != "POST" or request.path not in (SEARCH_ORDER_PATH, GET_ORDER_PATH):
        raise ValueError(f"expected POST {SEARCH_ORDER_PATH} or {GET_ORDER_PATH}")
    if request.path == GET_ORDER_PATH:
        numbers = msgspec.json.decode(request.body, type=_GetOrder).order_numbers
        if not 1 <= len(numbers) <= GET_ORDER_BATCH_SIZE:
            raise ValueError(
                f"{len(numbers)} order numbers in one getOrder (1–{GET_ORDER_BATCH_SIZE})"
            )
        return _api.OrderFetch(order_numbers=tuple(numbers))
    search = msgspec.json.decode(request.body, type=_SearchOrder)
    if search.date_type != _DATE_TYPE_ORDERED:
        raise ValueError(f"dateType {search.date_type}: the simulator searches by order date (1)")
    start = datetime.fromisoformat(search.start_datetime)
    end = datetime.fromisoformat(search.end_datetime)
    if not timedelta(0) <= end - start <= SEARCH_WINDOW:
        raise ValueError("期間指定が不正です。(endDatetime must be 0–63 days after startDatetime)")
    paging = search.pagination
    if not 1 <= paging.request_records_amount <= SEARCH_PAGE_SIZE or paging.request_page < 1:
        raise ValueError("PaginationRequestModel: requestRecordsAmount 1–1000, requestPage ≥ 1")
    return _api.OrderSearch(
        since=start,
        until=end + timedelta(seconds=1),  # inclusive at the mall, to the second
        by=ORDER_SEARCH_DATE,
        limit=paging.request_records_amount,
        page=paging.request_page,
    )


def render_order_answer(call: _api.OrderCall, answer: _api.OrderAnswer) -> bytes:
    """The searchOrder page or getOrder answer for ``call`` (simulator side)."""
    if isinstance(call, _api.OrderSearch):
        pages = -(-answer.total // answer.limit) if answer.limit else 0
        return msgspec.json.encode(
            _SearchResult(
                order_numbers=[served.order.order_no for served in answer.orders],
                messages=[_Message(message_type="INFO", message="注文検索に成功しました。")],
                # RMS answers nulls when nothing matched
                page=_PageInfo(
                    total_records_amount=answer.total or None,
                    total_pages=pages or None,
                    request_page=call.page if answer.total else None,
                ),
            )
        )
    if isinstance(call, _api.OrderFetch):
        return msgspec.json.encode(
            _GetOrderResult(
                orders=[_rendered_order(served.order) for served in answer.orders],
                messages=[_Message(message_type="INFO", message="受注情報取得に成功しました。")],
            )
        )
    raise ValueError("RMS has no separate item call: getOrder carries the items")


def _rendered_order(order: MallOrder) -> _Order:
    if order.status not in ("new", "cancelled", "partially_cancelled"):
        raise ValueError(f"rakuten has no {order.status} orders")
    cancelled = order.status == "cancelled"
    items = [
        _Item(
            item_detail_id=line.line_no,
            item_name=line.name,
            item_number=line.item_id,
            manage_number=line.item_id,
            units=line.quantity,
            delete_item_flag=int(line.line_no in order.cancelled_lines and not cancelled),
            selected_choice="\n".join(_choice_lines(line)),
            skus=[_Sku(variant_id=_api_variant_id(line.item_id, line.variation))],
        )
        for line in order.lines
    ]
    return _Order(
        order_number=order.order_no,
        order_progress=_ORDER_CANCELLED if cancelled else _ORDER_WAITING,
        order_datetime=_rms_datetime(datetime.fromisoformat(order.ordered_at)),
        packages=[_Package(items=items)],
    )


# --- order mails -------------------------------------------------------------------------

CONFIRMATION_SUBJECT = "【楽天市場】注文内容ご確認（自動配信メール）"
# zaiko's template: the real buyer-cancel notice layout is not public.
CANCELLATION_SUBJECT = "【楽天市場】ご注文のキャンセルについて"
MAIL_SENDER = '"楽天市場" <order@rakuten.co.jp>'
_MOBILE_MARK = "携帯"
_ORDER_NO = re.compile(r"\[受注番号\]\s*(\S+)")
_ORDERED_AT = re.compile(r"(?:\[日時\]|注文日時)\s*(\S.*)")
_QUANTITY = re.compile(r"[x×]\s*([0-9,]+)\s*\(個\)")
_ITEM_SEPARATOR = re.compile(r"^-{5,}$")
_BLOCK_END = re.compile(r"^\*{5,}$")
# The item code is the last parenthesised text, which closes the name line.
_NAME_CODE = re.compile(r"^(.*)\(([^()]+)\)$")
_SKU_LINE = re.compile(r"^SKU管理番号\s*[:：]\s*(\S+)$")


def parse_order_mail(raw: bytes) -> MallOrder:
    """An order confirmation (or buyer cancellation) → MallOrder; anything else raises MailError.

    The item code is the text in the last ``(...)`` of each item's name line (for legacy
    choices Rakuten prints 商品番号 + 子番号 there, which is already the joined SKU); an
    ``SKU管理番号:`` option line makes the variation an SKU-format variant.
    """
    mail = _mail.read_mail(raw)
    subject = mail.subject
    if CANCELLATION_SUBJECT in subject:
        status: Literal["new", "cancelled"] = "cancelled"
    elif "注文内容ご確認" in subject and _MOBILE_MARK not in subject:
        status = "new"
    else:
        raise NotAnOrderMail(f"not an order confirmation: subject {subject!r}")
    lines = [line.strip() for line in mail.lines]
    text = "\n".join(lines)
    order_no = _ORDER_NO.search(text)
    if order_no is None:
        raise MailError("no [受注番号] line")
    ordered_at = _ORDERED_AT.search(text)
    if ordered_at is None:
        raise MailError("no [日時] line")
    order_lines = tuple(_item_lines(lines))
    return MallOrder(
        order_no=order_no.group(1),
        ordered_at=_mail.parse_ja_datetime(ordered_at.group(1), "[日時]"),
        status=status,
        lines=order_lines,
        cancelled_lines=tuple(line.line_no for line in order_lines)
        if status == "cancelled"
        else (),
    )


def _item_lines(lines: list[str]) -> Iterator[OrderLine]:
    blocks = _item_blocks(lines)
    if not blocks:
        raise MailError("no [商品] block")
    for number, block in enumerate(blocks, start=1):
        name_code = _NAME_CODE.match(block[0])
        if name_code is None:
            raise MailError(
                f"item block {number} has no item code in (...) at the end of its name line"
            )
        name, code = name_code.group(1).strip(), identifier(name_code.group(2))
        variation: tuple[str, ...] = ()
        quantity: int | None = None
        options: list[str] = []
        for line in block[1:]:
            sku_line = _SKU_LINE.match(line)
            if sku_line is not None:
                variation = sku_variation(sku_line.group(1))
            elif line.startswith("価格"):
                found = _QUANTITY.search(line)
                if found is not None:
                    quantity = _mail.parse_count(found.group(1), f"item block {number} quantity")
            else:
                options.append(line)
        if quantity is None:
            raise MailError(f"item block {number} has no quantity")
        if quantity == 0:
            raise MailError(f"item block {number} has quantity 0")
        yield OrderLine(
            line_no=number,
            item_id=code,
            variation=variation,
            sku=join_sku(code, variation),
            quantity=quantity,
            name=name,
            choices=_choice_values(options),
        )


def _choice_values(lines: Iterable[str]) -> tuple[str, ...]:
    """The values of ``label:value`` option lines (full- or half-width colon), as a choice
    name reads in select.csv; a legacy choice's 子番号 is already in the printed code, but
    an item whose 子番号 is empty is told apart by these (``protocols.listings``)."""
    values = []
    for line in lines:
        label, colon, value = line.replace("：", ":").partition(":")
        if colon and label.strip() and (name := display_name(value)):
            values.append(name)
    return tuple(values)


def _choice_lines(line: OrderLine) -> list[str]:
    """Option lines for ``line``: the names of its choice axes, else its ``choices``."""
    names = [c[len(CHOICE_PREFIX) :] for c in line.variation if c.startswith(CHOICE_PREFIX)]
    return [f"選択肢{n}:{name}" for n, name in enumerate(names or line.choices, start=1)]


def _item_blocks(lines: list[str]) -> list[list[str]]:
    """The lines of each item: from the ``[商品]`` label to the ``*****`` rule, split on
    ``-----`` rules (or a repeated ``[商品]``); 獲得ポイント lines between items are dropped."""
    try:
        start = lines.index("[商品]")
    except ValueError:
        return []
    blocks: list[list[str]] = [[]]
    for line in lines[start + 1 :]:
        if _BLOCK_END.match(line) or line.startswith("小計"):
            break
        if _ITEM_SEPARATOR.match(line) or line == "[商品]":
            blocks.append([])
        elif line and not line.startswith("獲得ポイント"):
            blocks[-1].append(line)
    return [block for block in blocks if block]


def render_order_mail(order: MallOrder, shop_name: str) -> bytes:
    """The shop copy of the confirmation (or, for a cancelled order, the cancellation notice).

    Buyer, payment and prices are placeholders (1,000 yen a unit); the mail is ISO-2022-JP
    unless a name needs characters outside it.
    """
    if order.status not in ("new", "cancelled"):
        raise ValueError(f"rakuten mails carry new or cancelled orders, not {order.status}")
    ordered_at = _mail.format_ja_datetime(order.ordered_at, "%Y-%m-%d %H:%M:%S")
    total = sum(line.quantity for line in order.lines) * 1000
    items = "\n----------\n".join(_render_item(line) for line in order.lines)
    if order.status == "cancelled":
        intro = "以下のご注文はキャンセルされました。"
        subject = CANCELLATION_SUBJECT
    else:
        intro = "以下の内容でご注文を承りました。"
        subject = CONFIRMATION_SUBJECT
    stars = "*" * 70
    body = f"""楽天 太郎 様

この度は楽天市場内のショップ「{shop_name}」を
ご利用いただきまして、まことにありがとうございます。
{intro}

{stars}
[受注番号] {order.order_no}
[日時]     {ordered_at}
[注文者]   楽天 太郎 (ラクテン タロウ) 様
           〒158-0094 東京都世田谷区玉川一丁目14番1号
           (TEL) 050-0000-0000
[支払方法] クレジットカード
[ポイント利用方法] ポイントを利用しない
[配送方法] 宅配便
[配送日時指定]
  なし
[備考]
  なし
[ショップ名] {shop_name}
==========
[送付先]   楽天 太郎 (ラクテン タロウ) 様
           〒158-0094 東京都世田谷区玉川一丁目14番1号
           (TEL) 050-0000-0000
[商品]
{items}
{stars}
小計     {total:,}(円)
消費税   0(円)
送料     0(円)
合計     {total:,}(円)
{stars}
"""
    return _mail.render_mail(
        sender=MAIL_SENDER,
        recipient="shop@example.jp",
        subject=subject,
        body=body,
        sent_at=order.ordered_at,
        charset="iso-2022-jp",
    )


def _render_item(line: OrderLine) -> str:
    variant = _variant_id(line.variation)
    # Legacy choices: the order shows 商品番号 + 子番号, i.e. the joined code (an axis whose
    # 子番号 is empty adds nothing there: only its option line names it).
    codes = tuple(c for c in line.variation if not c.startswith(CHOICE_PREFIX))
    code = line.item_id if variant is not None else join_sku(line.item_id, codes)
    options = "".join(f"\n{option}" for option in _choice_lines(line))
    if variant is not None:
        options += f"\nSKU管理番号:{variant}"
    amount = line.quantity * 1000
    return (
        f"{line.name} ({code}){options}\n"
        f"価格 1,000(円) x {line.quantity:,}(個) = {amount:,}(円) ※10%税込"
    )
