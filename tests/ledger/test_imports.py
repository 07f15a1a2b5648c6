"""A file applied batch by batch inside one transaction, on a real SQLite file.

The daemon's batches hold 20,000 rows, so its tests see one batch per file; here the same
code (``ParsedFile`` feeding ``daemon.ledger.imports``) runs with batches of three rows, so
that what crosses a batch boundary is tested: line numbers, duplicates, dry-run notes, the
journal chain, and an import refused or failing after some batches were written.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from daemon.commands import ApplyImport, CreateJob
from daemon.stockfiles import ParsedFile
from protocols import control
from tests.ledger.harness import LedgerHarness

HEADER = "商品コード,想定在庫数,保留在庫数,更新モード,更新対象\r\n"


@pytest.fixture
def ledger(ledger: LedgerHarness) -> LedgerHarness:
    """The ledger with SKUs S0 … S7."""
    for code in ("S0", "S1", "S2", "S3", "S4", "S5", "S6", "S7"):
        ledger.add(code)
    return ledger


def apply(ledger: LedgerHarness, tmp_path: Path, text: str, **options: object) -> control.Job:
    result = apply_or_refuse(ledger, tmp_path, text, **options)
    assert isinstance(result, control.Job), result
    return result


def apply_or_refuse(
    ledger: LedgerHarness, tmp_path: Path, text: str, **options: object
) -> control.Job | control.Error:
    (job,), _ = ledger.batch([(CreateJob(kind="import"), "test")])
    assert isinstance(job, control.Job)
    spool = tmp_path / f"job-{job.id}.upload"
    spool.write_bytes(text.encode("cp932"))
    start = control.ImportStart(id=0, file_name="f.csv", **options)  # type: ignore[arg-type]
    source = ParsedFile(spool, start, batch_rows=3)
    (result,), _ = ledger.batch([(ApplyImport(job=job.id, start=start, source=source), "cli")])
    assert not spool.exists()
    assert isinstance(result, control.Job | control.Error)
    return result


def levels(ledger: LedgerHarness, field: str = "expected") -> list[int]:
    return [getattr(ledger.level(f"S{n}"), field) for n in range(8)]


def test_uniform_batches_keep_line_numbers_values_and_the_journal_chain(
    ledger: LedgerHarness, tmp_path: Path
) -> None:
    rows = "".join(f"S{n},{n + 10},,,\r\n" for n in range(8))
    # line 5 is bad: the batch around it is not uniform, the ones after it are again
    text = HEADER + rows.replace("S3,13", "S3,x").replace("S6,16", "NOPE,16")
    job = apply(ledger, tmp_path, text)
    assert (job.result, job.count, job.success, job.failure) == ("ok", 8, 6, 2)
    assert job.messages == (
        "line 5 [S3] 想定在庫数: not an integer: 'x'",
        "line 8 [NOPE] 商品コード: unknown SKU",
    )
    assert levels(ledger) == [10, 11, 12, 0, 14, 15, 0, 17]
    job = apply(ledger, tmp_path, HEADER + rows, mode="add")
    assert job.success == 8
    assert levels(ledger) == [20, 22, 24, 13, 28, 30, 16, 34]
    (order,), _ = ledger.batch(
        [(control.StockAdd(id=0, code="S1", field="expected", delta=-2), "user:x")]
    )
    assert not isinstance(order, control.Error)
    history = ledger.detail("S1", 10).journal
    assert [(j.reason, j.before, j.after) for j in history] == [
        ("manual", 22, 20),
        ("import", 11, 22),
        ("import", 0, 11),
    ]
    assert [j.id for j in ledger.detail("S1", 2).journal] == [j.id for j in history[:2]]
    assert ledger.violations() == []


def test_an_unchanged_value_still_registers_the_stock(
    ledger: LedgerHarness, tmp_path: Path
) -> None:
    assert not ledger.level("S0").registered
    job = apply(ledger, tmp_path, HEADER + "S0,0,,,\r\nS1,4,,,\r\n")
    assert job.success == 2
    assert ledger.level("S0").registered and ledger.level("S1").registered
    assert [j.after for j in ledger.detail("S0", 5).journal] == []


def test_per_row_counts_of_one_sku_in_one_batch_chain_in_order(
    ledger: LedgerHarness, tmp_path: Path
) -> None:
    text = (
        HEADER
        + "S0,5,2,1,1\r\n"  # 2: expected 5, reserve 2
        + "S0,3,,1,2\r\n"  # 3: actual 3, same batch
        + "S1,1,,2,1\r\n"  # 4
        + "S0,4,7,2,2\r\n"  # 5: actual again: duplicate in the file (parser)
        + "S1,2,1,1,2\r\n"  # 6
        + "S1,9,4,1,1\r\n"  # 7: S1 expected again: duplicate; its reserve too
    )
    job = apply(ledger, tmp_path, text, mode="per-row")
    assert (job.success, job.failure) == (4, 2)
    assert [m.split(":")[0] for m in job.messages] == [
        "line 5 [S0] 商品コード",
        "line 7 [S1] 商品コード",
    ]
    s0, s1 = ledger.level("S0"), ledger.level("S1")
    assert (s0.expected, s0.actual, s0.reserve) == (5, 3, 2)
    assert (s1.expected, s1.actual, s1.reserve) == (1, 2, 1)
    assert ledger.violations() == []


def test_a_reserve_set_twice_across_batches_fails_the_later_line(
    ledger: LedgerHarness, tmp_path: Path
) -> None:
    text = HEADER + "S0,5,2,1,1\r\nS1,1,,1,1\r\nS2,1,,1,1\r\nS0,3,4,1,2\r\n"
    job = apply(ledger, tmp_path, text, mode="per-row")
    assert job.messages == ("line 5 [S0]: duplicate code: line 2 already updates its reserve",)
    assert (ledger.level("S0").reserve, ledger.level("S0").actual) == (2, 0)
    assert ledger.violations() == []


def test_dry_run_notes_follow_the_file_across_batches(
    ledger: LedgerHarness, tmp_path: Path
) -> None:
    text = HEADER + "".join(f"S{n},{n + 1},,,\r\n" for n in range(7)).replace("S4,5", "S4,y")
    job = apply(ledger, tmp_path, text, dry_run=True)
    assert (job.result, job.success, job.failure) == ("ok", 6, 1)
    assert job.messages[1:] == tuple(
        f"line {n + 2} [S{n}] expected 0 → {n + 1}" for n in range(7) if n != 4
    )
    assert levels(ledger) == [0] * 8
    assert ledger.db.execute("SELECT count(*) FROM journal").fetchone() == (0,)


def test_refused_after_batches_were_written_leaves_nothing(
    ledger: LedgerHarness, tmp_path: Path
) -> None:
    text = HEADER + "".join(f"S{n},{n + 1},,,\r\n" for n in range(7)) + "NOPE,1,,,\r\n"
    job = apply(ledger, tmp_path, text, all_or_nothing=True)
    assert (job.result, job.success, job.failure) == ("failed", 0, 1)
    assert levels(ledger) == [0] * 8
    assert ledger.db.execute("SELECT count(*) FROM journal").fetchone() == (0,)


def test_a_file_that_breaks_off_applies_nothing(ledger: LedgerHarness, tmp_path: Path) -> None:
    text = HEADER + "".join(f"S{n},{n + 1},,,\r\n" for n in range(7)) + "S7," + "9" * 140_000
    job = apply(ledger, tmp_path, text)
    assert job.result == "failed" and "longer than" in job.messages[0]
    assert levels(ledger) == [0] * 8


def test_a_database_failure_mid_file_stops_the_parser_and_applies_nothing(
    ledger: LedgerHarness, tmp_path: Path
) -> None:
    """The apply stops at batch 2 of many while the parser waits on the full queue: the
    parser thread ends, the spool is removed, nothing is applied."""
    ledger.db.execute(
        "CREATE TRIGGER refuse_s4 BEFORE UPDATE OF expected ON stock WHEN NEW.sku = 'S4' "
        "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
    )
    rows = "".join(f"S{n},{n + 1},,,\r\n" for n in range(8))
    threads = threading.active_count()
    refused = apply_or_refuse(ledger, tmp_path, HEADER + rows + rows.replace("S", "T") * 50)
    assert isinstance(refused, control.Error) and "disk says no" in refused.message
    assert threading.active_count() == threads
    assert levels(ledger) == [0] * 8


def test_a_tempostar_file_with_a_shop_imports(ledger: LedgerHarness, tmp_path: Path) -> None:
    """--shop on a tempostar file: rows keep their line numbers for the duplicate check."""
    (shops,), _ = ledger.batch(
        [(control.ShopsApply(id=0, shops=(control.ShopSettings(id="r1", mall="rakuten"),)), "t")]
    )
    assert not isinstance(shops, control.Error), shops
    job = apply(
        ledger, tmp_path, HEADER + "S0,5,,,\r\nS1,6,,,\r\nS2,7,,,\r\nS3,8,,,\r\n", shop="r1"
    )
    assert (job.result, job.success, job.failure) == ("ok", 4, 0)
    assert levels(ledger)[:4] == [5, 6, 7, 8]
    assert ledger.violations() == []


def test_an_import_for_an_unknown_shop_is_refused_before_the_upload(ledger: LedgerHarness) -> None:
    (refused,), _ = ledger.batch([(CreateJob(kind="import", shop="nosuch"), "test")])
    assert isinstance(refused, control.Error) and refused.code == "not_found"


def test_a_sku_with_a_stock_journal_does_not_become_a_set(ledger: LedgerHarness) -> None:
    """Its stock row, the head of its journal chain, would go: ``sku show`` would lose it."""
    for delta in (1, -1):
        (moved,), _ = ledger.batch(
            [(control.StockAdd(id=0, code="S0", field="actual", delta=delta), "t")]
        )
        assert not isinstance(moved, control.Error), moved
    (refused,), _ = ledger.batch(
        [(control.SetAdd(id=0, parent="S0", children=(control.SetChild(code="S1", qty=1),)), "t")]
    )
    assert isinstance(refused, control.Error) and "stock journal" in refused.message
    assert len(ledger.detail("S0", 5).journal) == 2


def test_allow_negative_takes_oversold_counts_with_an_oversell_each(
    ledger: LedgerHarness, tmp_path: Path
) -> None:
    """A TEMPOSTAR download's oversold items, across batches of 3 rows, uniform and not:
    journaled as import, an oversell row and event for each SKU that ends below 0 (not for
    one set to the negative count it already has); 実在庫数 and 保留在庫数 never go below 0."""
    text = HEADER + "S0,-2,,,\r\nS1,4,,,\r\nS2,-1,,,\r\nS3,-5,1,,\r\n"
    refused = apply(ledger, tmp_path, text)
    assert (refused.success, refused.failure) == (1, 3)
    assert all("--allow-negative" in str(message) for message in refused.messages)
    (job,), _ = ledger.batch([(CreateJob(kind="import"), "test")])
    assert isinstance(job, control.Job)
    spool = tmp_path / "oversold.upload"
    spool.write_bytes(text.encode("cp932"))
    start = control.ImportStart(id=0, file_name="f.csv", allow_negative=True)
    source = ParsedFile(spool, start, batch_rows=3)
    (result,), events = ledger.batch([(ApplyImport(job=job.id, start=start, source=source), "cli")])
    assert isinstance(result, control.Job) and (result.success, result.failure) == (4, 0)
    assert levels(ledger)[:4] == [-2, 4, -1, -5]
    assert [(e.sku, e.expected, e.ref) for e in events if isinstance(e, control.Oversell)] == [
        ("S0", -2, f"job:{job.id}"),
        ("S2", -1, f"job:{job.id}"),
        ("S3", -5, f"job:{job.id}"),
    ]
    assert ledger.detail("S0").journal[0].reason == "import"
    assert ledger.violations() == []
    again = apply(ledger, tmp_path, text, allow_negative=True)
    assert again.success == 4
    assert ledger.db.execute("SELECT count(*) FROM oversells").fetchone() == (3,)
    below = apply(
        ledger, tmp_path, HEADER + "S4,-1,,,\r\nS5,1,-1,,\r\n", allow_negative=True, target="actual"
    )
    assert (below.success, below.failure) == (0, 2)
