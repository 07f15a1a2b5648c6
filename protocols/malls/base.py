"""The contract every mall module keeps, and the types the modules share.

A mall module (``protocols/malls/<kind>.py``) is pure: msgspec and the standard library only.
It exports ``CAPABILITY`` and, depending on what the mall supports, these functions:

- ``join_sku(item_id, variation) -> str``: the default rule that joins the mall's identifiers
  into zaiko's SKU code (SPEC §2).
- stock files (``"ftp" in CAPABILITY.stock_out`` or importable formats):
  ``read_stock_file(name, records) -> Iterator[StockRow | RowError]`` over ``csv_records(...)``
  (records, each numbered by its first line), and
  ``write_stock_files(updates) -> dict[str, bytes]`` (file name → encoded content), and
  ``UPLOAD_MAX_UPDATES`` where one upload has a limit (FutureShop: rows per file).
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
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Literal, NamedTuple, Protocol

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
    # what the mall shows can be read back through its API (the audit): the module's
    # build_stock_read_requests / parse_stock_read_response
    stock_read: bool = False
    unverified: str = ""


class StockUpdate(msgspec.Struct, frozen=True):
    """One quantity for one listed item (or variation) at a mall."""

    item_id: str
    variation: tuple[str, ...]
    quantity: int


class StockRow(msgspec.Struct, frozen=True, kw_only=True):
    """One record read from a mall's stock or product file (``line``: its first line).

    ``alt_item_id`` is the mall's other identifier of the item when the file has one (Rakuten
    商品番号 beside 商品管理番号: order mails print it); ``note`` is for the job log (how the
    SKU code was made, when the default rule could not make it); ``code_hint`` ends the
    message when ``sku`` cannot be a SKU code (how to give the row a usable one).
    """

    line: int
    sku: str
    item_id: str
    variation: tuple[str, ...] = ()
    quantity: int | None = None
    name: str = ""
    alt_item_id: str = ""
    note: str = ""
    code_hint: str = ""


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


# A variation component that names a choice instead of giving its code: a Rakuten legacy
# choice whose 子番号 is empty (real downloads have such items) is told apart by its name.
CHOICE_PREFIX = "choice:"


def identifier(value: str) -> str:
    """A mall identifier (item code, 子番号, option code) as it becomes part of a SKU code.

    The one rule for every mall, in stock files, product files, order mails and order APIs:
    surrounding whitespace (full-width spaces too) is dropped, so a component of only
    whitespace is empty and a 子番号 of one space adds nothing to the code.
    """
    return value.strip()


def identifiers(values: Iterable[str]) -> tuple[str, ...]:
    """Each of ``values`` by ``identifier``."""
    return tuple(value.strip() for value in values)


def joined(item_id: str, parts: Iterable[str]) -> str:
    """``item_id`` followed by ``parts``, each by ``identifier``: the usual SKU join."""
    return item_id.strip() + "".join(part.strip() for part in parts)


_LINE_BREAK_TAG = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)


def display_name(*parts: str) -> str:
    """A product name made of ``parts`` (an item name, choice names) as one line: ``<br>``
    tags and runs of whitespace (line breaks too) become one space, and a part that is only
    whitespace adds nothing."""
    text = " ".join(_LINE_BREAK_TAG.sub(" ", part) for part in parts)
    return " ".join(text.split())


class MailError(ValueError):
    """An order mail that does not parse; the message says why (never a guess)."""


class NotAnOrderMail(MailError):
    """A mail of the mall that is not an order (在庫ゼロのお知らせ, 発送完了, a change notice):
    intake sets it aside as read, not as broken."""


class OrderLine(msgspec.Struct, frozen=True, kw_only=True):
    """One line of an order. ``sku`` is the default rule's code; ``choices`` are the option
    values printed with the item (Rakuten), which tell variations apart when the item's
    子番号 is empty (see ``daemon.ledger.listings.listed_sku``)."""

    line_no: int
    item_id: str
    variation: tuple[str, ...] = ()
    sku: str
    quantity: int
    name: str = ""
    choices: tuple[str, ...] = ()


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
    and ``ignored`` counts what was seen but is not this shop's (another marketplace);
    ``unreadable`` says, one line each, which orders did not read (an unknown status, no
    items, a bad date): the poll goes on without them, so that one order the mall wrote
    wrong never holds back a shop's intake.
    Which date the window is on is the module's ``ORDER_SEARCH_DATE``: ``"updated"`` (last
    change: a later payment or cancellation falls in a later window) or ``"ordered"`` (order
    date only: a change to an older order is seen by a poll whose window holds its date)."""

    def next_request(self) -> HttpRequest | None: ...

    def feed(self, status: int, headers: Mapping[str, str], body: bytes) -> None: ...

    @property
    def orders(self) -> list[MallOrder]: ...

    @property
    def ignored(self) -> int: ...

    @property
    def unreadable(self) -> list[str]: ...


