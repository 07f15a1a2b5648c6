"""TEMPOSTAR stock and catalog CSV: reading, validation, line numbers, download round trip."""

from __future__ import annotations

import io
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.malls.base import RowError, misread_header_hint, undecodable_hint
from protocols.sku import code_problem
from protocols.tempostar import (
    MAX_LINE_BYTES,
    CatalogRow,
    LineSplitter,
    LineTooLong,
    StockImportRow,
    UnencodableCode,
    apply_row,
    read_catalog_csv,
    read_stock_csv,
    split_lines,
    stock_codec,
    unknown_sku_error,
    write_stock_csv,
    zero_padding_match,
)

HEADER = "商品コード,想定在庫数,保留在庫数,更新モード,更新対象"
NEGATIVE_HINT = (
    "an import never sets a negative count; --allow-negative takes 想定在庫数 below 0, "
    "as a TEMPOSTAR download holds for oversold items"
)
SHORT_HEADER = "商品コード,想定在庫数"
LONG_CODE = "X" * 65

# Every kind of line the reader must tell apart, one per line, numbered from the header (1).
STOCK_LINES = [
    HEADER,  # 1
    '"000123","10","2","1","1"',  # 2: leading zeros kept
    '"髙島屋①㈱","5","","1","1"',  # 3: cp932-only characters; empty reserve
    '"ABC-001","12.5","0","1","1"',  # 4: not an integer
    '"ABC-002","-3","0","1","1"',  # 5: negative overwrite
    '"000123","7","0","1","1"',  # 6: duplicate
    '"","4","0","1","1"',  # 7: empty code
    f'"{LONG_CODE}","4","0","1","1"',  # 8: too long
    '"AB\tC","4","0","1","1"',  # 9: control character
    '"4.97171E+12","4","0","1","1"',  # 10: Excel exponent form
    '"ABC-003","4","x","1","1"',  # 11: reserve not an integer
    '"ABC-004","4"',  # 12: short line
    '"ABC-005","1',  # 13: quote not closed
    '"ABC-006","６","0","1","1"',  # 14: full-width digit
    '"","","","",""',  # 15: all empty, as Excel leaves: skipped
    "",  # 16: blank: skipped
    '"ABC-007","0","1000000000","1","1"',  # 17: reserve too large
    '"～ABC","3","0","1","1"',  # 18: 0x8160 is the full-width tilde in cp932
    '"ABC-008","3","0","9","Z"',  # 19: per-row values are ignored in overwrite mode
]

EXPECTED_RESULTS: list[StockImportRow | RowError] = [
    StockImportRow(2, "000123", 10, 2, "overwrite", "expected"),
    StockImportRow(3, "髙島屋①㈱", 5, None, "overwrite", "expected"),
    RowError(line=4, code="ABC-001", field="想定在庫数", reason="not an integer: '12.5'"),
    RowError(
        line=5,
        code="ABC-002",
        field="想定在庫数",
        reason=f"below 0: -3 ({NEGATIVE_HINT})",
    ),
    RowError(
        line=6,
        code="000123",
        field="商品コード",
        reason="duplicate code in the file: an earlier line already updates its 想定在庫数",
    ),
    RowError(line=7, field="商品コード", reason="empty"),
    RowError(
        line=8,
        code="X" * 64 + "…",
        field="商品コード",
        reason="longer than 64 characters (65)",
    ),
    RowError(
        line=9,
        code="AB<U+0009>C",
        field="商品コード",
        reason="contains the control character U+0009",
    ),
    RowError(
        line=10,
        code="4.97171E+12",
        field="商品コード",
        reason="looks like Excel turned the code into exponent form",
    ),
    RowError(line=11, code="ABC-003", field="保留在庫数", reason="not an integer: 'x'"),
    RowError(
        line=12,
        code="ABC-004",
        field="保留在庫数",
        reason="missing: the line has only 2 fields",
    ),
    RowError(
        line=13,
        reason="a quoted field opened on this line is not closed before line 14 "
        "(',' expected after '\"')",
    ),
    StockImportRow(14, "ABC-006", 6, 0, "overwrite", "expected"),
    RowError(
        line=17,
        code="ABC-007",
        field="保留在庫数",
        reason="larger than 999999999: 1000000000",
    ),
    StockImportRow(18, "～ABC", 3, 0, "overwrite", "expected"),
    StockImportRow(19, "ABC-008", 3, 0, "overwrite", "expected"),
]


