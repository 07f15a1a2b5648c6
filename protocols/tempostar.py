"""TEMPOSTAR-format CSV files: stock import (在庫一括更新), stock download (在庫ダウンロード),
the product catalog read by ``zaiko sku import`` (SPEC §3.6, reference/mall-formats.md §1.8, §3)
and the stock change history (在庫変動ログ) that ``bench/oversell.py --replay`` reads.

Pure: msgspec and the standard library only, no I/O. The daemon feeds byte lines in and gets
parsed rows or ``RowError`` values out, one per data line, in file order; checks that need the
ledger's data are helpers it calls (``apply_row``, ``unknown_sku_error``).

Record model. The header is line 1; after it the file is read as CSV records, each numbered
by its first line: a quoted field may hold a line break (an extra column such as a memo), and
line breaks are CRLF, LF or CR alone (``split_lines``). A record over several lines that is
not a valid row (a code or count with a line break in it) is most likely a stray quote that
joined lines: it is a row error on its first line and the lines after that first line are read
again on their own, as after a quote that is never closed or a record longer than
``MAX_RECORD_CHARS``. So every line number in a message is the line in the operator's editor,
and one broken quote never hides the rows after it.

Speed. Byte lines are decoded in blocks of ``_BLOCK_LINES`` (one ``bytes.decode`` per block,
not per line) and the csv module splits fields in C; only a block that fails to decode is
decoded again line by line to find the line numbers of its undecodable bytes. A record still
open at the end of a block is carried into the next. Memory is one block (plus a carried
record) and the set of codes already seen (duplicate check), whatever the file size.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Callable, Container, Generator, Iterable, Iterator
from datetime import datetime
from itertools import chain, islice
from typing import Final, Literal, NamedTuple, TypeVar, get_args

import msgspec

from protocols.malls.base import (
    CP932_ALIASES,
    CP932_LAX_CHARACTERS,
    RECORD_TOO_LONG,
    RowError,
    csv_problem,
    csv_records,
    decode_strict,
    header_records,
    int_field,
    misread_header_hint,
    undecodable_reason,
)

# The line splitter and its limits are shared with the mall files' reader (base.py).
from protocols.malls.base import MAX_LINE_BYTES as MAX_LINE_BYTES
from protocols.malls.base import MAX_RECORD_CHARS as MAX_RECORD_CHARS
from protocols.malls.base import LineSplitter as LineSplitter
from protocols.malls.base import LineTooLong as LineTooLong
from protocols.malls.base import split_lines as split_lines
from protocols.sku import (
    INVISIBLE_CATEGORIES,
    MAX_CODE_LENGTH,
    MAX_QUANTITY,
    code_problem,
    name_problem,
)

ImportTarget = Literal["expected", "actual"]
UpdateMode = Literal["overwrite", "add"]
ImportMode = Literal["overwrite", "add", "per-row"]
ExportTarget = Literal["expected", "both"]
# One SKU as the ledger reads it for a download: (code, expected, reserve, actual or None when
# the actual count was never set).
StockRecord = tuple[str, int, int, int | None]
_Row = TypeVar("_Row")

CODE: Final = "商品コード"
EXPECTED: Final = "想定在庫数"
RESERVE: Final = "保留在庫数"
UPDATE_MODE: Final = "更新モード"
UPDATE_TARGET: Final = "更新対象"
NAME: Final = "商品名"
STOCK_HEADER: Final = (CODE, EXPECTED, RESERVE, UPDATE_MODE, UPDATE_TARGET)
CATALOG_HEADER: Final = (CODE, NAME)

_QUANTITY_DIGITS: Final = len(str(MAX_QUANTITY))
# The text of every usual count, so that the hot loop turns it into an int with one dict
# lookup instead of a check and a conversion (measured: the largest per-field cost).
_SMALL_COUNTS: Final = {str(count): count for count in range(10_000)}

MODE_VALUES: Final[dict[str, UpdateMode]] = {
    "1": "overwrite",
    "上書き": "overwrite",
    "2": "add",
    "追加": "add",
}
TARGET_VALUES: Final[dict[str, ImportTarget]] = {
    "1": "expected",
    EXPECTED: "expected",
    "2": "actual",
    "実在庫数": "actual",
}
# What the download writes in 更新モード / 更新対象 (the numeric forms, as TEMPOSTAR's own
# integrations do).
_OVERWRITE_CODE: Final = "1"
_TARGET_CODES: Final[dict[ImportTarget, str]] = {"expected": "1", "actual": "2"}

_BOM: Final = b"\xef\xbb\xbf"
_BLOCK_LINES: Final = 2048
_END_OF_DATA: Final = "unexpected end of data"  # the csv reader's words for an open quote
_NEGATIVE_HINT: Final = (
    "an import never sets a negative count; --allow-negative takes 想定在庫数 below 0, "
    "as a TEMPOSTAR download holds for oversold items"
)


class StockImportRow(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One valid line of a stock file: set (overwrite) or move (add) one count of one SKU.

    ``reserve`` is the absolute 保留在庫数 to set, or None when the line leaves it alone.
    Encoded as an array, in field order.
    """

    line: int
    code: str
    value: int
    reserve: int | None
    mode: UpdateMode
    target: ImportTarget


