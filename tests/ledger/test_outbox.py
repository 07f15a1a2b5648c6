"""The outbox: each shop's target per linked SKU from every write path, pending until the shop
was sent it, latest value wins, urgent when it falls below what the shop shows, trickle from
what the shop still shows, and a large mark computed over several batches."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.commands import PendingPushes, Pushes, PushesSent, PushItem
from daemon.ledger import outbox
from protocols import control, quantity
from protocols.malls.base import MallOrder, OrderLine
from tests.ledger.harness import LedgerHarness, mall_order, shop_settings

NOW = "2026-11-25T00:00:00.000+00:00"  # pushes before the orders of mall_order


def shops(ledger: LedgerHarness, **first: object) -> None:
    ledger.ok(
        control.ShopsApply(
            id=1,
            shops=(
                shop_settings(id="r1", order_intake="active", **first),
                shop_settings(id="y1", mall="yahoo", order_intake="active"),
            ),
        )
    )


def pending(ledger: LedgerHarness, shop: str, *, urgent_only: bool = False) -> dict[str, int]:
    pushes = ledger.ok(PendingPushes(shop=shop, urgent_only=urgent_only))
    assert isinstance(pushes, Pushes)
    return {item.sku: item.quantity for item in pushes.items}


def send_all(ledger: LedgerHarness, shop: str) -> tuple[PushItem, ...]:
    pushes = ledger.ok(PendingPushes(shop=shop))
    ledger.ok(PushesSent(shop=shop, items=pushes.items, at=NOW))
    return tuple(pushes.items)


def row(ledger: LedgerHarness, shop: str, sku: str) -> control.ShopQuantity:
    return next(q for q in ledger.detail(sku).shops if q.shop == shop)


def test_a_target_is_pending_until_sent_and_a_change_back_sends_nothing(
    ledger: LedgerHarness,
) -> None:
    shops(ledger)
    ledger.add("A", 10)
    assert pending(ledger, "r1") == {"A": 10} and pending(ledger, "y1") == {"A": 10}
    send_all(ledger, "r1")
    assert pending(ledger, "r1") == {}
    shown = row(ledger, "r1", "A")
    assert (shown.target, shown.pushed, shown.shown, shown.pending) == (10, 10, 10, False)
    assert shown.pushed_at == NOW
    # latest value wins: two changes before a push are one push of the last value
    ledger.ok(control.StockSet(id=1, code="A", field="expected", value=7))
    ledger.ok(control.StockSet(id=1, code="A", field="expected", value=8))
    assert pending(ledger, "r1") == {"A": 8}
    # back to what the shop was sent: nothing to send
    ledger.ok(control.StockSet(id=1, code="A", field="expected", value=10))
    assert pending(ledger, "r1") == {}
    assert ledger.reopen().ok(PendingPushes(shop="y1")).items[0].quantity == 10


def test_a_sale_elsewhere_is_urgent_a_sale_at_the_shop_follows_its_option(
    ledger: LedgerHarness,
) -> None:
    shops(ledger)
    ledger.add("A", 10)
    send_all(ledger, "r1")
    send_all(ledger, "y1")
    events = ledger.batch([(control.Ping(id=1), "test")])[1]
    assert events == []
    ledger.take("r1", mall_order("1", ("A", 3)))
    # y1 still shows 10 of 7: urgent; r1 took the order itself but reflect_to_origin is on
    assert pending(ledger, "y1", urgent_only=True) == {"A": 7}
    assert pending(ledger, "r1") == {"A": 7} and pending(ledger, "r1", urgent_only=True) == {}
    assert row(ledger, "r1", "A").shown == 7


def test_reflect_to_origin_off_sends_the_origin_nothing_for_its_own_sale(
    ledger: LedgerHarness,
) -> None:
    shops(ledger, reflect_to_origin=False)
    ledger.add("A", 10)
    send_all(ledger, "r1")
    send_all(ledger, "y1")
    ledger.take("r1", mall_order("1", ("A", 3)))
    assert pending(ledger, "r1") == {} and pending(ledger, "y1") == {"A": 7}
    ledger.take("y1", mall_order("2", ("A", 1)))
    assert pending(ledger, "r1", urgent_only=True) == {"A": 6}


def test_rate_reserve_and_the_seed_example(ledger: LedgerHarness) -> None:
    shops(ledger, distribution_rate=50)
    ledger.add("A", 100)
    ledger.ok(control.StockSet(id=1, code="A", field="reserve", value=20))
    assert pending(ledger, "r1") == {"A": 40} and pending(ledger, "y1") == {"A": 80}
    # a setting change recomputes the shop's targets
    ledger.ok(control.ShopSet(id=1, shop="r1", changes={"distribution_rate": "25"}))
    assert pending(ledger, "r1") == {"A": 20}


def test_trickle_as_spec_3_4_says(ledger: LedgerHarness) -> None:
    # SPEC's example has no floor: 96 units sold at once would raise it (the sales pace)
    shops(ledger, trickle={"enabled": True, "quantity": 10, "refill_at": 3}, pace_floor=False)
    ledger.add("A", 100)
    assert pending(ledger, "r1") == {"A": 10}
    send_all(ledger, "r1")
    ledger.take("r1", mall_order("1", ("A", 6)))  # shows 4 of 94: not refilled
    assert row(ledger, "r1", "A").shown == 4
    ledger.take("r1", mall_order("2", ("A", 1)))  # shows 3: refilled to 10
    assert pending(ledger, "r1") == {"A": 10} and ledger.expected("A") == 93
    send_all(ledger, "r1")
    ledger.take("y1", mall_order("3", ("A", 89)))  # expected 4, sold elsewhere
    assert pending(ledger, "r1", urgent_only=True) == {"A": 4}


def test_a_sale_at_a_rate_limited_shop_is_sent_what_it_should_show(ledger: LedgerHarness) -> None:
    shops(ledger, distribution_rate=50)
    ledger.add("A", 11)
    send_all(ledger, "r1")  # 5
    ledger.take("r1", mall_order("1", ("A", 1)))  # the mall shows 4; zaiko's target is 5
    assert pending(ledger, "r1") == {"A": 5}


def test_unlinked_and_intake_only_shops_get_nothing_sets_follow_children(
    ledger: LedgerHarness,
) -> None:
    shops(ledger)
    ledger.ok(
        control.ShopsApply(
            id=1, shops=(shop_settings(id="ya1", mall="yahoo_auction", order_intake="active"),)
        )
    )
    ledger.add("A", 10)
    ledger.add("B", 4)
    ledger.ok(control.SetAdd(id=1, parent="AB", children=(control.SetChild(code="A", qty=2),)))
    ledger.ok(
        control.ListingsImport(
            id=1, shop="y1", rows=(control.ListingRow(sku="B", item_id="b", linked=False),)
        )
    )
    assert pending(ledger, "r1") == {"A": 10, "AB": 5, "B": 4}
    assert pending(ledger, "y1") == {"A": 10, "AB": 5}
    assert pending(ledger, "ya1") == {}
    ledger.take("r1", mall_order("1", ("AB", 2)))
    assert pending(ledger, "y1") == {"A": 6, "AB": 3}


def test_a_row_changed_while_it_was_sent_stays_pending(ledger: LedgerHarness) -> None:
    shops(ledger)
    ledger.add("A", 10)
    send_all(ledger, "r1")
    read = ledger.ok(PendingPushes(shop="r1")).items
    assert read == ()
    ledger.ok(control.StockSet(id=1, code="A", field="expected", value=8))
    read = ledger.ok(PendingPushes(shop="r1")).items
    ledger.ok(control.StockSet(id=1, code="A", field="expected", value=5))
    events = ledger.batch([(PushesSent(shop="r1", items=read, at=NOW), "test")])[1]
    # the shop shows 8, zaiko wants 5: announced again, the newest follows
    assert control.PushesPending(shop="r1", urgent=True) in events
    assert pending(ledger, "r1") == {"A": 5}
    assert row(ledger, "r1", "A").pushed == 8


def test_an_older_value_sent_after_a_newer_one_is_corrected(ledger: LedgerHarness) -> None:
    """A bulk sync's snapshot (or an Amazon feed that applies late) can reach the mall after
    a newer push: zaiko must not go on believing the mall shows the newer value."""
    shops(ledger)
    ledger.add("A", 10)
    snapshot = ledger.ok(PendingPushes(shop="r1")).items  # a bulk sync reads 10
    ledger.ok(control.StockSet(id=1, code="A", field="expected", value=4))
    send_all(ledger, "r1")  # an order-driven push sends 4 first
    assert row(ledger, "r1", "A").shown == 4 and pending(ledger, "r1") == {}
    events = ledger.batch([(PushesSent(shop="r1", items=snapshot, at=NOW), "test")])[1]
    # the mall was last sent 10: 4 goes out again, at once (it is below what the mall shows)
    assert row(ledger, "r1", "A").shown == 10
    assert pending(ledger, "r1", urgent_only=True) == {"A": 4}
    assert any(isinstance(e, control.PushesPending) and e.urgent for e in events)
    send_all(ledger, "r1")
    assert row(ledger, "r1", "A").shown == 4 and pending(ledger, "r1") == {}


def test_a_large_mark_is_computed_over_batches(
    ledger: LedgerHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "REFRESH_BUDGET", 10)
    ledger.add("A", 1)
    for n in range(30):
        ledger.ok(control.SkuAdd(id=1, code=f"S{n:02}"))
    shops(ledger)  # two new shops: every SKU of each, 10 at a time
    assert ledger.engine.outbox_behind
    rounds = 0
    while ledger.engine.outbox_behind:
        ledger.batch([])
        rounds += 1
    assert rounds == 6
    assert len(pending(ledger, "r1")) == len(pending(ledger, "y1")) == 31


def test_reflect_now_lists_the_formula_s_inputs_and_refuses_a_stopped_shop(
    ledger: LedgerHarness,
) -> None:
    shops(ledger, distribution_rate=50, trickle={"enabled": True, "quantity": 30, "refill_at": 3})
    ledger.add("A", 100)
    ledger.ok(control.StockSet(id=1, code="A", field="reserve", value=20))
    dry = ledger.ok(control.ReflectNow(id=1, shop="r1", dry_run=True))
    assert isinstance(dry, control.ReflectReply) and (dry.pending, dry.sending) == (1, False)
    (row,) = dry.rows
    assert (row.sku, row.target, row.expected, row.reserve, row.rate) == ("A", 30, 100, 20, 50)
    assert (row.trickle_quantity, row.refill_at, row.pushed, row.shown) == (30, 3, None, None)
    error = ledger.one(control.ReflectNow(id=1, shop="r1"))
    assert isinstance(error, control.Error) and "shops set r1 reflect=active" in error.message
    ledger.ok(control.ShopSet(id=1, shop="r1", changes={"reflect": "active"}))
    results, events = ledger.batch([(control.ReflectNow(id=1, shop="r1"), "test")])
    assert isinstance(results[0], control.ReflectReply) and results[0].sending
    assert control.PushesPending(shop="r1", now=True) in events


# --- against a reference model -------------------------------------------------------------

Step = tuple[str, str, int]  # (what, shop or "", units)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rate=st.integers(0, 100),
    reserve=st.integers(0, 5),
    min_shown=st.one_of(st.none(), st.integers(1, 6)),
    pace_floor=st.booleans(),
    trickle=st.one_of(
        st.none(),
        st.integers(1, 12).flatmap(lambda q: st.tuples(st.just(q), st.integers(0, q - 1))),
    ),
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("sale"), st.sampled_from(["r1", "y1"]), st.integers(1, 4)),
            st.tuples(st.just("set"), st.just(""), st.integers(0, 40)),
            st.tuples(st.just("push"), st.sampled_from(["r1", "y1"]), st.just(0)),
        ),
        max_size=25,
    ),
)
def test_the_outbox_follows_a_reference_model(
    tmp_path_factory: pytest.TempPathFactory,
    rate: int,
    reserve: int,
    min_shown: int | None,
    pace_floor: bool,
    trickle: tuple[int, int] | None,
    steps: list[Step],
) -> None:
    """What each shop shows (pushed − sold there since) and what it is pending, step by step,
    as a plain model of SPEC §3.2–3.4 says: after a push the shop shows the target; a sale
    there counts it down; the target comes from expected, reserve, rate, the floor and
    trickle. The floor: min_shown (empty: 1 for these API shops that take order mails), plus,
    with the pace floor, a tenth of the units sold lately (a sale reaches an API shop in
    60 s; the pace counts 600 s, which the harness's clock never passes), rounded."""
    ledger = LedgerHarness(tmp_path_factory.mktemp("model") / "z.sqlite3")
    try:
        trickle_doc = (
            {"enabled": True, "quantity": trickle[0], "refill_at": trickle[1]} if trickle else {}
        )
        ledger.ok(
            control.ShopsApply(
                id=1,
                shops=(
                    shop_settings(
                        id="r1",
                        order_intake="active",
                        distribution_rate=rate,
                        min_shown=min_shown,
                        pace_floor=pace_floor,
                        **({"trickle": trickle_doc} if trickle else {}),
                    ),
                    shop_settings(id="y1", mall="yahoo", order_intake="active"),
                ),
            )
        )
        ledger.add("A", 20)
        ledger.ok(control.StockSet(id=1, code="A", field="reserve", value=reserve))
        expected = 20
        shown: dict[str, int | None] = {"r1": None, "y1": None}
        order = 0
        sold = 0
        for what, shop, units in steps:
            if what == "sale":
                order += 1
                sold += units
                ledger.take(shop, mall_order(str(order), ("A", units)))
                expected -= units
                if shown[shop] is not None:
                    shown[shop] -= units  # type: ignore[operator]
            elif what == "set":
                ledger.ok(control.StockSet(id=1, code="A", field="expected", value=units))
                expected = units
            else:
                sent = send_all(ledger, shop)
                if sent:
                    shown[shop] = sent[0].quantity
            lately = int(sold / 10 + 0.5)
            floors = {"r1": (min_shown or 1) + (lately if pace_floor else 0), "y1": 1 + lately}
            for shop_id, shop_rate, shop_trickle in (("r1", rate, trickle), ("y1", 100, None)):
                target = quantity.shop_target(
                    expected,
                    reserve,
                    shop_rate,
                    floor=floors[shop_id],
                    trickle_quantity=shop_trickle[0] if shop_trickle else None,
                    refill_at=shop_trickle[1] if shop_trickle else 0,
                    shown=shown[shop_id],
                )
                found = row(ledger, shop_id, "A")
                assert found.target == target, (what, shop_id)
                assert found.shown == shown[shop_id]
                assert found.target >= 0
    finally:
        ledger.close()


def test_a_sku_sold_as_another_mall_item_is_sent_there(ledger: LedgerHarness) -> None:
    shops(ledger)
    ledger.add("A", 10)
    ledger.add("B", 3)
    send_all(ledger, "r1")
    assert pending(ledger, "r1") == {}
    ledger.ok(control.ListingsImport(id=1, shop="r1", rows=(control.ListingRow("A", "item-x"),)))
    # the target did not change, but item-x was never sent it
    assert pending(ledger, "r1") == {"A": 10}
    assert row(ledger, "r1", "A").shown is None
    sent = send_all(ledger, "r1")
    assert sent[0].item_id == "item-x"
    ledger.ok(control.ListingsImport(id=1, shop="r1", rows=(control.ListingRow("A", "item-x"),)))
    assert pending(ledger, "r1") == {}  # the same item again: nothing to send
    # item-x moves to B, A to item-y: both are sent to their new items
    rows = (control.ListingRow("B", "item-x"), control.ListingRow("A", "item-y"))
    ledger.ok(control.ListingsImport(id=1, shop="r1", rows=rows))
    assert pending(ledger, "r1") == {"A": 10, "B": 3}
    assert pending(ledger, "y1") == {"A": 10, "B": 3}  # never sent: another shop is untouched


def test_acknowledgements_that_cross_leave_the_row_pending_until_a_fresh_push(
    ledger: LedgerHarness,
) -> None:
    """A feed of a snapshot (10) lands after a push of a newer value (8), and its ack comes
    first: which value the mall kept is unknown, so the newest is sent once more."""
    shops(ledger)
    ledger.add("A", 10)
    snapshot = ledger.ok(PendingPushes(shop="r1")).items
    ledger.ok(control.StockSet(id=1, code="A", field="expected", value=8))
    push = ledger.ok(PendingPushes(shop="r1")).items
    ledger.ok(PushesSent(shop="r1", items=snapshot, at=NOW))
    ledger.ok(PushesSent(shop="r1", items=push, at=NOW))
    assert pending(ledger, "r1") == {"A": 8}
    send_all(ledger, "r1")
    assert pending(ledger, "r1") == {}


def test_a_sale_while_a_snapshot_was_sent_does_not_hide_the_overwrite(
    ledger: LedgerHarness,
) -> None:
    shops(ledger, reflect_to_origin=False)
    ledger.add("A", 10)
    snapshot = ledger.ok(PendingPushes(shop="r1")).items
    ledger.take("r1", mall_order("1", ("A", 1)))  # the mall counted it down, then got 10
    ledger.ok(PushesSent(shop="r1", items=snapshot, at=NOW))
    assert row(ledger, "r1", "A").shown == 10
    assert pending(ledger, "r1", urgent_only=True) == {"A": 9}


def test_a_push_in_flight_to_the_old_item_does_not_count_for_the_new_one(
    ledger: LedgerHarness,
) -> None:
    shops(ledger)
    ledger.add("A", 10)
    in_flight = ledger.ok(PendingPushes(shop="r1")).items  # to item "A"
    ledger.ok(control.ListingsImport(id=1, shop="r1", rows=(control.ListingRow("A", "item-y"),)))
    ledger.ok(PushesSent(shop="r1", items=in_flight, at=NOW))
    again = ledger.ok(PendingPushes(shop="r1")).items
    assert [(i.sku, i.item_id, i.quantity) for i in again] == [("A", "item-y", 10)]


def test_a_feed_that_may_or_may_not_have_landed_is_sent_again(ledger: LedgerHarness) -> None:
    shops(ledger)
    ledger.add("A", 10)
    send_all(ledger, "r1")
    snapshot = ledger.ok(PendingPushes(shop="r1", urgent_only=False)).items
    assert snapshot == ()
    items = ledger.ok(PendingPushes(shop="y1")).items
    ledger.ok(PushesSent(shop="y1", items=items, at=NOW, uncertain=True))
    assert pending(ledger, "y1") == {"A": 10}
    send_all(ledger, "y1")
    assert pending(ledger, "y1") == {}


def test_a_sale_placed_before_the_push_reached_the_mall_was_overwritten(
    ledger: LedgerHarness,
) -> None:
    """The mall sold one at 09:00 (Tokyo), then took zaiko's 10 (computed without that sale)
    at 09:00:30: it shows 10, not 9. When the order comes in, 9 goes out to it at once."""
    shops(ledger)
    ledger.add("A", 10)
    pushes = ledger.ok(PendingPushes(shop="r1")).items
    ledger.ok(PushesSent(shop="r1", items=pushes, at="2026-11-26T00:00:30.000+00:00"))
    ledger.take("r1", mall_order("1", ("A", 1)))  # placed 2026-11-26T09:00:00+09:00
    assert row(ledger, "r1", "A").shown == 10
    assert pending(ledger, "r1", urgent_only=True) == {"A": 9}
    # placed after the push reached the mall: the mall counted it down itself
    send_all(ledger, "r1")
    later = MallOrder(
        order_no="2",
        ordered_at="2026-11-26T09:05:00+09:00",
        lines=(OrderLine(line_no=1, item_id="A", sku="A", quantity=1),),
    )
    ledger.take("r1", later)
    assert row(ledger, "r1", "A").shown == 8
    assert pending(ledger, "r1", urgent_only=True) == {}  # it shows 8 already


def test_a_file_mall_applies_a_push_at_its_batch_so_a_sale_soon_after_is_not_counted(
    ledger: LedgerHarness,
) -> None:
    shop = shop_settings(
        id="r1",
        order_intake="active",
        transport="ftp",
        ftp_url="sftp://u@127.0.0.1:22/ritem/batch",
        ftp_credential="k",
        known_hosts="kh",
    )
    ledger.ok(control.ShopsApply(id=1, shops=(shop,)))
    ledger.add("A", 10)
    pushes = ledger.ok(PendingPushes(shop="r1")).items
    ledger.ok(PushesSent(shop="r1", items=pushes, at="2026-11-26T00:00:00.000+00:00"))
    # 5 minutes after the upload: the mall's batch may not have run; its file overwrote it
    ledger.take("r1", mall_order("1", ("A", 1)))  # placed 2026-11-26T00:00 UTC + 0
    soon = MallOrder(
        order_no="2",
        ordered_at="2026-11-26T09:05:00+09:00",
        lines=(OrderLine(line_no=1, item_id="A", sku="A", quantity=1),),
    )
    ledger.take("r1", soon)
    assert row(ledger, "r1", "A").shown == 10
    assert pending(ledger, "r1", urgent_only=True) == {"A": 8}
    later = MallOrder(
        order_no="3",
        ordered_at="2026-11-26T09:20:00+09:00",
        lines=(OrderLine(line_no=1, item_id="A", sku="A", quantity=1),),
    )
    ledger.take("r1", later)
    assert row(ledger, "r1", "A").shown == 9  # the batch ran by then: the mall counted it


def api_and_file_shops(ledger: LedgerHarness) -> None:
    """r1: Rakuten by API, orders by mail (floor 1); y1: Yahoo by stock file (floor 2)."""
    ledger.ok(
        control.ShopsApply(
            id=1,
            shops=(
                shop_settings(id="r1", order_intake="active"),
                shop_settings(
                    id="y1", mall="yahoo", transport="ftp", ftp_url="ftps://u@127.0.0.1/"
                ),
            ),
        )
    )


def test_a_backlog_of_old_orders_is_no_sales_pace(ledger: LedgerHarness) -> None:
    """The pace counts only orders placed within its window: a day-old order taken now
    raises no floor; one placed now does (a file shop's floor 2 + 6 × 960 s / 600 s
    rounded: 12)."""
    api_and_file_shops(ledger)
    ledger.add("A", 20)
    old = msgspec.structs.replace(mall_order("1", ("A", 6)), ordered_at="2026-11-25T09:00:00+09:00")
    ledger.take("r1", old)
    assert row(ledger, "y1", "A").target == 14
    ledger.take("r1", mall_order("2", ("A", 6)))  # placed at the harness's time
    assert row(ledger, "y1", "A").target == 0
    assert row(ledger, "r1", "A").target == 8  # an API shop: floor 1 + 0.6 rounded = 2


def test_a_set_s_floor_follows_its_children_s_pace(ledger: LedgerHarness) -> None:
    """A child selling fast on its own: its last units are the set's too. The set's pace is at
    least the child's in sets (8 socks sold lately: 4 pairs), so a file shop is shown the set
    only while it has 2 + 4 × 960 s / 600 s (6.4, rounded: 6) = 8 or more."""
    api_and_file_shops(ledger)
    ledger.add("SOCK", 20)
    ledger.ok(control.SetAdd(id=1, parent="PAIR", children=(control.SetChild("SOCK", 2),)))
    assert row(ledger, "y1", "PAIR").target == 10
    ledger.take("r1", mall_order("1", ("SOCK", 8)))  # 12 socks left: 6 pairs
    assert row(ledger, "y1", "PAIR").target == 0
    assert row(ledger, "r1", "PAIR").target == 6  # an API shop: 1 + 4 × 60 s / 600 s → 1
