"""Listings: mall items to SKUs, and each shop's quantity."""

from __future__ import annotations

from protocols import control
from tests.ledger.harness import LedgerHarness, shop_settings


def test_shop_quantities_use_rate_reserve_and_trickle(ledger: LedgerHarness) -> None:
    ledger.ok(
        control.ShopsApply(
            id=1,
            shops=(
                shop_settings(distribution_rate=50),
                shop_settings(id="t1", trickle={"enabled": True, "quantity": 10, "refill_at": 3}),
            ),
        ),
    )
    ledger.add("A", 100)
    ledger.ok(control.StockSet(id=1, code="A", field="reserve", value=20))
    assert {q.shop: q.target for q in ledger.detail("A", 0).shops} == {"r1": 40, "t1": 10}


def test_listings_refuse_unknown_skus_whole(ledger: LedgerHarness) -> None:
    ledger.ok(control.ShopsApply(id=1, shops=(shop_settings(),)))
    ledger.add("A")
    error = ledger.one(
        control.ListingsImport(
            id=1, shop="r1", rows=(control.ListingRow("A", "a"), control.ListingRow("B", "b"))
        ),
    )
    assert isinstance(error, control.Error) and error.details == ("row 2 [B]: unknown SKU",)
    assert ledger.db.execute("SELECT count(*) FROM listings").fetchone() == (0,)


def test_a_mall_item_is_one_sku_of_a_shop(ledger: LedgerHarness) -> None:
    ledger.ok(control.ShopsApply(id=1, shops=(shop_settings(),)))
    ledger.add("A")
    ledger.add("B")
    error = ledger.one(
        control.ListingsImport(
            id=1, shop="r1", rows=(control.ListingRow("A", "item"), control.ListingRow("B", "item"))
        ),
    )
    assert isinstance(error, control.Error) and "also given to A" in error.details[0]
    ledger.ok(control.ListingsImport(id=1, shop="r1", rows=(control.ListingRow("A", "item"),)))
    error = ledger.one(
        control.ListingsImport(id=1, shop="r1", rows=(control.ListingRow("B", "item"),))
    )
    assert isinstance(error, control.Error) and "listed as SKU A" in error.details[0]
    # moving the item to B in the same file as A gets another item is fine
    ledger.ok(
        control.ListingsImport(
            id=1,
            shop="r1",
            rows=(control.ListingRow("B", "item"), control.ListingRow("A", "other")),
        ),
    )
    rows = ledger.db.execute("SELECT sku, item_id FROM listings ORDER BY sku").fetchall()
    assert rows == [("A", "other"), ("B", "item")]