class CatalogRow(msgspec.Struct, frozen=True, gc=False):
    """One valid line of a product catalog: a SKU code and its name."""

    line: int
    code: str
    name: str


class UnencodableCode(ValueError):
    """A SKU code has a character the download's encoding cannot write."""


def stock_codec(encoding: str) -> str:
    """The Python codec for an encoding name the operator may give: ``cp932`` or ``utf-8``.

    Japanese Excel reads and writes CSV as cp932, so the Shift_JIS names mean cp932 (strict
    shift_jis rejects ①, ㈱, 髙 and ～ and maps 0x8160 to another character).
    """
    name = encoding.strip().lower()
    if name in CP932_ALIASES or name.replace("_", "-") in CP932_ALIASES:
        return "cp932"
    if name.replace("_", "-") in ("utf-8", "utf8"):
        return "utf-8"
    raise ValueError(
        f"unsupported encoding {encoding!r}: use cp932 (Shift_JIS as Excel writes it) or utf-8"
    )


def read_stock_csv(
    lines: Iterable[bytes],
    *,
    target: ImportTarget = "expected",
    mode: ImportMode = "overwrite",
    encoding: str = "cp932",
    allow_negative: bool = False,
) -> Iterator[StockImportRow | RowError]:
    """Read a TEMPOSTAR stock file: one ``StockImportRow`` or ``RowError`` per data record.

    ``lines`` are the file's byte lines, each with or without its line break (``split_lines``
    or ``LineSplitter`` output, or a binary file object); the header is line 1. With
    ``mode="per-row"`` each record's 更新モード and 更新対象 decide mode and target and
    ``target`` is not used; otherwise those columns may be absent and are ignored: the
    operator's choice wins. ``allow_negative`` lets a 想定在庫数 be set below 0 (a merchant
    moving from TEMPOSTAR, whose download holds oversold counts). A header problem is a single
    error for line 1 and nothing else is read. Checks that need the ledger (unknown SKU,
    result below 0) are left to it: see ``apply_row`` and ``unknown_sku_error``. Raises
    ValueError at once for an unknown encoding, target or mode.
    """
    codec = stock_codec(encoding)
    _check_choice("target", target, ImportTarget)
    _check_choice("mode", mode, ImportMode)
    required = (
        (CODE, EXPECTED, UPDATE_MODE, UPDATE_TARGET) if mode == "per-row" else (CODE, EXPECTED)
    )
    return _read(
        lines,
        codec,
        required,
        (RESERVE,),
        lambda columns: _StockLines(columns, target, mode, allow_negative),
    )


def read_catalog_csv(
    lines: Iterable[bytes], *, encoding: str = "cp932"
) -> Iterator[CatalogRow | RowError]:
    """Read a TEMPOSTAR product catalog (商品コード,商品名): one row or error per data record.

    Same record model, encodings and code checks as ``read_stock_csv``; a name may be empty
    but may not hold control characters (they would break the one-line displays).
    """
    return _read(lines, stock_codec(encoding), CATALOG_HEADER, (), _CatalogLines)


class _MultiLine:
    """A parser's answer for a record over several lines that it was not asked to take."""


_MULTI_LINE: Final = _MultiLine()

# A parser reads the records of ``lines[start:stop]`` (``whole``: exactly one record, which
# may run over several lines), yielding rows and errors; ``offset`` + a line's position in
# the run is its line number. It returns how many lines its complete records used, why it
# stopped early (the reader's error, or ``_MULTI_LINE``: the record after them runs over
# several lines) or None, and how many lines the reader had read by then.
_Stopped = tuple[int, csv.Error | _MultiLine | None, int]
_LinesParser = Callable[
    [list[str], int, int, int, bool], Generator[_Row | RowError, None, _Stopped]
]