def stock_file(lines: list[str], encoding: str = "cp932", newline: str = "\r\n") -> bytes:
    return "".join(line + newline for line in lines).encode(encoding)


def read_all(data: bytes, **options: str) -> list[StockImportRow | RowError]:
    return list(read_stock_csv(io.BytesIO(data), **options))  # type: ignore[arg-type]


def test_cp932_file_gives_exact_rows_and_errors() -> None:
    assert read_all(stock_file(STOCK_LINES)) == EXPECTED_RESULTS


def test_messages_are_one_line_with_line_code_and_field() -> None:
    errors = [item for item in read_all(stock_file(STOCK_LINES)) if isinstance(item, RowError)]
    messages = [error.message() for error in errors]
    assert messages[0] == "line 4 [ABC-001] 想定在庫数: not an integer: '12.5'"
    assert messages[3] == "line 7 商品コード: empty"
    assert messages[5] == ("line 9 [AB<U+0009>C] 商品コード: contains the control character U+0009")
    assert messages[6] == (
        "line 10 [4.97171E+12] 商品コード: looks like Excel turned the code into exponent form"
    )
    assert all("\n" not in message and "\t" not in message for message in messages)


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_utf8_with_bom_reads_the_same(newline: str) -> None:
    data = b"\xef\xbb\xbf" + stock_file(STOCK_LINES, "utf-8", newline)
    assert read_all(data, encoding="utf-8") == EXPECTED_RESULTS
    assert read_all(data[3:], encoding="UTF8") == EXPECTED_RESULTS


@pytest.mark.parametrize("alias", ["shift_jis", "Shift-JIS", "sjis", "SJIS", "ms932", "CP932"])
def test_shift_jis_names_mean_cp932(alias: str) -> None:
    assert stock_codec(alias) == "cp932"
    assert read_all(stock_file(STOCK_LINES), encoding=alias) == EXPECTED_RESULTS


def test_unsupported_encoding_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="unsupported encoding 'latin-1'"):
        read_stock_csv([], encoding="latin-1")


def test_unknown_target_or_mode_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="unknown mode 'replace': use overwrite or add or per-row"):
        read_stock_csv([], mode="replace")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown target 'all': use expected or both"):
        write_stock_csv([], target="all")  # type: ignore[arg-type]


def test_bom_with_cp932_says_to_use_utf8() -> None:
    data = b"\xef\xbb\xbf" + stock_file(STOCK_LINES, "utf-8")
    assert read_all(data) == [
        RowError(
            line=1,
            reason="the file starts with a UTF-8 byte-order mark, not cp932: "
            "import it with encoding utf-8",
        )
    ]


def test_lines_without_line_breaks_read_the_same() -> None:
    lines = stock_file(STOCK_LINES).split(b"\r\n")[:-1]
    assert list(read_stock_csv(lines)) == EXPECTED_RESULTS


def test_undecodable_byte_is_an_error_on_its_line_and_other_lines_still_read() -> None:
    data = stock_file([SHORT_HEADER, '"A1","1"', '"A2","2"']) + b'"A\x82\xff3","3"\r\n'
    data += stock_file(['"A4","4"'])
    assert read_all(data) == [
        StockImportRow(2, "A1", 1, None, "overwrite", "expected"),
        StockImportRow(3, "A2", 2, None, "overwrite", "expected"),
        RowError(line=4, reason="byte 0x82 at column 3 is not valid cp932"),
        StockImportRow(5, "A4", 4, None, "overwrite", "expected"),
    ]


