"""Read-only snapshots beside the ledger's connection."""

from __future__ import annotations

from pathlib import Path

from daemon.ledger.snapshots import snapshot, stock_records
from protocols import control
from tests.ledger.harness import LedgerHarness


def test_a_snapshot_reads_a_database_whose_path_has_uri_characters(tmp_path: Path) -> None:
    folder = tmp_path / "state #1 ?50%"
    folder.mkdir()
    ledger = LedgerHarness(folder / "z.sqlite3")
    ledger.add("A", 3)
    ledger.ok(control.StockSet(id=1, code="A", field="reserve", value=1))
    with snapshot(folder / "z.sqlite3") as db:
        assert list(stock_records(db)) == [("A", 3, 1, None)]
    ledger.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state #1 ?50%"]
