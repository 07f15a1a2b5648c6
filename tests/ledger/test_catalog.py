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