@pytest.mark.parametrize("byte", [b"\x80", b"\xa0", b"\xfd", b"\xff"])
def test_lone_bytes_python_cp932_would_accept_are_errors_too(byte: bytes) -> None:
    # ÷ (81 80) and 唖 (88 A0) hold the same bytes as trail bytes: those are fine.
    data = stock_file([SHORT_HEADER, '"÷唖","1"']) + b'"A' + byte + b'","2"\r\n'
    assert read_all(data) == [
        StockImportRow(2, "÷唖", 1, None, "overwrite", "expected"),
        RowError(line=3, reason=f"byte 0x{byte[0]:02X} at column 3 is not valid cp932"),
    ]


def test_undecodable_bytes_far_into_a_large_file_keep_their_line_numbers() -> None:
    rows = [f'"C{number}","{number % 7}"' for number in range(2, 6001)]
    data = bytearray(stock_file([SHORT_HEADER, *rows]))
    bad_lines = {2500, 4097, 6000}
    lines = data.split(b"\r\n")
    for line in bad_lines:
        lines[line - 1] = lines[line - 1][:-1] + b"\x82"  # a lead byte with no trail byte
    results = list(read_stock_csv(io.BytesIO(b"\r\n".join(lines))))
    errors = [item for item in results if isinstance(item, RowError)]
    assert [error.line for error in errors] == sorted(bad_lines)
    assert errors[0].reason == "byte 0x82 at column 11 is not valid cp932"
    parsed = [item for item in results if isinstance(item, StockImportRow)]
    assert len(parsed) == 5999 - len(bad_lines)
    assert all(row.code == f"C{row.line}" and row.value == row.line % 7 for row in parsed)


def test_undecodable_header_stops_the_file() -> None:
    assert read_all(b"\x82\r\n" + stock_file(['"A","1"'])) == [
        RowError(line=1, reason="byte 0x82 at column 1 is not valid cp932")
    ]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("商品コード,在庫数", RowError(line=1, field="想定在庫数", reason="")),
        ("想定在庫数", RowError(line=1, field="商品コード", reason="")),
        (
            "商品コード,想定在庫数,商品コード",
            RowError(line=1, field="商品コード", reason="column appears twice in the header"),
        ),
    ],
)
def test_header_problems_are_one_error(header: str, expected: RowError) -> None:
    (error,) = read_all(stock_file([header, '"A","1"']))
    assert isinstance(error, RowError)
    assert (error.line, error.field) == (expected.line, expected.field)
    if expected.reason:
        assert error.reason == expected.reason
    else:
        assert error.reason == f"column missing from the header (found {header})"


def test_empty_file_is_an_error() -> None:
    assert read_all(b"") == [
        RowError(line=1, reason="the file is empty: expected the header 商品コード,想定在庫数")
    ]


def test_columns_found_by_name_in_any_order_extra_columns_ignored() -> None:
    data = stock_file([" 想定在庫数 ,メモ,商品コード", '"8","note","B-1"'])
    assert read_all(data, target="actual", mode="add") == [
        StockImportRow(2, "B-1", 8, None, "add", "actual")
    ]


def test_add_mode_allows_negative_values_and_signs() -> None:
    data = stock_file([SHORT_HEADER, '"A","-3","","",""', '"B","+4"', '"C","-"'])
    assert read_all(data, mode="add") == [
        StockImportRow(2, "A", -3, None, "add", "expected"),
        StockImportRow(3, "B", 4, None, "add", "expected"),
        RowError(line=4, code="C", field="想定在庫数", reason="not an integer: '-'"),
    ]


def test_unclosed_quote_does_not_hide_the_next_lines() -> None:
    data = stock_file([SHORT_HEADER, '"A","1', '"B","2"', '"C","3"x', '"D","4"'])
    assert read_all(data) == [
        RowError(
            line=2,
            reason="a quoted field opened on this line is not closed before line 3 "
            "(',' expected after '\"')",
        ),
        StockImportRow(3, "B", 2, None, "overwrite", "expected"),
        RowError(line=4, reason="not valid CSV: ',' expected after '\"'"),
        StockImportRow(5, "D", 4, None, "overwrite", "expected"),
    ]


