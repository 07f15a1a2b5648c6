"""TEMPOSTAR-format CSV files: stock import (在庫一括更新), stock download (在庫ダウンロード) and
the product catalog read by ``zaiko sku import`` (SPEC §3.6, reference/mall-formats.md §1.8, §3).

Pure: msgspec and the standard library only, no I/O. The daemon feeds byte lines in and gets
parsed rows or ``RowError`` values out, one per data line, in file order; checks that need the
ledger's data are helpers it calls (``apply_row``, ``unknown_sku_error``).

Line model. The header is line 1 and a record is exactly one physical line: a quoted field
that runs over a line break is a row error and the lines after it are read again on their own,
so every line number in a message is the line in the operator's editor and one broken quote
never hides the rows after it. No stock or catalog field legitimately holds a line break.

Speed. Byte lines are decoded in blocks of ``_BLOCK_LINES`` (one ``bytes.decode`` per block,
not per line) and the csv module splits fields in C; only a block that fails to decode is
decoded again line by line to find the line numbers of its undecodable bytes. Memory is one
block plus the set of codes already seen (duplicate check), whatever the file size.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Callable, Container, Generator, Iterable, Iterator
from itertools import islice
from typing import Final, Literal, Protocol, TypeVar, get_args

import msgspec

from protocols.malls.base import (
    CP932_ALIASES,
    CP932_LAX_CHARACTERS,
    RowError,
    decode_strict,
    misread_header_hint,
    undecodable_hint,
)
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
# Longer lines cannot be stock or catalog rows; the cap keeps a file without line breaks from
# filling memory. It matches the csv module's default field size limit.
MAX_LINE_BYTES: Final = 131_072

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
_UNCLOSED_QUOTE: Final = (
    "a quoted field is not closed on this line (line breaks inside fields are not supported)"
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


class LineTooLong(ValueError):
    """A line exceeds ``MAX_LINE_BYTES``: the file is not a CSV of stock or products."""

    def __init__(self, line: int) -> None:
        super().__init__(
            f"line {line} is longer than {MAX_LINE_BYTES} bytes: not a CSV stock or product file"
        )


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


class LineSplitter:
    """Turns byte chunks (as they arrive over the websocket) into lines.

    Lines are split at b"\\n" only and returned without it; a CR before it stays and the csv
    reader drops it, so CRLF and LF files read the same and a CRLF cut between two chunks
    cannot produce an extra empty line.
    """

    def __init__(self) -> None:
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._lines_done = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines completed by ``chunk``; the unfinished tail is kept for the next call."""
        if b"\n" not in chunk:
            self._keep(chunk)
            return []
        lines = chunk.split(b"\n")
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


def read_stock_csv(
    lines: Iterable[bytes],
    *,
    target: ImportTarget = "expected",
    mode: ImportMode = "overwrite",
    encoding: str = "cp932",
) -> Iterator[StockImportRow | RowError]:
    """Read a TEMPOSTAR stock file: one ``StockImportRow`` or ``RowError`` per data line.

    ``lines`` are the file's byte lines, each with or without its line break (a binary file
    object, ``split_lines`` or ``LineSplitter`` output); the header is line 1. With
    ``mode="per-row"`` each line's 更新モード and 更新対象 decide mode and target and ``target``
    is not used; otherwise those columns may be absent and are ignored: the operator's choice
    wins. A header problem is a single error for line 1 and nothing else is read. Checks that
    need the ledger (unknown SKU, result below 0) are left to it: see ``apply_row`` and
    ``unknown_sku_error``. Raises ValueError at once for an unknown encoding, target or mode.
    """
    codec = stock_codec(encoding)
    _check_choice("target", target, ImportTarget)
    _check_choice("mode", mode, ImportMode)
    required = (
        (CODE, EXPECTED, UPDATE_MODE, UPDATE_TARGET) if mode == "per-row" else (CODE, EXPECTED)
    )
    return _read(
        lines, codec, required, (RESERVE,), lambda columns: _StockLines(columns, target, mode)
    )


