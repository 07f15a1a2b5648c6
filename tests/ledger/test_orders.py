"""Orders: each line once, sets through their children, oversells, the intake modes, unmatched
lines, pending orders, cancellations per the shop's options, apply and dismiss, the backlog."""

from __future__ import annotations

import pytest

from daemon.commands import (
    Backlog,
    ChangeShops,
    GetIntakeState,
    IncomingOrder,
    IntakeState,
    TakeOrders,
)
from protocols import control
from tests.ledger.harness import LedgerHarness, mall_order, shop_settings


def active(**changes: object) -> control.ShopsApply:
    return control.ShopsApply(id=1, shops=(shop_settings(order_intake="active", **changes),))


def statuses(ledger: LedgerHarness, key: str) -> list[str]:
    order = ledger.ok(control.OrderShow(id=1, key=key)).order
    return [line.status for line in order.lines]


def test_orders_move_stock_once_through_sets_and_raise_oversell(ledger: LedgerHarness) -> None:
    ledger.ok(active())
    ledger.add("C1", 5)
    ledger.add("C2", 5)
    ledger.ok(
        control.SetAdd(
            id=1, parent="P", children=(control.SetChild("C1", 2), control.SetChild("C2", 1))
        ),
    )
    order = mall_order("123456-20261126-0000000001", ("P", 2), ("C2", 4))
    (taken, events) = ledger.batch(
        [(TakeOrders(shop="r1", orders=(IncomingOrder(order),)), "shop:r1")]
    )
    result = taken[0].results[0]  # type: ignore[attr-defined]
    assert result.outcome == "taken" and result.oversold == ("C2",)
    assert ledger.expected("C1") == 1  # 5 - 2×2
    assert ledger.expected("C2") == -1  # 5 - 2 - 4: the sale happened, oversold
    assert [e.sku for e in events if isinstance(e, control.Oversell)] == ["C2"]
    assert [j.reason for j in ledger.detail("C1", 5).journal] == ["set-component", "manual"]
    assert ledger.detail("C1", 1).journal[0].ref == "r1:123456-20261126-0000000001:1"
    again = ledger.take("r1", order)
    assert again.results[0].outcome == "replayed"
    assert ledger.expected("C2") == -1
    # the same order number and line with other content: refused and reported, not applied
    changed = ledger.take("r1", mall_order(order.order_no, ("P", 3)))
    assert changed.results[0].outcome == "refused"
    assert "different payload" in changed.results[0].reason
    assert changed.job.failure == 1 and "refused" in changed.job.messages[0]
    assert ledger.expected("C1") == 1
    assert ledger.violations() == []


def test_a_batch_is_one_intake_job_and_a_refused_order_holds_back_no_other(
    ledger: LedgerHarness,
) -> None:
    ledger.ok(active())
    ledger.add("A", 10)
    ledger.take("r1", mall_order("O1", ("A", 1)))
    batch = ledger.take(
        "r1", mall_order("O1", ("A", 5)), mall_order("O2", ("A", 2)), mall_order("O3", ("A", 0))
    )
    assert [r.outcome for r in batch.results] == ["refused", "taken", "refused"]
    assert (batch.job.kind, batch.job.shop, batch.job.count) == ("intake", "r1", 3)
    assert (batch.job.success, batch.job.failure, batch.job.result) == (1, 2, "ok")
    assert ledger.expected("A") == 7
    assert ledger.violations() == []


def test_a_stopped_shop_takes_nothing(ledger: LedgerHarness) -> None:
    ledger.ok(control.ShopsApply(id=1, shops=(shop_settings(),)))
    ledger.add("A", 5)
    error = ledger.one(TakeOrders(shop="r1", orders=(IncomingOrder(mall_order("O", ("A", 1))),)))
    assert isinstance(error, control.Error) and error.field == "order_intake"
    assert ledger.expected("A") == 5


def test_suspended_orders_wait_as_warnings_to_be_applied_or_dismissed(
    ledger: LedgerHarness,
) -> None:
    ledger.ok(control.ShopsApply(id=1, shops=(shop_settings(order_intake="suspended"),)))
    ledger.add("A", 5)
    ledger.take("r1", mall_order("W1", ("A", 2)), mall_order("W2", ("A", 1)))
    assert ledger.expected("A") == 5
    listed = ledger.ok(control.OrdersList(id=1)).orders
    assert [(o.key, o.status) for o in listed] == [("r1:W1", "warning"), ("r1:W2", "warning")]
    applied = ledger.ok(control.OrderApply(id=1, key="r1:W1")).order
    assert applied.status == "allocated" and ledger.expected("A") == 3
    dismissed = ledger.ok(control.OrderDismiss(id=1, key="r1:W2")).order
    assert dismissed.status == "dismissed" and ledger.expected("A") == 3
    assert ledger.ok(control.OrdersList(id=1)).orders == ()
    for request in (control.OrderApply(id=1, key="r1:W1"), control.OrderDismiss(id=1, key="r1:W2")):
        error = ledger.one(request)
        assert isinstance(error, control.Error) and error.code == "refused"
    # a warning re-delivered after it was applied is a replay, not a second sale
    assert ledger.take("r1", mall_order("W1", ("A", 2))).results[0].outcome == "replayed"
    assert ledger.expected("A") == 3
    assert ledger.violations() == []