def test_a_record_over_two_lines_that_is_no_valid_row_is_read_again_from_its_second_line() -> None:
    # most likely a stray quote joined the lines: no count or code holds a line break
    data = stock_file([SHORT_HEADER, '"A","two', 'lines"', '"B","2"'])
    assert read_all(data) == [
        RowError(
            line=2,
            code="A",
            field="想定在庫数",
            reason="not an integer: 'two<U+000D><U+000A>lines'",
        ),
        RowError(
            line=3, code='lines"', field="想定在庫数", reason="missing: the line has only 1 field"
        ),
        StockImportRow(4, "B", 2, None, "overwrite", "expected"),
    ]


def test_unclosed_quote_reads_the_same_at_a_block_boundary() -> None:
    rows = [f'"C{number}","1"' for number in range(2, 4200)]
    for line in (2049, 2050, 4096):  # around the 2048-line decode blocks
        rows[line - 2] = f'"C{line}","1'
    errors = [
        item for item in read_all(stock_file([SHORT_HEADER, *rows])) if isinstance(item, RowError)
    ]
    assert [(error.line, "not closed" in error.reason) for error in errors] == [
        (2049, True),
        (2050, True),
        (4096, True),
    ]


PER_ROW_LINES = [
    HEADER,
    '"A","5","1","1","1"',
    '"A","7","","2","2"',
    '"B","3","","上書き","実在庫数"',
    '"C","-2","","追加","想定在庫数"',
    '"D","1","","3","1"',
    '"E","1","","1","0"',
    '"F","1","","",""',
    '"A","9","","2","1"',
    '"G","-1","","1","2"',
]


def test_per_row_mode_reads_mode_and_target_from_each_line() -> None:
    assert read_all(stock_file(PER_ROW_LINES), mode="per-row") == [
        StockImportRow(2, "A", 5, 1, "overwrite", "expected"),
        StockImportRow(3, "A", 7, None, "add", "actual"),
        StockImportRow(4, "B", 3, None, "overwrite", "actual"),
        StockImportRow(5, "C", -2, None, "add", "expected"),
        RowError(
            line=6,
            code="D",
            field="更新モード",
            reason="unknown value '3': use 1 or 上書き (overwrite), 2 or 追加 (add)",
        ),
        RowError(
            line=7,
            code="E",
            field="更新対象",
            reason="unknown value '0': use 1 or 想定在庫数 (expected), 2 or 実在庫数 (actual)",
        ),
        RowError(
            line=8,
            code="F",
            field="更新モード",
            reason="empty: use 1 or 上書き (overwrite), 2 or 追加 (add)",
        ),
        RowError(
            line=9,
            code="A",
            field="商品コード",
            reason="duplicate code in the file: an earlier line already updates its 想定在庫数",
        ),
        RowError(
            line=10,
            code="G",
            field="想定在庫数",
            reason=f"below 0: -1 ({NEGATIVE_HINT})",
        ),
    ]


def test_per_row_mode_needs_its_columns() -> None:
    (error,) = read_all(stock_file(["商品コード,想定在庫数", '"A","1"']), mode="per-row")
    assert isinstance(error, RowError)
    assert error.message().startswith("line 1 更新モード: column missing from the header")


def test_apply_row() -> None:
    add = StockImportRow(2, "A", -7, None, "add", "expected")
    assert apply_row(10, add) == 3
    assert apply_row(5, add) == "result below 0: 5 - 7 = -2"
    assert apply_row(5, StockImportRow(2, "A", 0, None, "overwrite", "actual")) == 0
    assert apply_row(999_999_999, StockImportRow(2, "A", 1, None, "add", "expected")) == (
        "result above 999999999: 999999999 + 1 = 1000000000"
    )


def test_zero_padding_match_names_the_existing_code() -> None:
    known = {"000123", "0045", "ABC"}
    assert zero_padding_match("123", known) == "000123"
    assert zero_padding_match("45", known.__contains__) == "0045"
    assert zero_padding_match("000123", known) is None  # already the full code
    assert zero_padding_match("99", known) is None
    assert zero_padding_match("BC", known) is None  # Excel only eats zeros of numbers
    assert unknown_sku_error(7, "123", known).message() == (
        "line 7 [123] 商品コード: unknown SKU; matches existing SKU 000123 only after "
        "zero-padding: Excel dropped leading zeros?"
    )
    assert unknown_sku_error(8, "777", known).message() == "line 8 [777] 商品コード: unknown SKU"


