"""The stock math against a deliberately naive reference model (SPEC §2, §3.2–3.4)."""

import math
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from protocols import quantity

stock = st.integers(min_value=-1000, max_value=100_000)
nonneg = st.integers(min_value=0, max_value=100_000)
rate = st.integers(min_value=0, max_value=100)


def reference_allocated(expected: int, reserve: int, rate: int) -> int:
    units = expected - reserve
    if units <= 0:
        return 0
    # count unit by unit how many whole units the rate grants: the floor, done the slow way
    granted = 0
    while (granted + 1) * 100 <= units * rate:
        granted += 1
    return granted


def reference_sets(children: list[tuple[int, int, int]]) -> int:
    if not children:
        return 0
    made = 0
    remaining = [max(0, e - r) for e, r, _ in children]
    while all(rem >= qty for rem, (_, _, qty) in zip(remaining, children, strict=True)):
        remaining = [rem - qty for rem, (_, _, qty) in zip(remaining, children, strict=True)]
        made += 1
    return made


def test_seed_example() -> None:
    assert quantity.allocated(100, 20, 50) == 40


def test_spec_trickle_example() -> None:
    # quantity 10, refill_at 3, expected 100 → 10; 7 sold there → shown 3 → 10 again;
    # expected falls to 4 elsewhere while the shop shows 10 → 4.
    assert quantity.shop_target(100, 0, 100, trickle_quantity=10, refill_at=3) == 10
    assert quantity.shop_target(93, 0, 100, trickle_quantity=10, refill_at=3, shown=3) == 10
    assert quantity.shop_target(4, 0, 100, trickle_quantity=10, refill_at=3, shown=10) == 4
    # not refilled after every sale: shown 8 > 3 stays 8
    assert quantity.shop_target(92, 0, 100, trickle_quantity=10, refill_at=3, shown=8) == 8


@given(stock, nonneg, rate)
def test_allocated_large_values_match_exact_fractions(expected: int, reserve: int, r: int) -> None:
    exact = Fraction(max(0, expected - reserve) * r, 100)
    assert quantity.allocated(expected, reserve, r) == math.floor(exact)


@given(st.integers(-50, 300), st.integers(0, 300), rate)
def test_allocated_exact_small(expected: int, reserve: int, r: int) -> None:
    assert quantity.allocated(expected, reserve, r) == reference_allocated(expected, reserve, r)


@given(st.lists(st.tuples(st.integers(-20, 60), st.integers(0, 20), st.integers(1, 7)), max_size=4))
def test_set_expected_matches_reference(children: list[tuple[int, int, int]]) -> None:
    assert quantity.set_expected(children) == reference_sets(children)


@given(
    stock,
    nonneg,
    rate,
    st.integers(1, 1000),
    st.integers(0, 999),
    st.none() | st.integers(-50, 2000),
)
def test_shop_target_never_negative_never_above_allocation(
    expected: int, reserve: int, r: int, trickle: int, refill_at: int, shown: int | None
) -> None:
    target = quantity.shop_target(
        expected, reserve, r, trickle_quantity=trickle, refill_at=refill_at, shown=shown
    )
    share = quantity.allocated(expected, reserve, r)
    assert 0 <= target <= share
    assert target <= trickle
    if shown is None or shown <= refill_at:
        assert target == min(share, trickle)
    else:
        assert target == max(0, min(share, shown, trickle))


@given(
    st.lists(st.integers(1, 5), min_size=1, max_size=60),
    st.integers(1, 40),
    st.integers(0, 39),
    st.integers(0, 500),
)
def test_trickle_simulated_selling_at_one_shop(
    sales: list[int], trickle: int, refill_at: int, start: int
) -> None:
    """Selling through one trickle shop: it never shows more than stock or the trickle cap,
    and it is only topped up once what it shows fell to the refill level."""
    refill_at = min(refill_at, trickle - 1)
    expected = start
    shown = quantity.shop_target(expected, 0, 100, trickle_quantity=trickle, refill_at=refill_at)
    for sale in sales:
        sale = min(sale, shown)
        if sale == 0:
            break
        expected -= sale
        shown_before_push = shown - sale
        pushed = quantity.shop_target(
            expected, 0, 100, trickle_quantity=trickle, refill_at=refill_at, shown=shown_before_push
        )
        assert pushed <= expected and pushed <= trickle
        if shown_before_push > refill_at:
            assert pushed == min(expected, shown_before_push)  # no refill yet
        shown = pushed
