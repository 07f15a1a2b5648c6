"""Batches: one transaction, a savepoint per command."""

from __future__ import annotations

from protocols import control
from tests.ledger.harness import LedgerHarness


def test_refused_command_leaves_nothing_and_others_in_batch_commit(ledger: LedgerHarness) -> None:
    ledger.add("A", 1)
    results = ledger.run(
        control.StockAdd(id=1, code="A", field="expected", delta=4),
        control.StockAdd(id=2, code="A", field="expected", delta=-100),
        control.StockAdd(id=3, code="NOPE", field="expected", delta=1),
        control.StockAdd(id=4, code="A", field="expected", delta=1),
    )
    assert [type(r).__name__ for r in results] == ["StockReply", "Error", "Error", "StockReply"]
    assert ledger.expected("A") == 6
    assert ledger.violations() == []
