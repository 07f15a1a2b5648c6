"""bench/oversell.py and the 在庫変動ログ reader it replays with: a generated log read back in
both quoting styles and with CR-only line ends, bad rows as one-line errors, and the bench's
core on a tiny day and a tiny replay (zaiko's defaults oversell fewer units than TEMPOSTAR-like
settings; the ledger ends where the bench's truth does). No timing is asserted."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import pytest

from protocols.malls.base import RowError
from protocols.tempostar import STOCK_LOG_HEADER, StockLogRow, read_stock_log

sys.path.append(str(Path(__file__).resolve().parent.parent / "bench"))

import make_stock_log
import oversell

TINY_DAY = oversell.Params(seed=1, skus=60, orders=500, from_hour=19, hours=2)
HEADER = ",".join(STOCK_LOG_HEADER)


def pieces(data: bytes, size: int) -> list[bytes]:
    """The file as a reader gets it from a socket: cut anywhere, a CR LF pair included."""
    return [data[start : start + size] for start in range(0, len(data), size)]


def read(data: bytes, size: int = 1 << 16) -> list[StockLogRow | RowError]:
    return list(read_stock_log(pieces(data, size)))


@pytest.mark.parametrize("quoting", ["all", "minimal"])
@pytest.mark.parametrize("line_end", ["\r\n", "\r"])
def test_a_generated_log_reads_back_row_for_row(quoting: str, line_end: str) -> None:
    rows = make_stock_log.stock_log_rows(oversell.Params(seed=4, skus=40, orders=300))
    data = make_stock_log.encode_stock_log(rows, quoting=quoting, line_end=line_end)
    if quoting == "all":
        assert data.startswith('"更新日時","更新理由"'.encode("cp932"))
        assert b',,"0",' in data  # an empty 倉庫名 stands bare, the rest quoted
    else:
        assert data.startswith("更新日時,更新理由".encode("cp932"))
    parsed = read(data, size=7)
    assert all(isinstance(row, StockLogRow) for row in parsed), parsed[:3]
    assert [
        (row.line, f"{row.at:%Y/%m/%d %H:%M:%S}", row.reason, row.sku, row.before, row.after)
        for row in parsed
        if isinstance(row, StockLogRow)
    ] == [
        (line, fields[0], fields[1], fields[3], int(fields[11]), int(fields[12]))
        for line, fields in enumerate(rows, start=2)
    ]
    reasons = {row.reason for row in parsed if isinstance(row, StockLogRow)}
    assert reasons == {"受注取込", "在庫CSV取込", "WEB画面", "受注修正"}
    assert any(isinstance(row, StockLogRow) and row.after < 0 for row in parsed)  # oversold


def test_the_code_is_joined_when_empty_and_excel_s_shorter_times_are_read() -> None:
    data = (
        f"{HEADER}\r"
        '"2024/10/01 00:02:01","受注取込","7987035","","綿Tシャツ, 白","白","M","X11","Y14",,'
        '"0","1","-1","-2",\r'
        "2024/10/1 9:05,WEB画面,000123,000123,髙島屋①,,,,,,0,-1,4,5,yamada\r"
    ).encode("cp932")
    first, second = read(data)
    assert first == StockLogRow(
        line=2,
        at=datetime(2024, 10, 1, 0, 2, 1),
        reason="受注取込",
        sku="7987035X11Y14",
        before=1,
        after=-1,
        delta=-2,
    )
    assert isinstance(second, StockLogRow)
    assert (second.sku, f"{second.at:%H:%M:%S}", second.delta) == ("000123", "09:05:00", 5)


def test_a_bad_row_is_one_line_naming_its_line_and_field_and_the_rest_is_read() -> None:
    good = "2024/10/01 10:00:00,受注取込,A,A1,品,,,,,,0,3,2,-1,"
    data = "\r\n".join(
        [
            HEADER,
            good,  # 2
            "2024/10/01 10:00:01,受注取込,A,A1,品,,,,,,0,2,abc,-1,",  # 3: not an integer
            "2024/10/01 10:00:02,受注取込,A,A1,品,,,,,,0,2,1,-2,",  # 4: delta ≠ after − before
            "2024/13/01 10:00:03,受注取込,A,A1,品,,,,,,0,2,1,-1,",  # 5: no such month
            "2024/10/01 10:00:04,,A,A1,品,,,,,,0,2,1,-1,",  # 6: no reason
            "2024/10/01 10:00:05,受注取込,,,品,,,,,,0,2,1,-1,",  # 7: no code at all
            "2024/10/01 10:00:06,受注取込,A,A1,品,,,,,,0,2",  # 8: short
            good,  # 9
        ]
    ).encode("cp932")
    results = read(data)
    errors = {item.line: item for item in results if isinstance(item, RowError)}
    assert [item.line for item in results if isinstance(item, StockLogRow)] == [2, 9]
    assert errors[3].message() == "line 3 [A1] 変動後: 'abc' is not an integer"
    assert errors[4].field == "増減値" and "1 − 2 = -1" in errors[4].reason
    assert errors[5].field == "更新日時" and "'2024/13/01 10:00:03'" in errors[5].reason
    assert (errors[6].field, errors[6].reason) == ("更新理由", "empty")
    assert errors[7].field == "商品コード"
    assert "fields, the header has 15" in errors[8].reason
    assert all("\n" not in error.message() for error in errors.values())


def test_an_undecodable_byte_is_its_row_s_error() -> None:
    data = (
        f"{HEADER}\r\n2024/10/01 10:00:00,受注取込,A,A1,".encode("cp932")
        + b"\x82\xff"
        + ",,,,,,0,3,2,-1,\r\n".encode("cp932")
    )
    (error,) = read(data)
    assert isinstance(error, RowError) and error.line == 2
    assert "byte 0x82" in error.message() and "not valid cp932" in error.message()


def test_a_header_without_its_columns_is_one_error_for_line_1() -> None:
    (error,) = read("商品コード,想定在庫数\r\nA,1\r\n".encode("cp932"))
    assert isinstance(error, RowError) and error.line == 1
    assert "更新日時" in error.message()


def test_zaiko_defaults_oversell_fewer_units_than_tempostar_like_on_a_tiny_day() -> None:
    scenario = oversell.simulated_day(TINY_DAY)
    zaiko, no_floor, tempostar = oversell.compare(scenario, TINY_DAY)
    for outcome in (zaiko, no_floor, tempostar):
        assert outcome.orders + outcome.turned_away == TINY_DAY.orders  # the same buyers
        assert outcome.ledger_agrees  # every order taken, nothing moved twice
        assert outcome.oversold_units == sum(outcome.oversold_by_shop.values())
    assert zaiko.orders > TINY_DAY.orders // 2
    assert tempostar.oversold_units > zaiko.oversold_units
    printed = oversell.report(scenario, TINY_DAY, [zaiko, no_floor, tempostar])
    assert "target ≥ 10× fewer units" in printed and "units delivered" in printed


def test_a_generated_log_replays_in_both_settings(tmp_path: Path) -> None:
    params = oversell.Params(seed=2, skus=20, orders=120, from_hour=20, hours=1)
    rows = make_stock_log.stock_log_rows(params)
    log = tmp_path / "tempostar_stock_20261130.csv"
    log.write_bytes(make_stock_log.encode_stock_log(rows, quoting="minimal", line_end="\r"))
    read_back = oversell.read_logs([log], "cp932")
    assert read_back.errors == [] and read_back.lines == len(rows)
    scenario = oversell.replay_scenario(read_back.rows, params)
    sales = [event for event in scenario.events if isinstance(event, oversell.Sale)]
    assert len(sales) == sum(1 for fields in rows if fields[1] == "受注取込")
    outcomes = oversell.compare(scenario, params)
    assert all(outcome.ledger_agrees and outcome.orders for outcome in outcomes)
    printed = oversell.report(scenario, params, outcomes, rows=read_back.lines)
    assert "rows/s" in printed and "the log itself (TEMPOSTAR)" in printed
