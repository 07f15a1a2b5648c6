"""The contract every mall module keeps, and the types the modules share.

A mall module (``protocols/malls/<kind>.py``) is pure: msgspec and the standard library only.
It exports ``CAPABILITY`` and, depending on what the mall supports, these functions:

- ``join_sku(item_id, variation) -> str``: the default rule that joins the mall's identifiers
  into zaiko's SKU code (SPEC §2).
- stock files (``"ftp" in CAPABILITY.stock_out`` or importable formats):
  ``read_stock_file(name, lines) -> Iterator[StockRow | RowError]`` over decoded text lines and
  ``write_stock_files(updates) -> dict[str, bytes]`` (file name → encoded content).
- stock API (``"api" in CAPABILITY.stock_out``): ``build_stock_requests(updates, account)`` →
  ``list[HttpRequest]`` (each within the batch limit) and ``parse_stock_request(request)`` →
  ``list[StockUpdate]`` (what the simulated mall does with it), plus ``parse_stock_response``.
- mail intake: ``parse_order_mail(raw: bytes) -> MallOrder`` (raises ``MailError``) and
  ``render_order_mail(order, shop_name) -> bytes`` (the simulator's template).
- API intake: ``start_order_poll(account, since, until) -> OrderPoll`` (every page, every
  order's items) and ``ORDER_SEARCH_DATE``; for the simulator ``read_order_call(request)`` and
  ``render_order_answer(call, answer)`` (``protocols.malls._api``).
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterable, Iterator, Mapping
from typing import Literal, Protocol

import msgspec

MallKind = Literal[
    "rakuten",
    "yahoo",
    "cartstar",
    "wowma",
    "amazon",
    "yahoo_auction",
    "ponpare",
    "futureshop",
    "shopserve",
    "qoo10",
    "wowma_manager",
    "shoplist",
    "colorme",
]
IntakeMode = Literal["mail", "api"]
StockOutMode = Literal["ftp", "api"]
MallOption = Literal[
    "take_buyer_cancel",
    "clear_store_cancel_flag",
    "take_pending",
    "take_unpaid",
    "take_cancellations",
]
MallOrderState = Literal["new", "pending", "unpaid", "cancelled", "partially_cancelled"]


class Capability(msgspec.Struct, frozen=True, kw_only=True):
    """What a mall kind supports; validates shop settings and is printed by ``zaiko malls``."""

    kind: MallKind
    name_ja: str
    intake: tuple[IntakeMode, ...]
    stock_out: tuple[StockOutMode, ...]
    options: tuple[MallOption, ...] = ()
    ftp_dir: str | None = None
    stock_files: tuple[str, ...] = ()
    import_formats: tuple[str, ...] = ()
    api_batch_size: int = 0
    api_requests_per_s: float = 0.0
    unverified: str = ""


class StockUpdate(msgspec.Struct, frozen=True):
    """One quantity for one listed item (or variation) at a mall."""

    item_id: str
    variation: tuple[str, ...]
    quantity: int


class StockRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row read from a mall's stock or product file."""

    line: int
    sku: str
    item_id: str
    variation: tuple[str, ...] = ()
    quantity: int | None = None
    name: str = ""


class RowError(msgspec.Struct, frozen=True, kw_only=True):
    """A row that could not be read: one line, one field, one reason."""

    line: int
    reason: str
    code: str = ""
    field: str = ""

    def message(self) -> str:
        where = f"line {self.line}"
        if self.code:
            where += f" [{self.code}]"
        if self.field:
            where += f" {self.field}"
        return f"{where}: {self.reason}"


class MailError(ValueError):
    """An order mail that does not parse; the message says why (never a guess)."""


class NotAnOrderMail(MailError):
    """A mail of the mall that is not an order (在庫ゼロのお知らせ, 発送完了, a change notice):
    intake sets it aside as read, not as broken."""


class OrderLine(msgspec.Struct, frozen=True, kw_only=True):
    line_no: int
    item_id: str
    variation: tuple[str, ...] = ()
    sku: str
    quantity: int
    name: str = ""


