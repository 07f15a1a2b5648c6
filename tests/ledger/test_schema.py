"""Migrations keep what older versions stored."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from daemon.ledger import shops
from daemon.ledger.engine import Engine
from daemon.ledger.schema import MIGRATIONS, SchemaError, migrate, rewrite_shop_settings
from daemon.ledger.tx import Tx
from protocols import control
from tests.ledger.harness import LedgerHarness, clock, shop_settings


def test_journal_of_an_older_database_is_kept_whole_by_the_migration(tmp_path: Path) -> None:
    """Schema 3 kept time, reason, reference and actor on every journal row; schema 4 keeps
    them once per command. Every row reads back the same through the ``journal`` view."""
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:3], start=1):
        assert isinstance(script, str)
        for statement in script.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version={number}")
    db.execute("INSERT INTO skus(code, created_at) VALUES ('A', 't0'), ('B', 't0')")
    db.execute("INSERT INTO stock(sku, expected, actual) VALUES ('A', 3, 0), ('B', 5, 2)")
    rows = [
        (1, "t1", "A", "expected", 5, 0, 5, "import", "job:1", "cli"),
        (2, "t1", "B", "expected", 5, 0, 5, "import", "job:1", "cli"),
        (3, "t2", "A", "expected", -2, 5, 3, "order", "s1:o1:1", "shop:s1"),
        (4, "t3", "B", "actual", 2, 0, 2, "manual", "", "user:x"),
    ]
    db.executemany("INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.close()
    ledger = LedgerHarness(path)
    assert ledger.db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    assert ledger.db.execute("SELECT * FROM journal ORDER BY id").fetchall() == rows
    assert ledger.db.execute("SELECT count(*) FROM journal_contexts").fetchone() == (3,)
    assert ledger.violations() == []
    assert [j.id for j in ledger.detail("A", 5).journal] == [3, 1]
    ledger.add("C", 4)
    assert [j.id for j in ledger.detail("C", 5).journal] == [5]


def test_stored_settings_of_a_renamed_or_removed_setting_are_rewritten(tmp_path: Path) -> None:
    """A later release renames ``send_interval_min`` and drops ``urgent_push``: its migration
    rewrites the stored settings, journaled, so every shop still reads; without it the
    daemon refuses to start with one line naming the shop, instead of failing later."""
    path = tmp_path / "z.sqlite3"
    ledger = LedgerHarness(path)
    ledger.ok(control.ShopsApply(id=1, shops=(shop_settings(send_interval_min=15),)))
    ledger.close()
    # what an older release stored: its names for these settings
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(
        "UPDATE shops SET settings = json_set(json_remove(settings, '$.send_interval_min'), "
        "'$.interval_minutes', 15, '$.legacy_flag', 1)"
    )
    with pytest.raises(SchemaError, match=r"shop r1: .*interval_minutes"):
        Engine(path, clock)
    later = (
        *MIGRATIONS,
        rewrite_shop_settings(
            renamed={"interval_minutes": "send_interval_min"}, removed=("legacy_flag",)
        ),
    )
    migrate(db, path, later)
    assert shops.get(Tx(db, clock, "test"), "r1").send_interval_min == 15
    journal = db.execute(
        "SELECT setting, before, after, actor FROM shop_journal WHERE actor = 'migration' "
        "ORDER BY id"
    ).fetchall()
    assert journal == [
        ("interval_minutes", "15", None, "migration"),
        ("send_interval_min", None, "15", "migration"),
        ("legacy_flag", "1", None, "migration"),
    ]
    db.close()


def test_listings_of_an_older_database_get_the_item_number_column_and_one_variation_form(
    tmp_path: Path,
) -> None:
    """Schema 6: a listing keeps the mall's other identifier of its item, and a variation is
    stored without trailing empty axes (so a listings CSV's ("s",) is a file's ("s", ""))."""
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:5], start=1):
        assert isinstance(script, str)
        for statement in script.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version={number}")
    db.execute(
        "INSERT INTO shops(id, mall, settings, created_at, updated_at) "
        "VALUES ('r1', 'rakuten', '{\"id\": \"r1\", \"mall\": \"rakuten\"}', 't0', 't0')"
    )
    db.execute("INSERT INTO skus(code, created_at) VALUES ('A', 't0'), ('B', 't0')")
    db.execute(
        "INSERT INTO listings(shop, sku, item_id, variation) VALUES "
        "('r1', 'A', 'shirt', '[\"s\",\"\"]'), ('r1', 'B', 'bag', '[\"\",\"\"]')"
    )
    db.close()
    ledger = LedgerHarness(path)
    assert ledger.db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    assert ledger.db.execute(
        "SELECT sku, item_id, variation, alt_item_id FROM listings ORDER BY sku"
    ).fetchall() == [("A", "shirt", '["s"]', ""), ("B", "bag", "[]", "")]
    ledger.close()


def test_an_older_database_s_targets_get_the_floor(tmp_path: Path) -> None:
    """The migration that brings the floor marks every shop: a target stored before it (a
    file shop shown its SKU's last unit) is computed again, not kept until the SKU moves."""
    path = tmp_path / "old.sqlite3"
    ledger = LedgerHarness(path)
    ledger.ok(
        control.ShopsApply(
            id=1,
            shops=(
                shop_settings(
                    id="y1", mall="yahoo", transport="ftp", ftp_url="ftps://u@127.0.0.1/"
                ),
            ),
        )
    )
    ledger.add("A", 1)
    assert ledger.db.execute("SELECT target FROM outbox").fetchall() == [(0,)]
    # as the release before the floor left it: its target, no pace table, one migration less
    ledger.db.execute("UPDATE outbox SET target = 1")
    ledger.db.execute("DROP TABLE recent_sales")
    ledger.db.execute(f"PRAGMA user_version={len(MIGRATIONS) - 1}")
    ledger.engine.close()
    ledger = LedgerHarness(path)
    ledger.ok(control.GetStatus(id=1))  # any batch computes what the migration marked
    assert ledger.db.execute("SELECT target FROM outbox").fetchall() == [(0,)]