def read_catalog_csv(
    lines: Iterable[bytes], *, encoding: str = "cp932"
) -> Iterator[CatalogRow | RowError]:
    """Read a TEMPOSTAR product catalog (商品コード,商品名): one row or error per data line.

    Same line model, encodings and code checks as ``read_stock_csv``; a name may be empty but
    may not hold control characters (they would break the one-line displays).
    """
    return _read(lines, stock_codec(encoding), CATALOG_HEADER, (), _CatalogLines)


class _CsvReader(Protocol):
    """What a parser needs of ``csv.reader``: records, and the count of lines read so far."""

    @property
    def line_num(self) -> int: ...

    def __next__(self) -> list[str]: ...

    def __iter__(self) -> _CsvReader: ...


# A parser reads one csv reader's run of lines, yielding rows and errors; ``offset`` + the
# reader's line number is the physical line number. It returns how many lines its complete
# records used and, when it stopped early, why the next line is not a record of its own.
_LinesParser = Callable[[_CsvReader, int], Generator[_Row | RowError, None, tuple[int, str | None]]]


def _read(
    raw_lines: Iterable[bytes],
    codec: str,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    parser_for: Callable[[dict[str, int]], _LinesParser[_Row]],
) -> Iterator[_Row | RowError]:
    raw = iter(raw_lines)
    columns = _read_header(next(raw, None), codec, required, optional)
    if isinstance(columns, RowError):
        yield columns
        return
    parse = parser_for(columns)
    for lines, errors, first_line in _decoded_blocks(raw, codec, first_line=2):
        # Lines that did not decode split the block into runs that did.
        start = 0
        for stop in (*sorted(errors), len(lines)):
            while start < stop:
                reader = csv.reader(islice(lines, start, stop), strict=True)
                done, problem = yield from parse(reader, first_line + start - 1)
                if problem is None:
                    break
                yield RowError(line=first_line + start + done, reason=problem)
                # Every line after the broken one is read again on its own.
                start += done + 1
            if stop in errors:
                yield errors[stop]
            start = stop + 1


def _csv_problem(reader: _CsvReader, done: int, error: csv.Error) -> str:
    """Why the line after the ``done`` complete ones is not a record (the reader raised)."""
    # Only an open quote makes the reader read past the line or reach the end of its lines
    # ("unexpected end of data"); any other error stays within the line.
    if reader.line_num != done + 1 or str(error) == "unexpected end of data":
        return _UNCLOSED_QUOTE
    return f"not valid CSV: {error}"


class _StockLines:
    """The stock file's data lines; keeps the codes seen so far across blocks."""

    def __init__(self, columns: dict[str, int], target: ImportTarget, mode: ImportMode) -> None:
        self.columns = columns
        self.target = target
        self.mode: UpdateMode = "add" if mode == "add" else "overwrite"
        self.per_row = mode == "per-row"
        # Per target: a file may set both counts of one SKU, as a "both" download does.
        self.seen: dict[ImportTarget, set[str]] = {"expected": set(), "actual": set()}

    def __call__(
        self, reader: _CsvReader, offset: int
    ) -> Generator[StockImportRow | RowError, None, tuple[int, str | None]]:
        # The hot loop of a 1,000,000-line import: locals only, and one cheap test per field
        # that lets the usual value through; the exact checks run only when it fails.
        small_count = _SMALL_COUNTS.get
        columns, per_row, seen = self.columns, self.per_row, self.seen
        code_at, value_at = columns[CODE], columns[EXPECTED]
        reserve_at = columns.get(RESERVE, -1)
        mode_at, target_at = columns.get(UPDATE_MODE, -1), columns.get(UPDATE_TARGET, -1)
        row_mode, row_target = self.mode, self.target
        seen_codes = seen[row_target]
        done = 0
        try:
            for fields in reader:
                number = reader.line_num
                if number != done + 1:
                    return done, _UNCLOSED_QUOTE
                done = number
                try:
                    code = fields[code_at]
                    value_text = fields[value_at]
                    reserve_text = fields[reserve_at] if reserve_at >= 0 else ""
                    if per_row:
                        mode_text = fields[mode_at]
                        target_text = fields[target_at]
                except IndexError:
                    if any(fields):
                        yield _short_row(offset + number, fields, columns)
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
                            line=offset + number, code=_shown(code), field=CODE, reason=problem
                        )
                        continue
                if per_row:
                    line_mode = MODE_VALUES.get(mode_text)
                    line_target = TARGET_VALUES.get(target_text)
                    if line_mode is None or line_target is None:
                        yield _per_row_error(
                            offset + number, code, mode_text, line_mode, target_text
                        )
                        continue
                    row_mode, row_target = line_mode, line_target
                    seen_codes = seen[row_target]
                value = small_count(value_text)
                if value is None:
                    parsed = _parse_quantity(value_text, allow_negative=row_mode == "add")
                    if isinstance(parsed, str):
                        yield RowError(
                            line=offset + number, code=code, field=EXPECTED, reason=parsed
                        )
                        continue
                    value = parsed
                reserve = small_count(reserve_text)
                if reserve is None and reserve_text:
                    parsed = _parse_quantity(reserve_text, allow_negative=False)
                    if isinstance(parsed, str):
                        yield RowError(
                            line=offset + number, code=code, field=RESERVE, reason=parsed
                        )
                        continue
                    reserve = parsed
                if code in seen_codes:
                    yield RowError(
                        line=offset + number,
                        code=code,
                        field=CODE,
                        reason=_duplicate_reason(row_target),
                    )
                    continue
                seen_codes.add(code)
                yield StockImportRow(offset + number, code, value, reserve, row_mode, row_target)
        except csv.Error as error:
            return done, _csv_problem(reader, done, error)
        return done, None