def test_unmatched_lines_are_kept_and_taken_once_a_listing_or_sku_maps_them(
    ledger: LedgerHarness,
) -> None:
    ledger.ok(active())
    ledger.add("A", 5)
    taken = ledger.take("r1", mall_order("U1", ("A", 1), ("item-x", 2), ("NEW-SKU", 1)))
    assert taken.results[0].outcome == "taken"
    assert statuses(ledger, "r1:U1") == ["allocated", "unmatched", "unmatched"]
    assert ledger.ok(control.OrdersList(id=1)).orders[0].status == "unmatched"
    error = ledger.one(control.OrderApply(id=1, key="r1:U1"))
    assert isinstance(error, control.Error) and "listings import" in error.message
    ledger.add("B", 10)
    ledger.ok(control.ListingsImport(id=1, shop="r1", rows=(control.ListingRow("B", "item-x"),)))
    assert statuses(ledger, "r1:U1") == ["allocated", "allocated", "unmatched"]
    assert ledger.expected("B") == 8
    ledger.add("NEW-SKU")  # the default rule maps to it now
    assert statuses(ledger, "r1:U1") == ["allocated", "allocated", "allocated"]
    assert ledger.expected("NEW-SKU") == -1
    assert ledger.violations() == []


@pytest.mark.parametrize(
    ("mall", "state", "option"),
    [("amazon", "pending", "take_pending"), ("qoo10", "unpaid", "take_unpaid")],
)
def test_orders_the_mall_has_not_confirmed_are_taken_per_the_shops_option(
    ledger: LedgerHarness, mall: str, state: str, option: str
) -> None:
    ledger.add("A", 10)
    ledger.ok(active(mall=mall))
    waiting = mall_order("P1", ("A", 2), status=state)  # type: ignore[arg-type]
    ignored = ledger.take("r1", waiting)
    assert ignored.results[0].outcome == "ignored" and option in ignored.results[0].reason
    assert ledger.expected("A") == 10
    ledger.ok(control.ShopSet(id=1, shop="r1", changes={option: "true"}))
    assert ledger.take("r1", waiting).results[0].outcome == "taken"
    assert statuses(ledger, "r1:P1") == ["pending"] and ledger.expected("A") == 8
    confirmed = ledger.take("r1", mall_order("P1", ("A", 2)))
    assert confirmed.results[0].outcome == "changed"
    assert statuses(ledger, "r1:P1") == ["allocated"] and ledger.expected("A") == 8


def test_cancellations_give_stock_back_once_per_the_shops_option(ledger: LedgerHarness) -> None:
    ledger.ok(
        control.ShopsApply(
            id=1, shops=(shop_settings(id="q1", mall="qoo10", order_intake="active"),)
        )
    )
    ledger.ok(active(mall="amazon"))
    ledger.add("C1", 10)
    ledger.add("C2", 10)
    ledger.ok(
        control.SetAdd(
            id=1, parent="P", children=(control.SetChild("C1", 2), control.SetChild("C2", 1))
        ),
    )
    ledger.take("r1", mall_order("A1", ("P", 1), ("C2", 3)))
    assert (ledger.expected("C1"), ledger.expected("C2")) == (8, 6)
    cancelled = mall_order("A1", ("P", 1), ("C2", 3), status="cancelled")
    not_taken = ledger.take("r1", cancelled)
    assert not_taken.results[0].outcome == "replayed" and "by hand" in not_taken.results[0].reason
    assert (ledger.expected("C1"), ledger.expected("C2")) == (8, 6)
    ledger.ok(control.ShopSet(id=1, shop="r1", changes={"take_cancellations": "true"}))
    # delivered three times, given back once: what the sale took, child by child
    for _ in range(3):
        ledger.take("r1", cancelled)
    assert (ledger.expected("C1"), ledger.expected("C2")) == (10, 10)
    assert statuses(ledger, "r1:A1") == ["cancelled", "cancelled"]
    assert [j.reason for j in ledger.detail("C1", 1).journal] == ["cancel"]
    # Qoo10: a partial cancellation is not taken, a whole one is
    ledger.ok(control.ShopSet(id=1, shop="q1", changes={"take_cancellations": "true"}))
    ledger.take("q1", mall_order("Q1", ("C1", 1), ("C2", 1)))
    ledger.take(
        "q1", mall_order("Q1", ("C1", 1), ("C2", 1), status="partially_cancelled", cancelled=(2,))
    )
    assert statuses(ledger, "q1:Q1") == ["allocated", "allocated"]
    ledger.take("q1", mall_order("Q1", ("C1", 1), ("C2", 1), status="cancelled"))
    assert statuses(ledger, "q1:Q1") == ["cancelled", "cancelled"]
    assert (ledger.expected("C1"), ledger.expected("C2")) == (10, 10)
    assert ledger.violations() == []


