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


# --- the floor (下限在庫数) and the sales pace ----------------------------------------------


def test_the_floor_is_min_shown_raised_by_what_the_pace_sells_in_the_reach() -> None:
    assert quantity.floor(1) == 1  # every unit shown
    assert quantity.floor(2) == 2  # the last unit kept from the shop
    # an API shop (a sale elsewhere reaches it in 60 s): 4 sold in 10 minutes sell 0.4 in
    # a minute (rounded: 0), 5 sell 0.5 (rounded half up: 1)
    assert quantity.floor(1, 4, 60) == 1
    assert quantity.floor(1, 5, 60) == 2
    # a file shop (60 s + the mall's batch, 15 min): one sale in 10 minutes sells 1.6
    assert quantity.floor(2, 1, 960) == 4
    assert quantity.floor(2, 0, 960) == 2
    assert quantity.floor(3, 30, 0) == 3  # no pace floor: min_shown alone


def test_a_share_below_the_floor_is_shown_as_zero() -> None:
    assert quantity.above_floor(1, 2) == 0
    assert quantity.above_floor(2, 2) == 2
    assert quantity.shop_target(5, 0, 100, floor=6) == 0
    assert quantity.shop_target(6, 0, 100, floor=6) == 6
    # the floor applies to the share (after reserve and rate), before trickle
    assert quantity.shop_target(100, 20, 50, floor=41) == 0
    assert quantity.shop_target(100, 20, 50, floor=40, trickle_quantity=10, refill_at=3) == 10


@given(
    units=nonneg,
    min_shown=st.integers(1, 50),
    pace=st.integers(0, 1000),
    reach=st.integers(0, 3600),
)
def test_floor_against_the_exact_expected_sales(
    units: int, min_shown: int, pace: int, reach: int
) -> None:
    expected_sales = Fraction(pace * reach, quantity.PACE_WINDOW_S)
    floor = quantity.floor(min_shown, pace, reach)
    assert floor == min_shown + math.floor(expected_sales + Fraction(1, 2))
    assert quantity.above_floor(units, floor) == (units if units >= floor else 0)


@given(expected=stock, reserve=nonneg, r=rate, floor=st.integers(1, 200))
def test_a_higher_floor_never_shows_more(expected: int, reserve: int, r: int, floor: int) -> None:
    lower = quantity.shop_target(expected, reserve, r, floor=floor)
    higher = quantity.shop_target(expected, reserve, r, floor=floor + 1)
    assert higher <= lower <= quantity.allocated(expected, reserve, r)
    assert lower == 0 or lower >= floor