class _Block(NamedTuple):
    """Decoded lines, each with its line break, from ``first_line`` on; ``undecodable``:
    the raw line and its error, by index, for the lines that did not decode (their text is a
    stand-in that only shows where their record ends)."""

    lines: list[str]
    undecodable: dict[int, tuple[bytes, UnicodeDecodeError]]
    first_line: int

    def tail(self, index: int) -> _Block:
        bad = {i - index: e for i, e in self.undecodable.items() if i >= index}
        return _Block(self.lines[index:], bad, self.first_line + index)

    def followed_by(self, other: _Block) -> _Block:
        shift = len(self.lines)
        bad = self.undecodable | {i + shift: e for i, e in other.undecodable.items()}
        return _Block(self.lines + other.lines, bad, self.first_line)


def _read(
    raw_lines: Iterable[bytes],
    codec: str,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    parser_for: Callable[[dict[str, int]], _LinesParser[_Row]],
) -> Iterator[_Row | RowError]:
    raw = iter(raw_lines)
    header = next(raw, None)
    if header is not None and b"\r" in header.rstrip(b"\r\n"):
        # lines split at LF only (a file object) of a file whose lines end in CR alone
        raw = split_lines(chain([header], raw))
        header = next(raw, None)
    columns = _read_header(header, codec, required, optional)
    if isinstance(columns, RowError):
        yield columns
        return
    parse = parser_for(columns)
    carried: _Block | None = None
    for block in _decoded_blocks(raw, codec, first_line=2):
        if carried is not None:
            block = carried.followed_by(block)
        carried = yield from _read_block(block, parse, codec, final=False)
    if carried is not None:
        yield from _read_block(carried, parse, codec, final=True)


def _read_block(
    block: _Block, parse: _LinesParser[_Row], codec: str, *, final: bool
) -> Generator[_Row | RowError, None, _Block | None]:
    """The records of ``block``; returns the record still open at its end (unless ``final``),
    to be read on with the next block."""
    lines, undecodable, first_line = block
    count = len(lines)
    bad = sorted(undecodable)
    position = 0
    while position < count:
        stop = next((index for index in bad if index >= position), count)
        if stop == position:
            # a record that starts on a line that did not decode
            end = _record_end(lines, position, final)
            if end is None:
                return _carried(block, position)
            yield _undecodable_record(block, position, end, codec)
            position = end
            continue
        done, problem, read = yield from parse(
            lines, position, stop, first_line + position - 1, False
        )
        if problem is None:
            position = stop
            continue
        record = position + done
        if isinstance(problem, _MultiLine):
            end = position + read
            if _chars(lines, record, end) > MAX_RECORD_CHARS:
                reason = RECORD_TOO_LONG
            else:
                valid = yield from _whole_record(parse, lines, record, end, first_line + record - 1)
                # when it is not, its error is out: read on from its second line
                position = end if valid else record + 1
                continue
        elif str(problem) == _END_OF_DATA and stop < count:
            # the record runs into a line that did not decode: that line's error is its own
            end = _record_end(lines, record, final)
            if end is None:
                return _carried(block, record)
            yield _undecodable_record(block, record, end, codec)
            position = end
            continue
        elif str(problem) == _END_OF_DATA and not final:
            carried = _carried(block, record)
            if carried is not None:
                return carried
            reason = RECORD_TOO_LONG
        else:
            last = position + read  # one past the last line the reader read
            reason = csv_problem(problem, first_line + last - 1 if last > record + 1 else None)
        yield RowError(line=first_line + record, reason=reason)
        position = record + 1  # read on from the line after the record's first
    return None


def _whole_record(
    parse: _LinesParser[_Row], lines: list[str], start: int, end: int, offset: int
) -> Generator[_Row | RowError, None, bool]:
    """Parse the record over ``lines[start:end]``; True when it is a valid row (or a row to
    skip), else its error is yielded and the caller reads its lines again: a record over
    several lines that is not a valid row is most likely a stray quote that joined lines."""
    results = list(parse(lines, start, end, offset, True))
    error = next((item for item in results if isinstance(item, RowError)), None)
    if error is not None:
        yield error
        return False
    yield from results
    return True


def _carried(block: _Block, index: int) -> _Block | None:
    """The open record from ``index`` on, to read on with the next block; None when it is
    already longer than a record may be."""
    tail = block.tail(index)
    return tail if _chars(tail.lines, 0, len(tail.lines)) <= MAX_RECORD_CHARS else None


def _chars(lines: list[str], start: int, end: int) -> int:
    return sum(map(len, islice(lines, start, end)))


