"""Orders: each line once, sets through their children, oversells."""

from __future__ import annotations

from daemon.commands import OrderLineIn, RecordOrder
from protocols import control
from tests.ledger.harness import LedgerHarness, shop_settings


def test_orders_move_stock_once_through_sets_and_raise_oversell(ledger: LedgerHarness) -> None:
    ledger.ok(control.ShopsApply(id=1, shops=(shop_settings(),)))
    ledger.add("C1", 5)
    ledger.add("C2", 5)
    ledger.ok(
        control.SetAdd(
            id=1, parent="P", children=(control.SetChild("C1", 2), control.SetChild("C2", 1))
        ),
    )
    order = RecordOrder(
        shop="r1",
        order_no="123456-20261126-0000000001",
        ordered_at="2026-11-26T09:00:00+09:00",
        status="allocated",
        lines=(OrderLineIn(1, "P", 2), OrderLineIn(2, "C2", 4)),
    )
    results, events = ledger.batch([(order, "shop:r1")])
    recorded = results[0]
    assert recorded.applied_lines == 2  # type: ignore[union-attr]
    assert ledger.expected("C1") == 1  # 5 - 2×2
    assert ledger.expected("C2") == -1  # 5 - 2 - 4: the sale happened, oversold
    assert [e.sku for e in events if isinstance(e, control.Oversell)] == ["C2"]
    assert [j.reason for j in ledger.detail("C1", 5).journal] == ["set-component", "manual"]
    again, _ = ledger.batch([(order, "shop:r1")])
    assert again[0].replayed_lines == 2 and again[0].applied_lines == 0  # type: ignore[union-attr]
    assert ledger.expected("C2") == -1
    changed = RecordOrder(
        shop="r1",
        order_no=order.order_no,
        ordered_at=order.ordered_at,
        status="allocated",
        lines=(OrderLineIn(1, "P", 3),),
    )
    error = ledger.one(changed)
    assert isinstance(error, control.Error) and error.code == "conflict"
    assert ledger.violations() == []


def test_warning_orders_do_not_move_stock(ledger: LedgerHarness) -> None:
    ledger.ok(control.ShopsApply(id=1, shops=(shop_settings(),)))
    ledger.add("A", 5)
    ledger.one(
        RecordOrder(
            shop="r1",
            order_no="W1",
            ordered_at="x",
            status="warning",
            lines=(OrderLineIn(1, "A", 2),),
        ),
    )
    assert ledger.expected("A") == 5