class MallOrder(msgspec.Struct, frozen=True, kw_only=True):
    order_no: str
    ordered_at: str  # ISO 8601 with offset
    status: MallOrderState = "new"
    lines: tuple[OrderLine, ...]
    cancelled_lines: tuple[int, ...] = ()


class ApiAccount(msgspec.Struct, frozen=True, kw_only=True):
    """Where and as whom to call a mall API; ``secret`` comes from a credential file."""

    base_url: str
    secret: str
    seller_id: str = ""


class MallApiError(ValueError):
    """A mall API answered with an error (or something unreadable); the message says what.
    Nothing of the call took effect on zaiko's side: it is tried again later."""


class RateLimited(MallApiError):
    """The mall answered 429: wait ``retry_after`` seconds (its Retry-After, when it sent
    one) and send the same request again."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OrderPoll(Protocol):
    """One poll of a mall's order API, without I/O (the daemon sends, the mall module
    reads): ``next_request()`` gives the next call (a page, the items of an order, the
    details of a batch of order numbers) or None when done; ``feed()`` takes that call's
    answer, and raises ``RateLimited`` (send the same request again after the wait) or
    ``MallApiError`` (the poll failed; start a new one later, from the same cursor). When
    done, ``orders`` holds every order of the window ``[since, until)`` with all its lines,
    and ``ignored`` counts what was seen but is not this shop's (another marketplace).
    Which date the window is on is the module's ``ORDER_SEARCH_DATE``: ``"updated"`` (last
    change: a later payment or cancellation falls in a later window) or ``"ordered"`` (order
    date only: a change to an older order is seen by a poll whose window holds its date)."""

    def next_request(self) -> HttpRequest | None: ...

    def feed(self, status: int, headers: Mapping[str, str], body: bytes) -> None: ...

    @property
    def orders(self) -> list[MallOrder]: ...

    @property
    def ignored(self) -> int: ...


class HttpRequest(msgspec.Struct, frozen=True, kw_only=True):
    """An HTTP request as pure data, sent by the daemon and read back by the simulator."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


# Python's cp932 codec maps these single bytes to characters instead of failing, but no
# Japanese file means them: 0x80 → U+0080, 0xA0 → U+F8F0, 0xFD–0xFF → U+F8F1–U+F8F3.
CP932_LAX_CHARACTERS = frozenset("\x80\uf8f0\uf8f1\uf8f2\uf8f3")
CP932_ALIASES = frozenset(
    {"cp932", "ms932", "windows-31j", "shift_jis", "shift-jis", "sjis", "s-jis"}
)


def codec_name(encoding: str) -> str:
    """The codec zaiko reads a file with: Shift_JIS names mean cp932 (what Japanese Excel
    writes), UTF-8 tolerates a BOM. Raises LookupError for an unknown encoding."""
    name = encoding.strip().lower()
    if name in CP932_ALIASES:
        return "cp932"
    if name.replace("_", "-") in ("utf-8", "utf8", "utf-8-sig"):
        return "utf-8-sig"
    return codecs.lookup(name).name


def decode_strict(raw: bytes, codec: str) -> str:
    """Decode, refusing every byte that does not stand for a character in the file's encoding."""
    text = raw.decode(codec)
    # five substring searches run at C speed; a per-character set test would not
    if codec == "cp932" and any(ch in text for ch in CP932_LAX_CHARACTERS):
        for position, ch in enumerate(text):
            if ch in CP932_LAX_CHARACTERS:
                start = len(text[:position].encode("cp932"))
                raise UnicodeDecodeError(
                    "cp932", raw, start, start + 1, "no character for this byte"
                )
    return text


UTF8_BOM = b"\xef\xbb\xbf"


def undecodable_hint(raw: bytes, codec: str) -> str:
    """For bytes that do not decode as ``codec``: advice naming the other encoding zaiko
    reads, when they decode as that (a UTF-8 file imported as cp932, or the reverse); else
    the empty string."""
    if raw.isascii():
        return ""
    other = "utf-8" if codec.startswith("cp932") else "cp932"
    try:
        decode_strict(raw.removeprefix(UTF8_BOM), other)
    except UnicodeDecodeError:
        return ""
    return f"; it reads as {other}: import the file with --encoding {other}"