def _record_end(lines: list[str], start: int, final: bool) -> int | None:
    """Where the record that starts at ``lines[start]`` ends (one past its last line), read
    with the stand-in text of undecodable lines; None when it is still open at the end of
    ``lines`` and more lines follow."""
    reader = csv.reader(islice(lines, start, None), strict=True)
    try:
        next(reader, None)
    except csv.Error as error:
        if str(error) == _END_OF_DATA and not final:
            if _chars(lines, start, len(lines)) <= MAX_RECORD_CHARS:
                return None
        return start + 1
    return start + reader.line_num


def _undecodable_record(block: _Block, start: int, end: int, codec: str) -> RowError:
    """The error of the record on ``lines[start:end]``, which holds a line that did not
    decode: on the record's first line, naming the line where the byte is."""
    index = min(i for i in block.undecodable if start <= i < end)
    raw, error = block.undecodable[index]
    line = block.first_line + start
    where = block.first_line + index if index != start else None
    return RowError(line=line, reason=undecodable_reason(raw, error, codec, codec, where))


class _StockLines:
    """The stock file's data records; keeps the codes seen so far across blocks."""

    def __init__(
        self,
        columns: dict[str, int],
        target: ImportTarget,
        mode: ImportMode,
        allow_negative: bool,
    ) -> None:
        self.columns = columns
        self.target = target
        self.mode: UpdateMode = "add" if mode == "add" else "overwrite"
        self.per_row = mode == "per-row"
        self.allow_negative = allow_negative
        # Per target: a file may set both counts of one SKU, as a "both" download does.
        self.seen: dict[ImportTarget, set[str]] = {"expected": set(), "actual": set()}

    def __call__(
        self, lines: list[str], start: int, stop: int, offset: int, whole: bool
    ) -> Generator[StockImportRow | RowError, None, _Stopped]:
        # The hot loop of a 1,000,000-line import: locals only, and one cheap test per field
        # that lets the usual value through; the exact checks run only when it fails.
        reader = csv.reader(islice(lines, start, stop), strict=True)
        small_count = _SMALL_COUNTS.get
        columns, per_row, seen = self.columns, self.per_row, self.seen
        code_at, value_at = columns[CODE], columns[EXPECTED]
        reserve_at = columns.get(RESERVE, -1)
        mode_at, target_at = columns.get(UPDATE_MODE, -1), columns.get(UPDATE_TARGET, -1)
        row_mode, row_target = self.mode, self.target
        allow_negative = self.allow_negative
        seen_codes = seen[row_target]
        done = 0
        try:
            for fields in reader:
                first = done + 1
                done = reader.line_num
                if done != first and not whole:
                    return first - 1, _MULTI_LINE, done
                try:
                    code = fields[code_at]
                    value_text = fields[value_at]
                    reserve_text = fields[reserve_at] if reserve_at >= 0 else ""
                    if per_row:
                        mode_text = fields[mode_at]
                        target_text = fields[target_at]
                except IndexError:
                    if any(fields):
                        yield _short_row(offset + first, fields, columns)
                    continue
                if not (
                    0 < len(code) <= MAX_CODE_LENGTH
                    and code.isprintable()
                    and "E+" not in code
                    and code[0] != " " != code[-1]
                ):
                    if not any(fields):
                        continue  # an all-empty row, as Excel leaves below the data
                    problem = code_problem(code)
                    if problem is not None:
                        yield RowError(
                            line=offset + first, code=_shown(code), field=CODE, reason=problem
                        )
                        continue
                if per_row:
                    line_mode = MODE_VALUES.get(mode_text)
                    line_target = TARGET_VALUES.get(target_text)
                    if line_mode is None or line_target is None:
                        yield _per_row_error(
                            offset + first, code, mode_text, line_mode, target_text
                        )
                        continue
                    row_mode, row_target = line_mode, line_target
                    seen_codes = seen[row_target]
                value = small_count(value_text)
                if value is None:
                    parsed = _parse_quantity(
                        value_text,
                        allow_negative=row_mode == "add"
                        or (allow_negative and row_target == "expected"),
                    )
                    if isinstance(parsed, str):
                        yield RowError(
                            line=offset + first, code=code, field=EXPECTED, reason=parsed
                        )
                        continue
                    value = parsed
                reserve = small_count(reserve_text)
                if reserve is None and reserve_text:
                    parsed = _parse_quantity(reserve_text, allow_negative=False)
                    if isinstance(parsed, str):
                        yield RowError(line=offset + first, code=code, field=RESERVE, reason=parsed)
                        continue
                    reserve = parsed
                if code in seen_codes:
                    yield RowError(
                        line=offset + first,
                        code=code,
                        field=CODE,
                        reason=_duplicate_reason(row_target),
                    )
                    continue
                seen_codes.add(code)
                yield StockImportRow(offset + first, code, value, reserve, row_mode, row_target)
        except csv.Error as error:
            return done, error, reader.line_num
        return done, None, done