class StockFeed(Protocol):
    """One bulk stock update through a mall's feed API (Amazon's JSON_LISTINGS_FEED),
    without I/O: ``next_request()`` gives the next call (upload the document, submit it,
    ask whether it is processed, fetch the report) or None when done; ``feed()`` takes that
    call's answer and raises ``RateLimited`` or ``MallApiError`` (the call stays in flight: send
    it again later, or give up). ``wait_s`` is how long to wait before the next call (the
    mall is still processing). A request whose ``path`` is a whole URL goes to the storage
    the mall named (a pre-signed URL): no credentials, no rate of the mall's API.
    When done, ``refused`` says which updates (by position) the mall did not take, and why."""

    def next_request(self) -> HttpRequest | None: ...

    def feed(self, status: int, headers: Mapping[str, str], body: bytes) -> None: ...

    @property
    def wait_s(self) -> float: ...

    @property
    def submitted(self) -> bool:
        """Whether the mall has the feed (it may apply it whatever happens next)."""
        ...

    @property
    def refused(self) -> dict[int, str]: ...


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


# --- CSV files as merchants have them ---------------------------------------------------
#
# A file is read as records, not lines: a quoted field may hold line breaks (RMS item.csv
# carries multi-line HTML descriptions), and a record is numbered by its first line. Line
# breaks are CRLF, LF or CR alone (Excel for Mac), whichever the file's first line break is.

# Longer lines cannot be a row of any file zaiko reads; the cap keeps a file without line
# breaks from filling memory. It matches the csv module's default field size limit.
MAX_LINE_BYTES = 131_072
# A record (its lines, line breaks included) may be this long: a quoted field that is never
# closed ends here, and the lines after the record's first are read again on their own.
MAX_RECORD_CHARS = 1_048_576


class LineTooLong(ValueError):
    """A line exceeds ``MAX_LINE_BYTES``: the file is not a CSV of stock or products."""

    def __init__(self, line: int) -> None:
        super().__init__(
            f"line {line} is longer than {MAX_LINE_BYTES} bytes: not a CSV stock or product file"
        )


class LineSplitter:
    """Turns byte chunks (as they arrive over the websocket) into lines, without line breaks.

    The file's line break is its first one: LF, CRLF, or a CR not followed by LF (files
    re-saved by Excel for Mac). With LF or CRLF lines are split at b"\\n" only and a CR before
    it stays (the csv reader drops it), so a CRLF cut between two chunks cannot produce an
    extra empty line, and a CR at the end of a chunk waits for the next byte before the line
    break is decided.
    """

    def __init__(self) -> None:
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._lines_done = 0
        self._separator: bytes | None = None

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines completed by ``chunk``; the unfinished tail is kept for the next call."""
        separator = self._separator
        if separator is None:
            separator = self._separator = self._detect(chunk)
            if separator is None:
                self._keep(chunk)
                return []
            if self._pending:  # it may end with the line break just decided (a CR)
                chunk = b"".join(self._pending) + chunk
                self._pending.clear()
                self._pending_bytes = 0
        if separator not in chunk:
            self._keep(chunk)
            return []
        lines = chunk.split(separator)
        if self._pending:
            lines[0] = b"".join(self._pending) + lines[0]
            self._pending.clear()
            self._pending_bytes = 0
        tail = lines.pop()
        if max(map(len, lines)) > MAX_LINE_BYTES:
            index = next(i for i, line in enumerate(lines) if len(line) > MAX_LINE_BYTES)
            raise LineTooLong(self._lines_done + index + 1)
        self._lines_done += len(lines)
        self._keep(tail)
        return lines

    def finish(self) -> list[bytes]:
        """The last line when the file does not end with a line break."""
        tail = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        return [tail] if tail else []

    def _detect(self, chunk: bytes) -> bytes | None:
        """The file's line break, from its first one; None until it is known. What is kept
        meanwhile holds no line break, but for a CR that ended the last chunk."""
        if self._pending and self._pending[-1].endswith(b"\r"):
            if not chunk:
                return None
            return b"\n" if chunk[0] == 0x0A else b"\r"
        cr, lf = chunk.find(b"\r"), chunk.find(b"\n")
        if cr == -1 and lf == -1:
            return None
        if cr == -1 or -1 < lf < cr:
            return b"\n"
        if cr + 1 == len(chunk):
            return None  # a CR ends the chunk: the next byte says whether LF follows
        return b"\n" if chunk[cr + 1] == 0x0A else b"\r"

    def _keep(self, piece: bytes) -> None:
        if piece:
            self._pending.append(piece)
            self._pending_bytes += len(piece)
            if self._pending_bytes > MAX_LINE_BYTES:
                raise LineTooLong(self._lines_done + 1)


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines of a file that arrives as ``chunks`` (see ``LineSplitter``)."""
    splitter = LineSplitter()
    for chunk in chunks:
        yield from splitter.feed(chunk)
    yield from splitter.finish()


def undecodable_reason(
    raw: bytes, error: UnicodeDecodeError, encoding: str, codec: str, line: int | None = None
) -> str:
    """Why a line does not decode: the byte, where it is (``line`` when it is not the line the
    message is about) and, when the line reads in the other encoding, which to use."""
    where = f"line {line}, column" if line is not None else "column"
    return (
        f"byte 0x{raw[error.start]:02X} at {where} {error.start + 1} is not valid {encoding}"
        + undecodable_hint(raw, codec)
    )


