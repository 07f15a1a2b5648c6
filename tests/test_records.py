"""CSV files read as records, not lines (base.csv_records, and the TEMPOSTAR reader's record
model): quoted fields over several lines, CRLF / LF / CR-only line ends, both quoting styles,
any chunking, first-line numbers, bounded records, undecodable bytes."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import tempostar
from protocols.malls.base import (
    MAX_RECORD_CHARS,
    LineSplitter,
    RowError,
    csv_records,
    split_lines,
)
from protocols.tempostar import StockImportRow, read_stock_csv

LINE_ENDS = {"crlf": "\r\n", "lf": "\n", "cr": "\r"}
# text a field may hold; line breaks are added per line-end style (see ``fields``)
PLAIN = st.text(alphabet=st.sampled_from('ab,"あ髙① <>='), max_size=6)


@st.composite
def fields(draw: st.DrawFn, style: str) -> str:
    """A field's text, with line breaks as a file of this style holds them: Excel on Windows
    writes a cell's line break as LF inside a CRLF file; a CR-only file has CR alone."""
    breaks = ["\r"] if style == "cr" else ["\n", "\r\n"]
    parts = draw(st.lists(PLAIN, min_size=1, max_size=3))
    joiners = draw(
        st.lists(st.sampled_from(breaks), min_size=len(parts) - 1, max_size=len(parts) - 1)
    )
    return "".join(itertools.chain.from_iterable(zip(parts, [*joiners, ""], strict=True)))


def encode_record(record: list[str], quote_all: bool) -> str:
    out = []
    for field in record:
        if quote_all or any(char in field for char in '",\r\n'):
            out.append('"' + field.replace('"', '""') + '"')
        else:
            out.append(field)
    return ",".join(out)


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, list[str]]], str]:
    """A cp932 file, the records a reader must find (with their first lines), its style."""
    style = draw(st.sampled_from(sorted(LINE_ENDS)))
    quote_all = draw(st.booleans())
    width = draw(st.integers(min_value=1, max_value=4))
    header = [f"h{n}" for n in range(width)]
    records = draw(st.lists(st.lists(fields(style), min_size=width, max_size=width), max_size=12))
    # a record of one empty field is a blank line when not quoted: no reader sees it
    records = [r for r in records if quote_all or r != [""]]
    end = LINE_ENDS[style]
    texts = [encode_record(r, quote_all) for r in [header, *records]]
    final = draw(st.booleans())
    text = end.join(texts) + (end if final else "")
    expected = []
    line = 1
    for record, encoded in zip([header, *records], texts, strict=True):
        # in a CR-only file a CR inside a field is a line break like any other; the
        # reader gives it back as LF, the line break csv text is read with
        shown = [f.replace("\r", "\n") for f in record] if style == "cr" else record
        expected.append((line, shown))
        line += encoded.count("\r" if style == "cr" else "\n") + 1
    return text.encode("cp932"), expected, style


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cut % (len(data) + 1) for cut in cuts), len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds)]


@settings(max_examples=300, deadline=None)
@given(csv_files(), st.lists(st.integers(min_value=0), max_size=8))
def test_records_and_first_lines_match_the_reference_in_any_chunking(
    file: tuple[bytes, list[tuple[int, list[str]]], str], cuts: list[int]
) -> None:
    data, expected, _ = file
    assert list(csv_records(chunked(data, cuts))) == expected


@contextmanager
def block_lines(count: int) -> Iterator[None]:
    """TEMPOSTAR files are decoded in blocks of lines: small blocks put record boundaries
    and block boundaries everywhere."""
    saved = tempostar._BLOCK_LINES
    tempostar._BLOCK_LINES = count  # type: ignore[misc]
    try:
        yield
    finally:
        tempostar._BLOCK_LINES = saved  # type: ignore[misc]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(LINE_ENDS)),
    st.booleans(),
    st.data(),
    st.lists(st.integers(min_value=0), max_size=8),
    st.integers(min_value=1, max_value=5),
)
def test_tempostar_rows_keep_their_first_lines_across_blocks_and_chunks(
    style: str, quote_all: bool, data: st.DataObject, cuts: list[int], block: int
) -> None:
    """A memo column may hold line breaks and quotes; every row is read with the number of
    its first line, whatever the chunks and however records straddle decode blocks."""
    memos = data.draw(st.lists(fields(style), max_size=10))
    end = LINE_ENDS[style]
    texts = [encode_record(["商品コード", "想定在庫数", "メモ"], quote_all)]
    texts += [encode_record([f"C{n}", str(n), memo], quote_all) for n, memo in enumerate(memos)]
    expected = []
    line = 2
    for n, text in enumerate(texts[1:]):
        expected.append(StockImportRow(line, f"C{n}", n, None, "overwrite", "expected"))
        line += text.count("\r" if style == "cr" else "\n") + 1
    raw = (end.join(texts) + end).encode("cp932")
    with block_lines(block):
        assert list(read_stock_csv(split_lines(chunked(raw, cuts)))) == expected