def test_switching_a_stopped_shop_on_asks_what_to_do_with_its_backlog(
    ledger: LedgerHarness,
) -> None:
    ledger.ok(control.ShopsApply(id=1, shops=(shop_settings(),)))
    waiting = {"r1": Backlog(count=3, oldest="2026-11-26T08:00:00.000+00:00")}
    switch_on = control.ShopSet(id=1, shop="r1", changes={"order_intake": "active"})
    error = ledger.one(ChangeShops(request=switch_on, backlogs=waiting))
    assert isinstance(error, control.Error) and error.field == "order_intake"
    assert "3 order mail(s)" in error.message and "--backlog" in error.message
    error = ledger.one(
        ChangeShops(
            request=control.ShopsApply(id=1, shops=(shop_settings(order_intake="active"),)),
            backlogs=waiting,
        )
    )
    # a file applied cannot carry the choice: the message says how to make it
    assert isinstance(error, control.Error) and "shops set r1 order_intake=active --backlog" in (
        error.message
    )
    skip = control.ShopSet(id=1, shop="r1", changes={"order_intake": "active"}, backlog="skip")
    ledger.ok(ChangeShops(request=skip, backlogs=waiting))
    state = ledger.one(GetIntakeState(shop="r1"))
    assert isinstance(state, IntakeState) and state.backlog == "skip"
    # the skipped stop is kept for an order API's later polls, after the choice is carried out
    assert (state.skipped_from, state.skipped_until) == (state.stopped_at, state.resumed_at)
    assert state.skipped_until
    error = ledger.one(
        control.ShopSet(id=1, shop="r1", changes={"send_interval_min": "10"}, backlog="take")
    )
    assert isinstance(error, control.Error) and error.field == "backlog"
    # with nothing waiting, no choice is needed
    ledger.ok(control.ShopSet(id=1, shop="r1", changes={"order_intake": "stopped"}))
    ledger.ok(switch_on)


def test_intake_status_counts_what_waits(ledger: LedgerHarness) -> None:
    ledger.ok(control.ShopsApply(id=1, shops=(shop_settings(order_intake="suspended"),)))
    ledger.add("A", 5)
    ledger.take("r1", mall_order("S1", ("A", 1), ("nope", 1)), mall_order("S2", ("A", 1)))
    (shop,) = ledger.ok(control.GetStatus(id=1)).shops
    assert shop.intake.taken_today == 2
    assert (shop.intake.warnings, shop.intake.unmatched) == (2, 1)
    assert shop.intake.last_intake


def test_a_cancelled_warning_is_cancelled_whatever_the_options(ledger: LedgerHarness) -> None:
    ledger.ok(control.ShopsApply(id=1, shops=(shop_settings(order_intake="suspended"),)))
    ledger.add("A", 5)
    ledger.take("r1", mall_order("W1", ("A", 2)))
    ledger.take("r1", mall_order("W1", ("A", 2), status="cancelled"))
    assert statuses(ledger, "r1:W1") == ["cancelled"] and ledger.expected("A") == 5
    assert ledger.ok(control.OrdersList(id=1)).orders == ()


def test_a_cancelled_line_reported_with_quantity_0_gives_back_what_it_took(
    ledger: LedgerHarness,
) -> None:
    ledger.ok(active(mall="amazon", take_cancellations=True))
    ledger.add("A", 5)
    ledger.take("r1", mall_order("Z1", ("A", 2)))
    cancelled = ledger.take("r1", mall_order("Z1", ("A", 0), status="cancelled"))
    assert cancelled.results[0].outcome == "changed"
    assert statuses(ledger, "r1:Z1") == ["cancelled"] and ledger.expected("A") == 5
    # a new line of quantity 0 is still refused
    refused = ledger.take("r1", mall_order("Z2", ("A", 0)))
    assert refused.results[0].outcome == "refused"
