"""Listings: mall items to SKUs, and each shop's quantity."""

from __future__ import annotations

from daemon.ledger import listings
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


def listed(
    ledger: LedgerHarness, shop: str, item: str, *variation: str, choices: tuple[str, ...] = ()
) -> str | None:
    return ledger.engine.read(listings.listed_sku, shop, item, variation, choices)


def test_listed_sku_finds_the_item_by_either_identifier(ledger: LedgerHarness) -> None:
    """Rakuten mails print 商品番号, which may differ from 商品管理番号 (here in case and
    wholly); RMS keeps 商品管理番号 in lower case."""
    ledger.ok(
        control.ShopsApply(id=1, shops=(shop_settings(), shop_settings(id="y1", mall="yahoo")))
    )
    for code in ("mug-01", "pen-9", "cup-2"):
        ledger.add(code)
    rows = (
        control.ListingRow("mug-01", "mug-01", alt_item_id="MUG-01"),
        control.ListingRow("pen-9", "pen-9", alt_item_id="P9-SPECIAL"),
        control.ListingRow("cup-2", "cup-2"),
    )
    ledger.ok(control.ListingsImport(id=1, shop="r1", rows=rows))
    assert listed(ledger, "r1", "MUG-01") == "mug-01"
    assert listed(ledger, "r1", "mug-01") == "mug-01"
    assert listed(ledger, "r1", "P9-SPECIAL") == "pen-9"
    assert listed(ledger, "r1", "CUP-2") == "cup-2"  # the lower-case 商品管理番号
    assert listed(ledger, "r1", "nothing") is None
    ledger.ok(control.ListingsImport(id=1, shop="y1", rows=(control.ListingRow("cup-2", "cup-2"),)))
    assert listed(ledger, "y1", "CUP-2") is None  # Yahoo codes are not case-folded


def test_listed_sku_tells_choices_without_subcode_apart_by_their_printed_names(
    ledger: LedgerHarness,
) -> None:
    ledger.ok(control.ShopsApply(id=1, shops=(shop_settings(),)))
    rows = (
        control.ListingRow("t-red", "tshirt", ("choice:レッド",)),
        control.ListingRow("t-blue", "tshirt", ("choice:ブルー",)),
        control.ListingRow("x-s-red", "x", ("s", "choice:レッド")),
        control.ListingRow("x-s-blue", "x", ("s", "choice:ブルー")),
        control.ListingRow("cap-bk", "cap", ("-bk",)),
    )
    for row in rows:
        ledger.add(row.sku)
    ledger.ok(control.ListingsImport(id=1, shop="r1", rows=rows))
    # a mail prints (商品番号 + the 子番号 there are) and every option, plain ones too
    assert listed(ledger, "r1", "TSHIRT", choices=("ブルー", "する")) == "t-blue"
    assert listed(ledger, "r1", "xs", choices=("Ｓ", "レッド")) == "x-s-red"
    assert listed(ledger, "r1", "tshirt", choices=("グリーン",)) is None
    assert listed(ledger, "r1", "tshirt", choices=("レッド", "ブルー")) is None  # never a guess
    # a choice with its 子番号 is the printed code itself: the default rule's SKU
    assert listed(ledger, "r1", "cap-bk", choices=("ブラック",)) is None
    assert listed(ledger, "r1", "cap", "-bk") == "cap-bk"


def test_a_variation_is_one_whether_or_not_its_empty_axes_are_written(
    ledger: LedgerHarness,
) -> None:
    ledger.ok(control.ShopsApply(id=1, shops=(shop_settings(),)))
    ledger.add("A")
    ledger.add("B")
    ledger.ok(
        control.ListingsImport(id=1, shop="r1", rows=(control.ListingRow("A", "i", ("s", "")),))
    )
    assert listed(ledger, "r1", "i", "s") == "A"
    assert listed(ledger, "r1", "i", " s ", " ") == "A"
    error = ledger.one(
        control.ListingsImport(id=1, shop="r1", rows=(control.ListingRow("B", "i", ("s",)),))
    )
    assert isinstance(error, control.Error) and "is listed as SKU A" in error.details[0]
