"""The stock database on a real SQLite file: domain rules, journal, idempotency, restart."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.commands import OrderLineIn, RecordOrder
from daemon.store import MIGRATIONS, Store
from protocols import control
from protocols.settings import ShopSettings

_ticks = itertools.count()


def clock() -> str:
    return f"2026-11-26T00:00:{next(_ticks) % 60:02d}.000+00:00"


def run(store: Store, *commands: object, actor: str = "test") -> list[object]:
    results, _ = store.apply_batch([(c, actor) for c in commands])  # type: ignore[misc]
    return list(results)


def one(store: Store, command: object) -> object:
    (result,) = run(store, command)
    return result


def ok(store: Store, command: object) -> object:
    result = one(store, command)
    assert not isinstance(result, control.Error), result
    return result


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "z.sqlite3", clock)


def add(store: Store, code: str, expected: int | None = None) -> None:
    ok(store, control.SkuAdd(id=1, code=code))
    if expected is not None:
        ok(store, control.StockSet(id=2, code=code, field="expected", value=expected))


def expected_of(store: Store, code: str) -> int:
    return store.stock_level(code).expected


def test_code_kept_exactly_and_journal_sums(store: Store, tmp_path: Path) -> None:
    add(store, "000123")
    ok(store, control.StockSet(id=1, code="000123", field="expected", value=5))
    ok(store, control.StockAdd(id=2, code="000123", field="expected", delta=-2))
    detail = store.sku_detail("000123", 20)
    assert detail.code == "000123"
    assert detail.stock.expected == 3
    assert [(j.delta, j.before, j.after) for j in detail.journal] == [(-2, 5, 3), (5, 0, 5)]
    store.close()
    reopened = Store(tmp_path / "z.sqlite3", clock)
    assert reopened.stock_level("000123").expected == 3
    assert reopened.stock_invariant_violations() == []


def test_manual_changes_never_go_below_zero(store: Store) -> None:
    add(store, "A", 2)
    error = one(store, control.StockAdd(id=1, code="A", field="expected", delta=-3))
    assert isinstance(error, control.Error) and error.code == "refused" and error.field == "delta"
    error = one(store, control.StockSet(id=1, code="A", field="actual", value=-1))
    assert isinstance(error, control.Error) and error.code == "refused"
    assert expected_of(store, "A") == 2


def test_refused_command_leaves_nothing_and_others_in_batch_commit(store: Store) -> None:
    add(store, "A", 1)
    results = run(
        store,
        control.StockAdd(id=1, code="A", field="expected", delta=4),
        control.StockAdd(id=2, code="A", field="expected", delta=-100),
        control.StockAdd(id=3, code="NOPE", field="expected", delta=1),
        control.StockAdd(id=4, code="A", field="expected", delta=1),
    )
    assert [type(r).__name__ for r in results] == ["StockReply", "Error", "Error", "StockReply"]
    assert expected_of(store, "A") == 6
    assert store.stock_invariant_violations() == []


def test_sku_codes_are_validated(store: Store) -> None:
    for bad in ("", "x" * 65, "A\tB", "A\nB"):
        error = one(store, control.SkuAdd(id=1, code=bad))
        assert (
            isinstance(error, control.Error) and error.code == "invalid" and error.field == "code"
        )
    ok(store, control.SkuAdd(id=1, code="x" * 64))
    error = one(store, control.SkuAdd(id=1, code="x" * 64))
    assert isinstance(error, control.Error) and error.code == "conflict"


def test_set_product_follows_children(store: Store) -> None:
    add(store, "SOCK-R", 10)
    add(store, "SOCK-B", 7)
    ok(store, control.StockSet(id=1, code="SOCK-B", field="reserve", value=1))
    ok(
        store,
        control.SetAdd(
            id=1,
            parent="SOCKS3",
            children=(control.SetChild("SOCK-R", 2), control.SetChild("SOCK-B", 3)),
        ),
    )
    # min(floor(10/2), floor((7-1)/3)) = min(5, 2) = 2
    assert expected_of(store, "SOCKS3") == 2
    ok(store, control.StockAdd(id=1, code="SOCK-B", field="expected", delta=3))  # (10-1)/3 = 3
    assert expected_of(store, "SOCKS3") == 3
    ok(store, control.StockSet(id=1, code="SOCK-R", field="expected", value=3))  # 3/2 = 1
    assert expected_of(store, "SOCKS3") == 1
    detail = store.sku_detail("SOCKS3", 5)
    assert detail.stock.is_set and {c.code for c in detail.children} == {"SOCK-R", "SOCK-B"}
    assert store.sku_detail("SOCK-R", 5).parents == ("SOCKS3",)


def test_set_rules(store: Store) -> None:
    add(store, "C1", 1)
    add(store, "C2", 1)
    ok(store, control.SetAdd(id=1, parent="P", children=(control.SetChild("C1", 1),)))
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
        assert isinstance(one(store, command), control.Error), command
    error = one(store, control.StockSet(id=1, code="P", field="expected", value=3))
    assert isinstance(error, control.Error) and error.code == "refused"


def test_idempotency_keys(store: Store) -> None:
    add(store, "A", 0)
    first = ok(store, control.StockAdd(id=1, code="A", field="expected", delta=5, key="k1"))
    again = ok(store, control.StockAdd(id=2, code="A", field="expected", delta=5, key="k1"))
    assert isinstance(first, control.StockReply) and not first.replayed
    assert isinstance(again, control.StockReply) and again.replayed
    assert expected_of(store, "A") == 5
    error = one(store, control.StockAdd(id=3, code="A", field="expected", delta=6, key="k1"))
    assert isinstance(error, control.Error) and error.code == "conflict"
    assert expected_of(store, "A") == 5


def shop_settings(**changes: object) -> ShopSettings:
    import msgspec

    return msgspec.convert({"id": "r1", "mall": "rakuten", **changes}, ShopSettings)


def test_orders_move_stock_once_through_sets_and_raise_oversell(store: Store) -> None:
    ok(store, control.ShopsApply(id=1, shops=(shop_settings(),)))
    add(store, "C1", 5)
    add(store, "C2", 5)
    ok(
        store,
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
    results, events = store.apply_batch([(order, "shop:r1")])
    recorded = results[0]
    assert recorded.applied_lines == 2  # type: ignore[union-attr]
    assert expected_of(store, "C1") == 1  # 5 - 2×2
    assert expected_of(store, "C2") == -1  # 5 - 2 - 4: the sale happened, oversold
    assert [e.sku for e in events if isinstance(e, control.Oversell)] == ["C2"]
    assert [j.reason for j in store.sku_detail("C1", 5).journal] == ["set-component", "manual"]
    again, _ = store.apply_batch([(order, "shop:r1")])
    assert again[0].replayed_lines == 2 and again[0].applied_lines == 0  # type: ignore[union-attr]
    assert expected_of(store, "C2") == -1
    changed = RecordOrder(
        shop="r1",
        order_no=order.order_no,
        ordered_at=order.ordered_at,
        status="allocated",
        lines=(OrderLineIn(1, "P", 3),),
    )
    error = one(store, changed)
    assert isinstance(error, control.Error) and error.code == "conflict"
    assert store.stock_invariant_violations() == []


def test_warning_orders_do_not_move_stock(store: Store) -> None:
    ok(store, control.ShopsApply(id=1, shops=(shop_settings(),)))
    add(store, "A", 5)
    one(
        store,
        RecordOrder(
            shop="r1",
            order_no="W1",
            ordered_at="x",
            status="warning",
            lines=(OrderLineIn(1, "A", 2),),
        ),
    )
    assert expected_of(store, "A") == 5


def test_shop_rules_reflect_guard_and_sets(store: Store) -> None:
    add(store, "A", 3)
    add(store, "NEVER")
    error = one(store, control.ShopsApply(id=1, shops=(shop_settings(reflect="active"),)))
    assert (
        isinstance(error, control.Error)
        and error.field == "reflect"
        and error.details == ("NEVER",)
    )
    ok(store, control.ShopsApply(id=1, shops=(shop_settings(),)))
    ok(
        store,
        control.ListingsImport(
            id=1, shop="r1", rows=(control.ListingRow("NEVER", "never-item", (), False),)
        ),
    )
    ok(store, control.ShopSet(id=1, shop="r1", changes={"reflect": "active"}))
    # a set linked to the shop forbids reflect_to_origin=false
    ok(store, control.SetAdd(id=1, parent="P", children=(control.SetChild("A", 1),)))
    error = one(store, control.ShopSet(id=1, shop="r1", changes={"reflect_to_origin": "false"}))
    assert isinstance(error, control.Error) and error.field == "reflect_to_origin"
    error = one(store, control.ShopSet(id=1, shop="r1", changes={"send_interval_min": "4"}))
    assert isinstance(error, control.Error) and error.field == "send_interval_min"
    assert store.shop("r1").send_interval_min == 5
    journal = store.db.execute(
        "SELECT setting, before, after FROM shop_journal WHERE setting = 'reflect'"
    ).fetchall()
    assert journal[-1] == ("reflect", '"stopped"', '"active"')


def test_forced_guard_and_explicit_listing_mode(store: Store) -> None:
    add(store, "NEVER")
    ok(store, control.ShopsApply(id=1, shops=(shop_settings(reflect="active"),), force=True))
    ok(
        store,
        control.ShopsApply(
            id=1,
            shops=(
                shop_settings(id="y1", mall="yahoo", listing_mode="explicit", reflect="active"),
            ),
        ),
    )
    detail = store.sku_detail("NEVER", 1)
    assert {q.shop: q.linked for q in detail.shops} == {"r1": True, "y1": False}


def test_shop_quantities_use_rate_reserve_and_trickle(store: Store) -> None:
    ok(
        store,
        control.ShopsApply(
            id=1,
            shops=(
                shop_settings(distribution_rate=50),
                shop_settings(id="t1", trickle={"enabled": True, "quantity": 10, "refill_at": 3}),
            ),
        ),
    )
    add(store, "A", 100)
    ok(store, control.StockSet(id=1, code="A", field="reserve", value=20))
    assert {q.shop: q.target for q in store.sku_detail("A", 0).shops} == {"r1": 40, "t1": 10}


def test_listings_refuse_unknown_skus_whole(store: Store) -> None:
    ok(store, control.ShopsApply(id=1, shops=(shop_settings(),)))
    add(store, "A")
    error = one(
        store,
        control.ListingsImport(
            id=1, shop="r1", rows=(control.ListingRow("A", "a"), control.ListingRow("B", "b"))
        ),
    )
    assert isinstance(error, control.Error) and error.details == ("row 2 [B]: unknown SKU",)
    assert store.db.execute("SELECT count(*) FROM listings").fetchone() == (0,)


operations = st.lists(
    st.tuples(
        st.sampled_from(["set", "add", "order"]),
        st.sampled_from(["A", "B"]),
        st.integers(-30, 30),
    ),
    max_size=40,
)


@settings(
    max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(operations)
def test_random_operations_match_a_dict_model(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, str, int]]
) -> None:
    store = Store(tmp_path_factory.mktemp("prop") / "z.sqlite3", clock)
    ok(store, control.ShopsApply(id=1, shops=(shop_settings(),)))
    model = {"A": 0, "B": 0}
    for code in model:
        add(store, code)
    for number, (kind, code, amount) in enumerate(ops):
        if kind == "set":
            result = one(store, control.StockSet(id=1, code=code, field="expected", value=amount))
            if amount >= 0:
                model[code] = amount
        elif kind == "add":
            result = one(store, control.StockAdd(id=1, code=code, field="expected", delta=amount))
            if model[code] + amount >= 0 or amount >= 0:
                model[code] += amount
        elif amount > 0:
            result = one(
                store,
                RecordOrder(
                    shop="r1",
                    order_no=f"o{number}",
                    ordered_at="x",
                    status="allocated",
                    lines=(OrderLineIn(1, code, amount),),
                ),
            )
            model[code] -= amount
        assert {c: expected_of(store, c) for c in model} == model, result
    assert store.stock_invariant_violations() == []
    store.close()


def test_a_mall_item_is_one_sku_of_a_shop(store: Store) -> None:
    ok(store, control.ShopsApply(id=1, shops=(shop_settings(),)))
    add(store, "A")
    add(store, "B")
    error = one(
        store,
        control.ListingsImport(
            id=1, shop="r1", rows=(control.ListingRow("A", "item"), control.ListingRow("B", "item"))
        ),
    )
    assert isinstance(error, control.Error) and "also given to A" in error.details[0]
    ok(store, control.ListingsImport(id=1, shop="r1", rows=(control.ListingRow("A", "item"),)))
    error = one(
        store, control.ListingsImport(id=1, shop="r1", rows=(control.ListingRow("B", "item"),))
    )
    assert isinstance(error, control.Error) and "listed as SKU A" in error.details[0]
    # moving the item to B in the same file as A gets another item is fine
    ok(
        store,
        control.ListingsImport(
            id=1,
            shop="r1",
            rows=(control.ListingRow("B", "item"), control.ListingRow("A", "other")),
        ),
    )
    rows = store.db.execute("SELECT sku, item_id FROM listings ORDER BY sku").fetchall()
    assert rows == [("A", "other"), ("B", "item")]


def test_sets_may_not_reach_a_shop_that_does_not_reflect_to_origin(store: Store) -> None:
    ok(store, control.ShopsApply(id=1, shops=(shop_settings(reflect_to_origin=False),)))
    add(store, "C1", 3)
    error = one(store, control.SetAdd(id=1, parent="P", children=(control.SetChild("C1", 1),)))
    assert isinstance(error, control.Error) and error.field == "reflect_to_origin"
    explicit = shop_settings(reflect_to_origin=False, listing_mode="explicit")
    ok(store, control.ShopsApply(id=1, shops=(explicit,)))
    ok(store, control.SetAdd(id=1, parent="P", children=(control.SetChild("C1", 1),)))
    error = one(
        store, control.ListingsImport(id=1, shop="r1", rows=(control.ListingRow("P", "set-item"),))
    )
    assert isinstance(error, control.Error) and error.field == "reflect_to_origin"


def test_guard_lists_linked_sets_whose_children_never_had_stock(store: Store) -> None:
    add(store, "C1")
    ok(store, control.SetAdd(id=1, parent="P", children=(control.SetChild("C1", 1),)))
    explicit = shop_settings(listing_mode="explicit")
    ok(store, control.ShopsApply(id=1, shops=(explicit,)))
    ok(store, control.ListingsImport(id=1, shop="r1", rows=(control.ListingRow("P", "set-item"),)))
    error = one(store, control.ShopSet(id=1, shop="r1", changes={"reflect": "active"}))
    assert isinstance(error, control.Error) and error.details == ("P",)


def test_journal_of_an_older_database_is_kept_whole_by_the_migration(tmp_path: Path) -> None:
    """Schema 3 kept time, reason, reference and actor on every journal row; schema 4 keeps
    them once per command. Every row reads back the same through the ``journal`` view."""
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:3], start=1):
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
    store = Store(path, clock)
    assert store.db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    assert store.db.execute("SELECT * FROM journal ORDER BY id").fetchall() == rows
    assert store.db.execute("SELECT count(*) FROM journal_contexts").fetchone() == (3,)
    assert store.stock_invariant_violations() == []
    assert [j.id for j in store.sku_detail("A", 5).journal] == [3, 1]
    add(store, "C", 4)
    assert [j.id for j in store.sku_detail("C", 5).journal] == [5]