class _CatalogLines:
    """The catalog's data lines; keeps the codes seen so far across blocks."""

    def __init__(self, columns: dict[str, int]) -> None:
        self.columns = columns
        self.seen: set[str] = set()

    def __call__(
        self, reader: _CsvReader, offset: int
    ) -> Generator[CatalogRow | RowError, None, tuple[int, str | None]]:
        code_at, name_at = self.columns[CODE], self.columns[NAME]
        done = 0
        try:
            for fields in reader:
                number = reader.line_num
                if number != done + 1:
                    return done, _UNCLOSED_QUOTE
                done = number
                line = offset + number
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
            return done, _csv_problem(reader, done, error)
        return done, None


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


def _decoded_blocks(
    raw: Iterator[bytes], codec: str, first_line: int
) -> Iterator[tuple[list[str], dict[int, RowError], int]]:
    """(decoded lines, errors by index for the lines that did not decode, first line number)."""
    while batch := list(islice(raw, _BLOCK_LINES)):
        lines = _decode_block(batch, codec)
        if lines is not None:
            yield lines, {}, first_line
        else:
            yield *_decode_lines(batch, codec, first_line), first_line
        first_line += len(batch)


def _decode_block(batch: list[bytes], codec: str) -> list[str] | None:
    """The block's lines decoded with one ``decode`` call, or None to go line by line."""
    # 0x0A is never part of a cp932 or UTF-8 multibyte character, so splitting the decoded
    # text at "\n" gives back the lines.
    separator = b"" if batch[0].endswith(b"\n") else b"\n"
    try:
        text = separator.join(batch).decode(codec)
    except UnicodeDecodeError:
        return None
    # Python's cp932 turns a few lone bytes into characters no file means (see
    # CP932_LAX_CHARACTERS); a search per character is ~100x cheaper than a pass per code point.
    if codec == "cp932" and any(char in text for char in CP932_LAX_CHARACTERS):
        return None
    lines = text.split("\n")
    if len(lines) == len(batch) + 1 and not lines[-1]:
        lines.pop()
    # Another count means the items mix ended and unended lines: decode them one by one.
    return lines if len(lines) == len(batch) else None


def _decode_lines(
    batch: list[bytes], codec: str, first_line: int
) -> tuple[list[str], dict[int, RowError]]:
    lines: list[str] = []
    errors: dict[int, RowError] = {}
    for index, raw in enumerate(batch):
        try:
            lines.append(decode_strict(raw, codec))
        except UnicodeDecodeError as error:
            lines.append("")
            errors[index] = _undecodable(first_line + index, raw, error, codec)
    return lines, errors


def _undecodable(line: int, raw: bytes, error: UnicodeDecodeError, codec: str) -> RowError:
    return RowError(
        line=line,
        reason=f"byte 0x{raw[error.start]:02X} at column {error.start + 1} is not valid {codec}"
        + undecodable_hint(raw, codec),
    )


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
            return f"below 0: {text} (an import never sets a negative count)"
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
