"""Shops: settings rules, the activation guard, the settings journal."""

from __future__ import annotations

from protocols import control
from tests.ledger.harness import LedgerHarness, shop_settings


def test_shop_rules_reflect_guard_and_sets(ledger: LedgerHarness) -> None:
    ledger.add("A", 3)
    ledger.add("NEVER")
    error = ledger.one(control.ShopsApply(id=1, shops=(shop_settings(reflect="active"),)))
    assert (
        isinstance(error, control.Error)
        and error.field == "reflect"
        and error.details == ("NEVER",)
    )
    ledger.ok(control.ShopsApply(id=1, shops=(shop_settings(),)))
    ledger.ok(
        control.ListingsImport(
            id=1, shop="r1", rows=(control.ListingRow("NEVER", "never-item", (), False),)
        ),
    )
    ledger.ok(control.ShopSet(id=1, shop="r1", changes={"reflect": "active"}))
    # a set linked to the shop forbids reflect_to_origin=false
    ledger.ok(control.SetAdd(id=1, parent="P", children=(control.SetChild("A", 1),)))
    error = ledger.one(control.ShopSet(id=1, shop="r1", changes={"reflect_to_origin": "false"}))
    assert isinstance(error, control.Error) and error.field == "reflect_to_origin"
    error = ledger.one(control.ShopSet(id=1, shop="r1", changes={"send_interval_min": "4"}))
    assert isinstance(error, control.Error) and error.field == "send_interval_min"
    assert ledger.shop("r1").send_interval_min == 5
    journal = ledger.db.execute(
        "SELECT setting, before, after FROM shop_journal WHERE setting = 'reflect'"
    ).fetchall()
    assert journal[-1] == ("reflect", '"stopped"', '"active"')


def test_forced_guard_and_explicit_listing_mode(ledger: LedgerHarness) -> None:
    ledger.add("NEVER")
    ledger.ok(control.ShopsApply(id=1, shops=(shop_settings(reflect="active"),), force=True))
    ledger.ok(
        control.ShopsApply(
            id=1,
            shops=(
                shop_settings(id="y1", mall="yahoo", listing_mode="explicit", reflect="active"),
            ),
        ),
    )
    detail = ledger.detail("NEVER", 1)
    assert {q.shop: q.linked for q in detail.shops} == {"r1": True, "y1": False}


def test_guard_lists_linked_sets_whose_children_never_had_stock(ledger: LedgerHarness) -> None:
    ledger.add("C1")
    ledger.ok(control.SetAdd(id=1, parent="P", children=(control.SetChild("C1", 1),)))
    explicit = shop_settings(listing_mode="explicit")
    ledger.ok(control.ShopsApply(id=1, shops=(explicit,)))
    ledger.ok(control.ListingsImport(id=1, shop="r1", rows=(control.ListingRow("P", "set-item"),)))
    error = ledger.one(control.ShopSet(id=1, shop="r1", changes={"reflect": "active"}))
    assert isinstance(error, control.Error) and error.details == ("P",)


def test_shops_show_and_status_build_the_same_status_with_its_warnings(
    ledger: LedgerHarness,
) -> None:
    plain = shop_settings(id="w1", mall="wowma", transport="ftp", ftp_url="ftp://u@127.0.0.1/")
    applied = ledger.ok(control.ShopsApply(id=1, shops=(plain,)))
    assert applied.warnings and "plain ftp://" in applied.warnings[0]
    shown = ledger.ok(control.ShopShow(id=1, shop="w1"))
    (listed,) = ledger.ok(control.GetStatus(id=1)).shops
    assert shown.status == listed
    assert listed.warnings == applied.warnings
    changed = ledger.ok(control.ShopSet(id=1, shop="w1", changes={"send_interval_min": "10"}))
    assert changed.status == listed


def test_an_option_zaiko_cannot_carry_out_is_said_not_silently_kept(
    ledger: LedgerHarness,
) -> None:
    yahoo = shop_settings(id="y1", mall="yahoo", clear_store_cancel_flag=True)
    applied = ledger.ok(control.ShopsApply(id=1, shops=(yahoo,)))
    assert len(applied.warnings) == 1 and "ストア都合キャンセル" in applied.warnings[0]
    (listed,) = ledger.ok(control.GetStatus(id=1)).shops
    assert listed.warnings == applied.warnings