class _CatalogLines:
    """The catalog's data records; keeps the codes seen so far across blocks."""

    def __init__(self, columns: dict[str, int]) -> None:
        self.columns = columns
        self.seen: set[str] = set()

    def __call__(
        self, lines: list[str], start: int, stop: int, offset: int, whole: bool
    ) -> Generator[CatalogRow | RowError, None, _Stopped]:
        reader = csv.reader(islice(lines, start, stop), strict=True)
        code_at, name_at = self.columns[CODE], self.columns[NAME]
        done = 0
        try:
            for fields in reader:
                first = done + 1
                done = reader.line_num
                if done != first and not whole:
                    return first - 1, _MULTI_LINE, done
                line = offset + first
                if not any(fields):
                    continue
                if len(fields) <= max(code_at, name_at):
                    yield _short_row(line, fields, self.columns)
                    continue
                code, name = fields[code_at], fields[name_at]
                problem = code_problem(code)
                if problem is not None:
                    yield RowError(line=line, code=_shown(code), field=CODE, reason=problem)
                elif (invisible := name_problem(name)) is not None:
                    yield RowError(line=line, code=code, field=NAME, reason=invisible)
                elif code in self.seen:
                    yield RowError(line=line, code=code, field=CODE, reason=_duplicate_reason(None))
                else:
                    self.seen.add(code)
                    yield CatalogRow(line, code, name)
        except csv.Error as error:
            return done, error, reader.line_num
        return done, None, done


def apply_row(current: int, row: StockImportRow) -> int | str:
    """The new value of the row's target count, or the reason the row cannot be applied.

    ``current`` is the SKU's present value of ``row.target``. The reader already refused a
    negative overwrite; only an add needs the present value to know whether it goes below 0.
    """
    if row.mode == "overwrite":
        return row.value
    result = current + row.value
    if result < 0:
        return (
            f"result below 0: {current} {'-' if row.value < 0 else '+'} {abs(row.value)} = {result}"
        )
    if result > MAX_QUANTITY:
        return f"result above {MAX_QUANTITY}: {current} + {row.value} = {result}"
    return result


def zero_padding_match(
    code: str, known_code_lookup: Container[str] | Callable[[str], bool]
) -> str | None:
    """The existing SKU that ``code`` becomes when zeros are put back in front, if any.

    Excel turns an all-digit code into a number and drops its leading zeros (000123 → 123).
    ``known_code_lookup`` answers whether a code exists (a set, or a ledger query); it is
    asked once per candidate width, shortest first, only for all-digit codes.
    """
    if not (code.isascii() and code.isdigit()):
        return None
    exists = (
        known_code_lookup.__contains__
        if isinstance(known_code_lookup, Container)
        else known_code_lookup
    )
    for width in range(len(code) + 1, MAX_CODE_LENGTH + 1):
        candidate = code.zfill(width)
        if exists(candidate):
            return candidate
    return None


def unknown_sku_error(
    line: int, code: str, known_code_lookup: Container[str] | Callable[[str], bool]
) -> RowError:
    """The ledger's error for a code it does not know, naming the SKU Excel probably meant."""
    match = zero_padding_match(code, known_code_lookup)
    reason = "unknown SKU"
    if match is not None:
        reason += (
            f"; matches existing SKU {match} only after zero-padding: Excel dropped leading zeros?"
        )
    return RowError(line=line, code=code, field=CODE, reason=reason)


def write_stock_csv(
    records: Iterable[StockRecord],
    *,
    target: ExportTarget = "expected",
    encoding: str = "cp932",
) -> Iterator[bytes]:
    """The stock download as encoded chunks: every field quoted, CRLF line ends.

    ``expected``: one line per SKU with 更新モード 1 (overwrite) and 更新対象 1 (expected).
    ``both``: that line, then, when the SKU has an actual count, a second line with the actual
    count, 更新対象 2 and an empty 保留在庫数 (the reserve is written once, on the expected line).
    Importing either file with mode per-row sets every count to the value it already has;
    importing ``expected`` with mode overwrite and target expected does too. A negative
    (oversold) expected count is written as it is; importing it back is refused, as any import
    below 0 is. UTF-8 output starts with a BOM so that Japanese Excel does not read it as
    cp932. Raises ValueError at once for an unknown encoding or target, and
    ``UnencodableCode`` naming the SKU, while streaming, when a code cannot be written.
    """
    codec = stock_codec(encoding)
    _check_choice("target", target, ExportTarget)
    return _stock_chunks(records, target, codec)