def test_splitting_at_every_byte_gives_the_same_rows() -> None:
    data = stock_file(STOCK_LINES)
    for cut in range(len(data) + 1):
        assert list(read_stock_csv(split_lines([data[:cut], data[cut:]]))) == EXPECTED_RESULTS


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(stock_file(STOCK_LINES)))))
def test_any_chunking_gives_the_same_rows(cuts: list[int]) -> None:
    data = stock_file(STOCK_LINES)
    bounds = [0, *sorted(cuts), len(data)]
    chunks = [data[start:end] for start, end in itertools.pairwise(bounds)]
    assert list(read_stock_csv(split_lines(chunks))) == EXPECTED_RESULTS


def test_file_without_final_line_break() -> None:
    data = stock_file([SHORT_HEADER, '"A","1"'])[:-2]
    expected = [StockImportRow(2, "A", 1, None, "overwrite", "expected")]
    assert read_all(data) == expected
    assert list(read_stock_csv(split_lines([data]))) == expected


def test_splitter_refuses_a_line_that_never_ends() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"a\r\nb") == [b"a\r"]
    with pytest.raises(LineTooLong, match="line 2 is longer than"):
        for _ in range(MAX_LINE_BYTES):
            splitter.feed(b"x")
    with pytest.raises(LineTooLong, match="line 3 is longer than"):
        LineSplitter().feed(b"a\nb\n" + b"x" * (MAX_LINE_BYTES + 1) + b"\n")


# Codes the download must carry unchanged: quotes, commas, spaces, cp932-only characters.
code_text = st.text(
    alphabet=st.sampled_from("AZaz09-_ .,\"'#髙①㈱～あア漢Ⅰ№"), min_size=1, max_size=64
).filter(lambda code: code_problem(code) is None)
quantity = st.integers(min_value=0, max_value=999_999_999)
stock_records = st.dictionaries(
    code_text, st.tuples(quantity, quantity, st.none() | quantity), max_size=40
)


@settings(max_examples=150, deadline=None)
@given(stock_records, st.sampled_from(["cp932", "utf-8"]))
def test_download_both_then_per_row_import_changes_nothing(
    stock: dict[str, tuple[int, int, int | None]], encoding: str
) -> None:
    records = [(code, *counts) for code, counts in stock.items()]
    data = b"".join(write_stock_csv(records, target="both", encoding=encoding))
    imported = list(read_stock_csv(io.BytesIO(data), mode="per-row", encoding=encoding))
    assert all(isinstance(row, StockImportRow) for row in imported)
    after: dict[str, list[int | None]] = {code: [None, None, None] for code in stock}
    for row in imported:
        assert isinstance(row, StockImportRow) and row.mode == "overwrite"
        expected, reserve, actual = stock[row.code]
        if row.target == "expected":
            assert apply_row(expected, row) == expected
            assert row.reserve == reserve
            after[row.code][:2] = [row.value, row.reserve]
        else:
            assert actual is not None and apply_row(actual, row) == actual
            assert row.reserve is None  # the reserve is set once, by the expected line
            after[row.code][2] = row.value
    assert {code: tuple(counts) for code, counts in after.items()} == stock


@settings(max_examples=100, deadline=None)
@given(stock_records)
def test_download_expected_then_overwrite_import_gives_identical_values(
    stock: dict[str, tuple[int, int, int | None]],
) -> None:
    records = [(code, *counts) for code, counts in stock.items()]
    data = b"".join(write_stock_csv(records))
    imported = list(read_stock_csv(split_lines([data])))
    assert imported == [
        StockImportRow(line, code, expected, reserve, "overwrite", "expected")
        for line, (code, expected, reserve, _) in enumerate(records, start=2)
    ]


