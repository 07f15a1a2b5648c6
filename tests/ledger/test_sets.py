"""Set products: what they can make, and their rules."""

from __future__ import annotations

from protocols import control
from tests.ledger.harness import LedgerHarness, shop_settings


def test_set_product_follows_children(ledger: LedgerHarness) -> None:
    ledger.add("SOCK-R", 10)
    ledger.add("SOCK-B", 7)
    ledger.ok(control.StockSet(id=1, code="SOCK-B", field="reserve", value=1))
    ledger.ok(
        control.SetAdd(
            id=1,
            parent="SOCKS3",
            children=(control.SetChild("SOCK-R", 2), control.SetChild("SOCK-B", 3)),
        ),
    )
    # min(floor(10/2), floor((7-1)/3)) = min(5, 2) = 2
    assert ledger.expected("SOCKS3") == 2
    ledger.ok(control.StockAdd(id=1, code="SOCK-B", field="expected", delta=3))  # (10-1)/3 = 3
    assert ledger.expected("SOCKS3") == 3
    ledger.ok(control.StockSet(id=1, code="SOCK-R", field="expected", value=3))  # 3/2 = 1
    assert ledger.expected("SOCKS3") == 1
    detail = ledger.detail("SOCKS3", 5)
    assert detail.stock.is_set and {c.code for c in detail.children} == {"SOCK-R", "SOCK-B"}
    assert ledger.detail("SOCK-R", 5).parents == ("SOCKS3",)


def test_set_rules(ledger: LedgerHarness) -> None:
    ledger.add("C1", 1)
    ledger.add("C2", 1)
    ledger.ok(control.SetAdd(id=1, parent="P", children=(control.SetChild("C1", 1),)))
    cases = [
        control.SetAdd(id=1, parent="Q", children=(control.SetChild("P", 1),)),  # nesting
        control.SetAdd(id=1, parent="C1", children=(control.SetChild("C2", 1),)),  # child as parent
        control.SetAdd(id=1, parent="P", children=(control.SetChild("C2", 1),)),  # already a set
        control.SetAdd(id=1, parent="R", children=(control.SetChild("C2", 0),)),  # qty 0
        control.SetAdd(
            id=1, parent="R", children=(control.SetChild("C2", 1), control.SetChild("C2", 1))
        ),
        control.SetAdd(id=1, parent="R", children=(control.SetChild("MISSING", 1),)),
        control.SetAdd(id=1, parent="C2", children=(control.SetChild("C1", 1),)),  # C2 has stock
    ]
    for command in cases:
        assert isinstance(ledger.one(command), control.Error), command
    error = ledger.one(control.StockSet(id=1, code="P", field="expected", value=3))
    assert isinstance(error, control.Error) and error.code == "refused"


def test_sets_may_not_reach_a_shop_that_does_not_reflect_to_origin(ledger: LedgerHarness) -> None:
    ledger.ok(control.ShopsApply(id=1, shops=(shop_settings(reflect_to_origin=False),)))
    ledger.add("C1", 3)
    error = ledger.one(control.SetAdd(id=1, parent="P", children=(control.SetChild("C1", 1),)))
    assert isinstance(error, control.Error) and error.field == "reflect_to_origin"
    explicit = shop_settings(reflect_to_origin=False, listing_mode="explicit")
    ledger.ok(control.ShopsApply(id=1, shops=(explicit,)))
    ledger.ok(control.SetAdd(id=1, parent="P", children=(control.SetChild("C1", 1),)))
    error = ledger.one(
        control.ListingsImport(id=1, shop="r1", rows=(control.ListingRow("P", "set-item"),))
    )
    assert isinstance(error, control.Error) and error.field == "reflect_to_origin"


def test_a_set_childs_quantity_has_the_count_range(ledger: LedgerHarness) -> None:
    ledger.add("C1", 1)
    for qty in (1_000_000_000, 99999999999999999999):
        error = ledger.one(
            control.SetAdd(id=1, parent="P", children=(control.SetChild("C1", qty),))
        )
        assert isinstance(error, control.Error) and error.code == "invalid", error
        assert "999,999,999" in error.message