def _stock_chunks(
    records: Iterable[StockRecord], target: ExportTarget, codec: str
) -> Iterator[bytes]:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(STOCK_HEADER)
    yield (_BOM if codec == "utf-8" else b"") + out.getvalue().encode(codec)
    expected_code, actual_code = _TARGET_CODES["expected"], _TARGET_CODES["actual"]
    pending = iter(records)
    while batch := list(islice(pending, _BLOCK_LINES)):
        out.seek(0)
        out.truncate()
        if target == "expected":
            writer.writerows(
                (code, expected, reserve, _OVERWRITE_CODE, expected_code)
                for code, expected, reserve, _ in batch
            )
        else:
            for code, expected, reserve, actual in batch:
                writer.writerow((code, expected, reserve, _OVERWRITE_CODE, expected_code))
                if actual is not None:
                    writer.writerow((code, actual, "", _OVERWRITE_CODE, actual_code))
        text = out.getvalue()
        try:
            encoded = text.encode(codec)
        except UnicodeEncodeError:
            raise _unencodable(batch, codec) from None
        # Python's cp932 also writes a few characters it reads back as others (〜 as ～, − as
        # －, ¢ £ ¬ ‖): for a SKU code that would silently change its identity.
        if encoded.decode(codec) != text:
            raise _unencodable(batch, codec)
        yield encoded


def _unencodable(batch: list[StockRecord], codec: str) -> UnencodableCode:
    for code, *_ in batch:
        for position, char in enumerate(code, start=1):
            try:
                read_back = char.encode(codec).decode(codec)
            except UnicodeEncodeError:
                read_back = ""
            if read_back != char:
                changed = f" (it would be read back as {read_back})" if read_back else ""
                return UnencodableCode(
                    f"SKU {_shown(code)} cannot be written in {codec}: character {char} "
                    f"(U+{ord(char):04X}) at position {position}{changed}; "
                    "download with encoding utf-8"
                )
    raise AssertionError("a batch failed to round-trip but none of its codes does")


def _read_header(
    raw: bytes | None, codec: str, required: tuple[str, ...], optional: tuple[str, ...]
) -> dict[str, int] | RowError:
    """Column name → index from line 1, or why line 1 is not a usable header."""
    if raw is None:
        return RowError(
            line=1, reason=f"the file is empty: expected the header {','.join(required)}"
        )
    if raw.startswith(_BOM):
        if codec != "utf-8":
            return RowError(
                line=1,
                reason=f"the file starts with a UTF-8 byte-order mark, not {codec}: "
                "import it with encoding utf-8",
            )
        raw = raw[len(_BOM) :]
    try:
        names = [
            name.strip() for name in next(csv.reader([decode_strict(raw, codec)], strict=True), [])
        ]
    except UnicodeDecodeError as error:
        return _undecodable(1, raw, error, codec)
    except csv.Error as error:
        return RowError(line=1, reason=f"not valid CSV: {error}")
    columns: dict[str, int] = {}
    for column in (*required, *optional):
        if names.count(column) > 1:
            return RowError(line=1, field=column, reason="column appears twice in the header")
        if column in names:
            columns[column] = names.index(column)
        elif column in required:
            return RowError(
                line=1,
                field=column,
                reason=f"column missing from the header (found {_shown(','.join(names))})"
                + misread_header_hint(names, required),
            )
    return columns


def _check_choice(option: str, value: str, choices: object) -> None:
    # The daemon passes the operator's words through; a typo must not fall back to a default.
    if value not in get_args(choices):
        raise ValueError(f"unknown {option} {value!r}: use {' or '.join(get_args(choices))}")


def _decoded_blocks(raw: Iterator[bytes], codec: str, first_line: int) -> Iterator[_Block]:
    """The file's lines after the header, decoded in blocks, each line with its line break."""
    while batch := list(islice(raw, _BLOCK_LINES)):
        lines = _decode_block(batch, codec)
        if lines is not None:
            yield _Block(lines, {}, first_line)
        else:
            yield _decode_lines(batch, codec, first_line)
        first_line += len(batch)


def _decode_block(batch: list[bytes], codec: str) -> list[str] | None:
    """The block's lines decoded with one ``decode`` call, or None to go line by line."""
    # 0x0A and 0x0D are never part of a cp932 or UTF-8 multibyte character, so splitting the
    # decoded text at its line breaks gives back the lines, each with its line break: the
    # csv reader then keeps a line break inside a quoted field.
    data = b"".join(batch) if batch[0].endswith(b"\n") else b"\n".join(batch) + b"\n"
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        return None
    # Python's cp932 turns a few lone bytes into characters no file means (see
    # CP932_LAX_CHARACTERS); a search per character is ~100x cheaper than a pass per code point.
    if codec == "cp932" and any(char in text for char in CP932_LAX_CHARACTERS):
        return None
    lines = text.splitlines(keepends=True)
    # Another count means a line holds another line break (a CR alone, a form feed) or the
    # items mix ended and unended lines: decode them one by one.
    return lines if len(lines) == len(batch) else None