def test_cr_only_file_without_final_line_end() -> None:
    data = 'code,name\r"A","two\rlines"\rB,\r"C",""'.encode("cp932")
    assert list(csv_records([data])) == [
        (1, ["code", "name"]),
        (2, ["A", "two\nlines"]),
        (4, ["B", ""]),
        (5, ["C", ""]),
    ]


@pytest.mark.parametrize("cut", range(1, 12))
def test_a_crlf_cut_between_chunks_is_one_line_break(cut: int) -> None:
    data = b'a,b\r\n"x\r\ny",2\r\nz,3\r\n'
    assert list(csv_records([data[:cut], data[cut:]])) == [
        (1, ["a", "b"]),
        (2, ["x\r\ny", "2"]),
        (4, ["z", "3"]),
    ]


def test_the_first_line_break_decides_and_a_cr_at_a_chunk_end_waits() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"a,b\r") == []  # LF may follow
    assert splitter.feed(b"c,d\re") == [b"a,b", b"c,d"]  # it did not: CR alone
    assert splitter.finish() == [b"e"]
    splitter = LineSplitter()
    assert splitter.feed(b"a,b\r") == []
    assert splitter.feed(b"\nc\rd\n") == [b"a,b\r", b"c\rd"]  # CRLF: a lone CR is data


def test_quote_all_with_empty_fields_and_doubled_quotes() -> None:
    data = '"商品","",""\r\n"say ""hi""","","x"\r\n'.encode("cp932")
    assert list(csv_records([data])) == [(1, ["商品", "", ""]), (2, ['say "hi"', "", "x"])]


def test_an_unclosed_quote_is_an_error_on_its_line_and_the_rest_is_read_again() -> None:
    data = b'a,b\n"x,1\ny,2\nz,3\n'
    assert list(csv_records([data])) == [
        (1, ["a", "b"]),
        (
            2,
            RowError(
                line=2,
                reason="a quoted field opened on this line is not closed by the end of the file",
            ),
        ),
        (3, ["y", "2"]),
        (4, ["z", "3"]),
    ]


def test_a_stray_quote_closed_on_a_later_line_is_an_error_and_the_lines_are_read_again() -> None:
    data = b'a,b\n"x,1\n"y",2\nz,3\n'
    assert list(csv_records([data])) == [
        (1, ["a", "b"]),
        (
            2,
            RowError(
                line=2,
                reason="a quoted field opened on this line is not closed before line 3 "
                "(',' expected after '\"')",
            ),
        ),
        (3, ["y", "2"]),
        (4, ["z", "3"]),
    ]


def test_a_record_longer_than_the_bound_is_refused_and_read_again() -> None:
    # fields over several lines, each shorter than the csv module's field limit
    field = b'"' + (b"x" * 50_000 + b"\n") * 2 + b'"'
    count = MAX_RECORD_CHARS // len(field) + 1
    data = b"a,b\n" + b",".join([field] * count) + b"\nz,3\n"
    lines = count * 2
    results = list(csv_records([data]))
    assert results[1] == (
        2,
        RowError(
            line=2,
            reason=f"the record starting on this line is longer than {MAX_RECORD_CHARS:,} "
            "characters: is a closing quote missing?",
        ),
    )
    assert results[-1] == (lines + 3, ["z", "3"])


def test_a_field_longer_than_the_csv_limit_says_so() -> None:
    data = b'a\n"' + (b"x" * 60_000 + b"\n") * 3 + b'"\nb\n'
    results = list(csv_records([data]))
    assert results[1] == (
        2,
        RowError(
            line=2, reason="a field is longer than 131,072 characters: is a closing quote missing?"
        ),
    )
    assert results[-1] == (6, ["b"])


def test_an_undecodable_byte_is_its_records_error_naming_the_line() -> None:
    data = b'a,b\r\n"x\r\n\x82\xff",1\r\n"\x82",2\r\nz,3\r\n'
    assert list(csv_records([data])) == [
        (1, ["a", "b"]),
        (2, RowError(line=2, reason="byte 0x82 at line 3, column 1 is not valid cp932")),
        (4, RowError(line=4, reason="byte 0x82 at column 2 is not valid cp932")),
        (5, ["z", "3"]),
    ]


def test_tempostar_undecodable_byte_inside_a_record_over_several_lines() -> None:
    data = (
        "商品コード,想定在庫数,メモ\r\n".encode("cp932") + b'A,1,"one\r\n\x82\xff two"\r\nB,2,\r\n'
    )
    assert list(read_stock_csv([data])) == [
        RowError(line=2, reason="byte 0x82 at line 3, column 1 is not valid cp932"),
        StockImportRow(4, "B", 2, None, "overwrite", "expected"),
    ]


def test_tempostar_cr_only_file_given_as_a_file_object_is_split_by_its_own_line_break() -> None:
    import io

    data = "商品コード,想定在庫数\rA,1\rB,2".encode("cp932")
    assert list(read_stock_csv(io.BytesIO(data))) == [
        StockImportRow(2, "A", 1, None, "overwrite", "expected"),
        StockImportRow(3, "B", 2, None, "overwrite", "expected"),
    ]