def misread_header_hint(names: Iterable[str], wanted: Iterable[str]) -> str:
    """For a header that lacks its columns because a UTF-8 file was read as cp932 (it
    decodes, into other characters): advice to import it as UTF-8; else the empty string."""
    text = ",".join(names)
    if text.isascii():
        return ""
    try:
        again = text.encode("cp932").decode("utf-8")
    except UnicodeError:
        return ""
    if any(name in again for name in wanted):
        return "; the file is UTF-8 read as cp932: import it with --encoding utf-8"
    return ""


def decoded_lines(
    raw_lines: Iterable[bytes], encoding: str = "cp932"
) -> Iterator[tuple[int, str | RowError]]:
    """Decode a file line by line, numbering from 1; a byte that does not decode is a RowError.

    A UTF-8 BOM is tolerated on the first line. Never replaces a byte silently.
    """
    codec = codec_name(encoding)
    for number, raw in enumerate(raw_lines, start=1):
        try:
            text = decode_strict(raw, codec if number == 1 else codec.replace("-sig", ""))
        except UnicodeDecodeError as exc:
            yield (
                number,
                RowError(
                    line=number,
                    reason=f"byte 0x{raw[exc.start]:02X} at column {exc.start + 1} is not valid "
                    f"{encoding}{undecodable_hint(raw, codec)}",
                ),
            )
            continue
        yield number, text.rstrip("\r\n")


def csv_records(
    numbered: Iterable[tuple[int, str | RowError]],
) -> Iterator[tuple[int, list[str] | RowError]]:
    """Split decoded lines into CSV fields, keeping each record's line number."""
    for number, text in numbered:
        if isinstance(text, RowError):
            yield number, text
            continue
        if text == "":
            continue
        try:
            yield number, next(csv.reader([text]))
        except csv.Error as exc:
            yield number, RowError(line=number, reason=f"not valid CSV: {exc}")


def encode_csv(
    header: Iterable[str], rows: Iterable[Iterable[str]], encoding: str = "cp932"
) -> bytes:
    """Write CSV with every field quoted and CRLF line ends, as the malls' batch jobs expect."""
    import io

    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(list(header))
    writer.writerows(list(r) for r in rows)
    return out.getvalue().encode(encoding)


def header_records(
    records: Iterable[tuple[int, list[str] | RowError]], required: Iterable[str]
) -> Iterator[tuple[int, dict[str, str] | RowError]]:
    """Map CSV records to ``{column: value}`` by the file's header row.

    The first record is the header; when it cannot be read or lacks a required column, one
    RowError on its line is yielded and the file ends there. Extra columns are kept; a row
    with fewer fields than the header is a RowError.
    """
    columns: list[str] | None = None
    for number, record in records:
        if columns is None:
            if isinstance(record, RowError):
                yield number, RowError(line=number, reason=f"header unreadable: {record.reason}")
                return
            columns = [name.strip() for name in record]
            missing = [name for name in required if name not in columns]
            if missing:
                yield (
                    number,
                    RowError(
                        line=number,
                        field=missing[0],
                        reason=f"header lacks required column(s): {', '.join(missing)}"
                        + misread_header_hint(columns, missing),
                    ),
                )
                return
            continue
        if isinstance(record, RowError):
            yield number, record
        elif len(record) < len(columns):
            yield (
                number,
                RowError(
                    line=number, reason=f"{len(record)} fields, the header has {len(columns)}"
                ),
            )
        else:
            yield number, dict(zip(columns, record, strict=False))


QUANTITY_LIMIT = 999_999_999
QUANTITY_DIGITS = len(str(QUANTITY_LIMIT))


def int_field(value: str, *, line: int, field: str, code: str = "") -> int | RowError:
    """A whole number as written in a CSV cell (sign allowed); anything else is a RowError."""
    text = value.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit()):
        return RowError(line=line, code=code, field=field, reason=f"{value!r} is not an integer")
    if len(digits.lstrip("0")) > QUANTITY_DIGITS:
        return RowError(
            line=line, code=code, field=field, reason=f"{value!r} is outside ±{QUANTITY_LIMIT:,}"
        )
    return int(text)