def _decode_lines(batch: list[bytes], codec: str, first_line: int) -> _Block:
    lines: list[str] = []
    undecodable: dict[int, tuple[bytes, UnicodeDecodeError]] = {}
    for index, raw in enumerate(batch):
        try:
            text = decode_strict(raw, codec)
        except UnicodeDecodeError as error:
            # a stand-in that only shows where the record ends: quotes, commas and line
            # breaks are ASCII, which no multibyte character of cp932 or UTF-8 holds
            text = raw.decode(codec, "replace")
            undecodable[index] = (raw, error)
        lines.append(text if text.endswith("\n") else text + "\n")
    return _Block(lines, undecodable, first_line)


def _undecodable(line: int, raw: bytes, error: UnicodeDecodeError, codec: str) -> RowError:
    return RowError(line=line, reason=undecodable_reason(raw, error, codec, codec))


def _short_row(line: int, fields: list[str], columns: dict[str, int]) -> RowError:
    missing = min((index, name) for name, index in columns.items() if index >= len(fields))[1]
    code_at = columns[CODE]
    return RowError(
        line=line,
        code=_shown(fields[code_at]) if code_at < len(fields) else "",
        field=missing,
        reason=f"missing: the line has only {len(fields)} field{'' if len(fields) == 1 else 's'}",
    )


def _per_row_error(
    line: int, code: str, mode_text: str, mode: UpdateMode | None, target_text: str
) -> RowError:
    if mode is None:
        field, allowed = UPDATE_MODE, "1 or 上書き (overwrite), 2 or 追加 (add)"
        text = mode_text
    else:
        field, allowed = UPDATE_TARGET, f"1 or {EXPECTED} (expected), 2 or 実在庫数 (actual)"
        text = target_text
    given = f"unknown value '{_shown(text)}'" if text else "empty"
    return RowError(line=line, code=code, field=field, reason=f"{given}: use {allowed}")


def _duplicate_reason(target: ImportTarget | None) -> str:
    if target is None:
        return "duplicate code in the file: an earlier line already has it"
    counted = EXPECTED if target == "expected" else "実在庫数"
    return f"duplicate code in the file: an earlier line already updates its {counted}"


def _parse_quantity(text: str, *, allow_negative: bool) -> int | str:
    """The integer in ``text``, or the reason it is not an acceptable quantity.

    Digits are Unicode decimal digits, so the full-width １２ a Japanese IME types counts as 12;
    spaces, separators, decimals and exponents do not.
    """
    if text.isdecimal() and len(text) <= _QUANTITY_DIGITS:
        return int(text)
    if not text:
        return "empty"
    digits = text[1:] if text[0] in "+-" else text
    if not digits.isdecimal():
        return f"not an integer: '{_shown(text)}'"
    significant = digits.lstrip("0")
    if len(significant) > _QUANTITY_DIGITS:
        return f"larger than {MAX_QUANTITY}: {_shown(text)}"
    value = int(significant or "0")
    if text[0] == "-" and value:
        if not allow_negative:
            return f"below 0: {text} ({_NEGATIVE_HINT})"
        value = -value
    return value


def _shown(text: str, limit: int = MAX_CODE_LENGTH) -> str:
    """``text`` fit for a one-line message: invisible characters spelled out, long text cut."""
    if not text.isprintable():
        text = "".join(
            f"<U+{ord(char):04X}>" if unicodedata.category(char) in INVISIBLE_CATEGORIES else char
            for char in text
        )
    return text if len(text) <= limit else text[:limit] + "…"


# --- 在庫変動ログ: TEMPOSTAR's stock change history ---------------------------------------
#
# The daily CSV download of the screen 在庫変動履歴 (reference/mall-formats.md §1.8): one
# record per change of a SKU's count, cp932, CRLF or CR alone, quoted either minimally or
# with every non-empty field quoted (empty fields bare); both are plain CSV to the reader.

