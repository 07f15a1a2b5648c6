"""SKUs: codes and registration."""

from __future__ import annotations

import io

from protocols import control
from protocols.malls.base import RowError
from protocols.sku import code_problem
from protocols.tempostar import read_catalog_csv, read_stock_csv
from tests.ledger.harness import LedgerHarness


def test_sku_codes_are_validated(ledger: LedgerHarness) -> None:
    for bad in ("", "x" * 65, "A\tB", "A\nB"):
        error = ledger.one(control.SkuAdd(id=1, code=bad))
        assert (
            isinstance(error, control.Error) and error.code == "invalid" and error.field == "code"
        )
    ledger.ok(control.SkuAdd(id=1, code="x" * 64))
    error = ledger.one(control.SkuAdd(id=1, code="x" * 64))
    assert isinstance(error, control.Error) and error.code == "conflict"


def test_one_code_rule_for_sku_add_and_every_file(ledger: LedgerHarness) -> None:
    """``sku add`` and the file readers refuse the same codes for the same reason."""
    header = "商品コード,想定在庫数\r\n".encode("cp932")
    for bad in (" LEAD", "LEAD ", "4.97171E+12", "A\tB"):
        error = ledger.one(control.SkuAdd(id=1, code=bad))
        assert isinstance(error, control.Error) and error.field == "code", bad
        reason = code_problem(bad)
        assert reason is not None and reason in error.message
        line = header + f'"{bad}",1\r\n'.encode("cp932")
        (row,) = read_stock_csv(io.BytesIO(line))
        assert isinstance(row, RowError) and row.reason == reason, (bad, row)
        (row,) = read_catalog_csv(
            io.BytesIO("商品コード,商品名\r\n".encode() + line[len(header) :]), encoding="utf-8"
        )
        assert isinstance(row, RowError) and row.reason == reason, (bad, row)
    ledger.ok(control.SkuAdd(id=1, code="LEAD"))
    ledger.ok(control.SkuAdd(id=1, code="a b"))  # a space inside a code is kept


def test_sku_list_filters_by_code_prefix_and_name(ledger: LedgerHarness) -> None:
    """``name`` finds a name's part anywhere in it, with the prefix, page by page; LIKE's own
    wildcards in either filter are plain characters."""
    for code, name in (
        ("A-1", "靴下 赤"),
        ("A-2", "Tシャツ 赤"),
        ("A-3", "靴下 青"),
        ("B-1", "靴下 赤"),
        ("B-2", "50%_off"),
    ):
        ledger.ok(control.SkuAdd(id=1, code=code, name=name))

    def codes(name: str, prefix: str = "") -> list[str]:
        reply = ledger.ok(control.SkuList(id=1, name=name, prefix=prefix))
        return [s.code for s in reply.skus]

    assert codes(name="赤") == ["A-1", "A-2", "B-1"]
    assert codes(name="靴下", prefix="A-") == ["A-1", "A-3"]
    assert codes(name="シャツ") == ["A-2"]
    assert codes(name="t") == ["A-2"]  # ASCII letters in either case
    assert codes(name="%") == ["B-2"] and codes(name="_o") == ["B-2"]
    assert codes(name="x%") == []
    first = ledger.ok(control.SkuList(id=1, name="赤", limit=2))
    assert [s.code for s in first.skus] == ["A-1", "A-2"] and first.next_after == "A-2"
    rest = ledger.ok(control.SkuList(id=1, name="赤", after=first.next_after, limit=2))
    assert [s.code for s in rest.skus] == ["B-1"] and rest.next_after is None
    # codes are case-sensitive, and a prefix is a range of them (no wildcard, no case folding)
    ledger.ok(control.SkuAdd(id=1, code="a-9"))
    assert codes(name="", prefix="a") == ["a-9"]
    assert codes(name="", prefix="A-") == ["A-1", "A-2", "A-3"]
    assert codes(name="", prefix="B-2") == ["B-2"] and codes(name="", prefix="B-2x") == []
    page = ledger.ok(control.SkuList(id=1, prefix="A-", after="A-1"))
    assert [s.code for s in page.skus] == ["A-2", "A-3"]