def csv_problem(error: csv.Error, last_line: int | None = None) -> str:
    """The csv module's complaint about a record, said for an operator; ``last_line`` is the
    line it was reading when the record runs over several lines."""
    text = str(error)
    if text == "unexpected end of data":
        return "a quoted field opened on this line is not closed by the end of the file"
    if text.startswith("field larger than field limit"):
        return (
            f"a field is longer than {csv.field_size_limit():,} characters: "
            "is a closing quote missing?"
        )
    if text.startswith("new-line character seen in unquoted field"):
        text = "a line break (CR) inside a field that is not quoted"
    if last_line is not None:
        # a quote that should have closed on this line ran on, and the text after it broke
        return f"a quoted field opened on this line is not closed before line {last_line} ({text})"
    return f"not valid CSV: {text}"


RECORD_TOO_LONG = (
    f"the record starting on this line is longer than {MAX_RECORD_CHARS:,} characters: "
    "is a closing quote missing?"
)


class _Line(NamedTuple):
    number: int
    text: str  # with a line break, so that the csv reader keeps it inside a quoted field
    # the raw line and its decode error, when it does not decode
    undecodable: tuple[bytes, UnicodeDecodeError] | None


class _RecordTooLong(Exception):
    pass


class _RecordLines:
    """What the csv reader reads: lines handed back for a re-read first, then the file's.

    Keeps the lines of the record being read, so that a record the reader gives up on can be
    handed back but for its first line.
    """

    def __init__(self, lines: Iterator[_Line]) -> None:
        self.lines = lines
        self.again: deque[_Line] = deque()
        self.taken: list[_Line] = []
        self.chars = 0

    def __iter__(self) -> _RecordLines:
        return self

    def __next__(self) -> str:
        line = self.again.popleft() if self.again else next(self.lines)
        self.taken.append(line)
        self.chars += len(line.text)
        if self.chars > MAX_RECORD_CHARS and len(self.taken) > 1:
            raise _RecordTooLong
        return line.text

    def start_record(self) -> None:
        self.taken.clear()
        self.chars = 0

    def read_again_after_first(self) -> None:
        self.again.extendleft(reversed(self.taken[1:]))


# What ``csv_records`` yields and a mall module's ``read_stock_file`` reads.
CsvRecords = Iterable[tuple[int, list[str] | RowError]]


def csv_records(
    chunks: Iterable[bytes], encoding: str = "cp932"
) -> Iterator[tuple[int, list[str] | RowError]]:
    """The records of a CSV file that arrives as byte ``chunks`` (any size: a file object's
    lines, spool reads), each with the number of its first line; streams.

    A record the reader cannot finish (a quoted field not closed by the end of the file or
    within ``MAX_RECORD_CHARS``, a stray quote) is a RowError on its first line, and the
    lines after that first line are read again on their own, so one stray quote never hides
    the rest. A byte that does not decode makes its record a RowError naming the line where
    the byte is; it is never replaced silently. A UTF-8 BOM is tolerated on line 1. Blank
    lines are skipped. Raises ``LineTooLong`` for a line over ``MAX_LINE_BYTES``.
    """
    codec = codec_name(encoding)
    lines = _RecordLines(_decoded_lines(split_lines(chunks), codec))
    reader = csv.reader(lines, strict=True)
    while True:
        lines.start_record()
        try:
            fields = next(reader)
        except StopIteration:
            return
        except (csv.Error, _RecordTooLong) as error:
            first, last = lines.taken[0].number, lines.taken[-1].number
            if isinstance(error, csv.Error):
                reason = csv_problem(error, last if last != first else None)
            else:
                reason = RECORD_TOO_LONG
            yield first, RowError(line=first, reason=reason)
            lines.read_again_after_first()
            continue
        if not fields:
            continue  # a blank line
        first = lines.taken[0].number
        bad = next((line for line in lines.taken if line.undecodable), None)
        if bad is None or bad.undecodable is None:
            yield first, fields
        else:
            raw, decode_error = bad.undecodable
            line = bad.number if bad.number != first else None
            reason = undecodable_reason(raw, decode_error, encoding, codec, line)
            yield first, RowError(line=first, reason=reason)


def _decoded_lines(raw_lines: Iterable[bytes], codec: str) -> Iterator[_Line]:
    for number, raw in enumerate(raw_lines, start=1):
        try:
            text = decode_strict(raw, codec if number == 1 else codec.replace("-sig", ""))
        except UnicodeDecodeError as error:
            # decoded with stand-ins only to find where the record ends: quotes, commas and
            # line breaks are ASCII, which no multibyte character of cp932 or UTF-8 holds
            yield _Line(number, raw.decode(codec, "replace") + "\n", (raw, error))
            continue
        yield _Line(number, text + "\n", None)


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
        elif not any(field.strip() for field in record):
            continue  # an all-empty row, as Excel leaves below the data
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
