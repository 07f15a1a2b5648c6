"""Stock counts, the journal and idempotency keys, on a real SQLite file."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import control
from protocols.sku import MAX_QUANTITY
from tests.ledger.harness import LedgerHarness, mall_order, shop_settings


def test_code_kept_exactly_and_journal_sums(ledger: LedgerHarness) -> None:
    ledger.add("000123")
    ledger.ok(control.StockSet(id=1, code="000123", field="expected", value=5))
    ledger.ok(control.StockAdd(id=2, code="000123", field="expected", delta=-2))
    detail = ledger.detail("000123", 20)
    assert detail.code == "000123"
    assert detail.stock.expected == 3
    assert [(j.delta, j.before, j.after) for j in detail.journal] == [(-2, 5, 3), (5, 0, 5)]
    reopened = ledger.reopen()
    assert reopened.expected("000123") == 3
    assert reopened.violations() == []
    reopened.close()


def test_manual_changes_never_go_below_zero(ledger: LedgerHarness) -> None:
    ledger.add("A", 2)
    error = ledger.one(control.StockAdd(id=1, code="A", field="expected", delta=-3))
    assert isinstance(error, control.Error) and error.code == "refused" and error.field == "delta"
    error = ledger.one(control.StockSet(id=1, code="A", field="actual", value=-1))
    assert isinstance(error, control.Error) and error.code == "refused"
    assert ledger.expected("A") == 2


def test_idempotency_keys(ledger: LedgerHarness) -> None:
    ledger.add("A", 0)
    first = ledger.ok(control.StockAdd(id=1, code="A", field="expected", delta=5, key="k1"))
    again = ledger.ok(control.StockAdd(id=2, code="A", field="expected", delta=5, key="k1"))
    assert isinstance(first, control.StockReply) and not first.replayed
    assert isinstance(again, control.StockReply) and again.replayed
    assert ledger.expected("A") == 5
    error = ledger.one(control.StockAdd(id=3, code="A", field="expected", delta=6, key="k1"))
    assert isinstance(error, control.Error) and error.code == "conflict"
    assert ledger.expected("A") == 5


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
    ledger = LedgerHarness(tmp_path_factory.mktemp("prop") / "z.sqlite3")
    ledger.ok(control.ShopsApply(id=1, shops=(shop_settings(order_intake="active"),)))
    model = {"A": 0, "B": 0}
    for code in model:
        ledger.add(code)
    for number, (kind, code, amount) in enumerate(ops):
        if kind == "set":
            result = ledger.one(control.StockSet(id=1, code=code, field="expected", value=amount))
            if amount >= 0:
                model[code] = amount
        elif kind == "add":
            result = ledger.one(control.StockAdd(id=1, code=code, field="expected", delta=amount))
            if model[code] + amount >= 0 or amount >= 0:
                model[code] += amount
        elif amount > 0:
            result = ledger.take("r1", mall_order(f"o{number}", (code, amount)))
            model[code] -= amount
        assert {c: ledger.expected(c) for c in model} == model, result
    assert ledger.violations() == []
    ledger.close()


def test_counts_have_the_range_imports_have(ledger: LedgerHarness) -> None:
    """``stock set/add`` take what an import takes: 0 … 999,999,999, never an overflow."""
    ledger.add("A", 0)
    for value in (MAX_QUANTITY + 1, 2**63 - 1, 99999999999999999999):
        for field in ("expected", "actual", "reserve"):
            error = ledger.one(control.StockSet(id=1, code="A", field=field, value=value))
            assert isinstance(error, control.Error) and error.code == "invalid", error
            assert "999,999,999" in error.message and error.field == "value"
        error = ledger.one(control.StockAdd(id=1, code="A", field="expected", delta=value))
        assert isinstance(error, control.Error) and "999,999,999" in error.message
        error = ledger.one(control.StockAdd(id=1, code="A", field="expected", delta=-value))
        assert isinstance(error, control.Error) and "999,999,999" in error.message
    ledger.ok(control.StockSet(id=1, code="A", field="expected", value=MAX_QUANTITY))
    error = ledger.one(control.StockAdd(id=1, code="A", field="expected", delta=1))
    assert isinstance(error, control.Error) and error.code == "refused"
    assert "above 999,999,999" in error.message
    error = ledger.one(control.SkuAdd(id=1, code="B", reserve=MAX_QUANTITY + 1))
    assert isinstance(error, control.Error) and error.field == "reserve"
    assert ledger.expected("A") == MAX_QUANTITY
    assert ledger.violations() == []


def test_an_overwrite_of_what_was_seen_is_refused_once_it_changed(ledger: LedgerHarness) -> None:
    """``if_was``: the value the operator saw. Changed since (a sale), the overwrite is a
    conflict naming both values, and nothing changes; still the same, it applies."""
    ledger.add("A", 8)
    ledger.ok(control.StockAdd(id=1, code="A", field="expected", delta=-3))  # a sale meanwhile
    error = ledger.one(control.StockSet(id=2, code="A", field="expected", value=9, if_was=8))
    assert isinstance(error, control.Error) and error.code == "conflict"
    assert error.field == "if_was" and "is 5 now, not 8" in error.message
    assert ledger.expected("A") == 5
    ledger.ok(control.StockSet(id=3, code="A", field="expected", value=9, if_was=5))
    assert ledger.expected("A") == 9