LOG_TIME: Final = "更新日時"
LOG_REASON: Final = "更新理由"
LOG_BASE_CODE: Final = "商品基本コード"
LOG_ATTRIBUTE1_CODE: Final = "属性1コード"
LOG_ATTRIBUTE2_CODE: Final = "属性2コード"
LOG_BEFORE: Final = "変動前"
LOG_AFTER: Final = "変動後"
LOG_DELTA: Final = "増減値"
STOCK_LOG_HEADER: Final = (
    LOG_TIME,
    LOG_REASON,
    LOG_BASE_CODE,
    CODE,
    NAME,
    "属性1名",
    "属性2名",
    LOG_ATTRIBUTE1_CODE,
    LOG_ATTRIBUTE2_CODE,
    "倉庫名",
    "実在庫区分",
    LOG_BEFORE,
    LOG_AFTER,
    LOG_DELTA,
    "ユーザー",
)
# 更新理由 values seen in real logs: a sale taken in (always negative), a stock file
# imported, an edit on the web screen, an order corrected or cancelled (positive)
LOG_SALE: Final = "受注取込"
LOG_CSV_IMPORT: Final = "在庫CSV取込"
LOG_WEB_EDIT: Final = "WEB画面"
LOG_ORDER_FIX: Final = "受注修正"
_LOG_REQUIRED: Final = (LOG_TIME, LOG_REASON, CODE, LOG_BEFORE, LOG_AFTER, LOG_DELTA)
# YYYY/MM/DD HH:MM:SS as TEMPOSTAR writes it; a file re-saved by Excel loses the zero
# padding and the seconds (2024/10/1 0:02), which still says the same minute
_LOG_TIME_FORM: Final = re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2}) (\d{1,2}):(\d{2})(?::(\d{2}))?")


class StockLogRow(msgspec.Struct, frozen=True, kw_only=True):
    """One change of one SKU's count in a 在庫変動ログ. ``at`` is the log's own local time
    (TEMPOSTAR's: Asia/Tokyo), without a zone, as written; ``after`` may be below 0 (sold
    beyond the count: oversold); ``delta`` is after − before."""

    line: int
    at: datetime
    reason: str
    sku: str
    before: int
    after: int
    delta: int


def read_stock_log(
    chunks: Iterable[bytes], *, encoding: str = "cp932"
) -> Iterator[StockLogRow | RowError]:
    """Read a TEMPOSTAR 在庫変動ログ: one ``StockLogRow`` or ``RowError`` per data record, in
    file order, each numbered by its first line (the header is line 1).

    ``chunks`` are the file's bytes in pieces of any size (a file object, a read); line ends
    are CRLF, LF or CR alone. The SKU is 商品コード; where it is empty, 商品基本コード +
    属性1コード + 属性2コード (TEMPOSTAR's rule for the code). A header without the columns
    it needs is one error for line 1 and nothing else is read. Raises ValueError at once for
    an unknown encoding, and ``LineTooLong`` for a line no such file has.
    """
    codec = stock_codec(encoding)
    for line, record in header_records(csv_records(chunks, codec), _LOG_REQUIRED):
        yield record if isinstance(record, RowError) else _stock_log_row(line, record)


def _stock_log_row(line: int, record: dict[str, str]) -> StockLogRow | RowError:
    code = record[CODE] or "".join(
        record.get(column, "")
        for column in (LOG_BASE_CODE, LOG_ATTRIBUTE1_CODE, LOG_ATTRIBUTE2_CODE)
    )
    problem = code_problem(code)
    if problem is not None:
        return RowError(line=line, code=_shown(code), field=CODE, reason=problem)
    at = _log_time(record[LOG_TIME])
    if at is None:
        return RowError(
            line=line,
            code=code,
            field=LOG_TIME,
            reason=f"'{_shown(record[LOG_TIME])}' is not a time YYYY/MM/DD HH:MM:SS",
        )
    reason = record[LOG_REASON].strip()
    if not reason:
        return RowError(line=line, code=code, field=LOG_REASON, reason="empty")
    counts: list[int] = []
    for column in (LOG_BEFORE, LOG_AFTER, LOG_DELTA):
        value = int_field(record[column], line=line, field=column, code=code)
        if isinstance(value, RowError):
            return value
        counts.append(value)
    before, after, delta = counts
    if after - before != delta:
        return RowError(
            line=line,
            code=code,
            field=LOG_DELTA,
            reason=f"{delta} is not {LOG_AFTER} − {LOG_BEFORE} ({after} − {before} = "
            f"{after - before})",
        )
    return StockLogRow(
        line=line, at=at, reason=reason, sku=code, before=before, after=after, delta=delta
    )


def _log_time(text: str) -> datetime | None:
    match = _LOG_TIME_FORM.fullmatch(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part or 0) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError:  # 2024/02/30, 25:00
        return None