def test_download_layout_is_quoted_crlf() -> None:
    records = [("000123", 10, 2, 8), ("髙-1", -3, 0, None)]
    assert b"".join(write_stock_csv(records, target="both")).decode("cp932") == (
        '"商品コード","想定在庫数","保留在庫数","更新モード","更新対象"\r\n'
        '"000123","10","2","1","1"\r\n'
        '"000123","8","","1","2"\r\n'
        '"髙-1","-3","0","1","1"\r\n'
    )
    utf8 = b"".join(write_stock_csv(records, encoding="utf-8"))
    assert (
        utf8
        == b"\xef\xbb\xbf"
        + (
            '"商品コード","想定在庫数","保留在庫数","更新モード","更新対象"\r\n'
            '"000123","10","2","1","1"\r\n'
            '"髙-1","-3","0","1","1"\r\n'
        ).encode()
    )


def test_download_streams_in_chunks() -> None:
    records = [(f"C{number}", number, 0, None) for number in range(10_000)]
    chunks = list(write_stock_csv(records))
    assert len(chunks) > 2
    assert b"".join(chunks).count(b"\r\n") == 10_001


@pytest.mark.parametrize(
    ("code", "detail"),
    [
        ("AB🍣", "character 🍣 (U+1F363) at position 3;"),
        ("A〜B", "character 〜 (U+301C) at position 2 (it would be read back as ～);"),
    ],
)
def test_download_refuses_a_code_cp932_cannot_carry(code: str, detail: str) -> None:
    records = [("OK", 1, 0, None), (code, 1, 0, None)]
    with pytest.raises(UnencodableCode) as raised:
        b"".join(write_stock_csv(records))
    assert str(raised.value) == (
        f"SKU {code} cannot be written in cp932: {detail} download with encoding utf-8"
    )
    assert code in b"".join(write_stock_csv(records, encoding="utf-8")).decode("utf-8-sig")


CATALOG_LINES = [
    "商品コード,商品名",
    '"000123","①番 ㈱髙橋商店 ～限定～"',
    '"A-1",""',
    '"A-2","名前\tタブ"',
    '"000123","again"',
    '"1.2E+5","x"',
    '"A-3"',
    ",",
    '"A-4","テスト"',
]


def test_catalog_reads_names_and_checks_codes() -> None:
    expected: list[CatalogRow | RowError] = [
        CatalogRow(2, "000123", "①番 ㈱髙橋商店 ～限定～"),
        CatalogRow(3, "A-1", ""),
        RowError(
            line=4, code="A-2", field="商品名", reason="contains the control character U+0009"
        ),
        RowError(
            line=5,
            code="000123",
            field="商品コード",
            reason="duplicate code in the file: an earlier line already has it",
        ),
        RowError(
            line=6,
            code="1.2E+5",
            field="商品コード",
            reason="looks like Excel turned the code into exponent form",
        ),
        RowError(line=7, code="A-3", field="商品名", reason="missing: the line has only 1 field"),
        CatalogRow(9, "A-4", "テスト"),
    ]
    assert list(read_catalog_csv(io.BytesIO(stock_file(CATALOG_LINES)))) == expected
    utf8 = b"\xef\xbb\xbf" + stock_file(CATALOG_LINES, "utf-8", "\n")
    assert list(read_catalog_csv(split_lines([utf8]), encoding="utf-8")) == expected


def test_catalog_needs_both_columns() -> None:
    (error,) = read_catalog_csv([b"\x8f\xa4\x95\x69\x83\x52\x81\x5b\x83\x68\r\n"])
    assert isinstance(error, RowError)
    assert error.message() == "line 1 商品名: column missing from the header (found 商品コード)"


def test_a_header_in_the_other_encoding_names_the_encoding_to_use() -> None:
    """UTF-8 read as cp932 may decode into other characters instead of failing (在庫数 does):
    the header then lacks its columns, and says the file is UTF-8."""
    misread = "在庫数".encode().decode("cp932")
    assert misread != "在庫数"
    assert "--encoding utf-8" in misread_header_hint([misread], ["在庫数"])
    assert misread_header_hint(["在庫"], ["在庫数"]) == ""
    assert misread_header_hint(["code"], ["quantity"]) == ""
    assert "--encoding cp932" in undecodable_hint("在庫".encode("cp932"), "utf-8")
    assert "--encoding utf-8" in undecodable_hint("商品コード".encode(), "cp932")
    assert undecodable_hint(b"\xff\xfe", "cp932") == ""
