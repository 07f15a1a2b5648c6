"""The stock math of SPEC §2 and §3.2–3.4: what a set can make and what a shop is shown.

Pure functions over integers; the ledger, the reflectors and the TUI all use these, so the
numbers agree everywhere. No result is ever negative.
"""

from __future__ import annotations

from collections.abc import Iterable


def sellable(expected: int, reserve: int) -> int:
    """What may be sold: expected minus the units kept back, never below zero."""
    return max(0, expected - reserve)


def set_expected(children: Iterable[tuple[int, int, int]]) -> int:
    """Sets that can be made from (child expected, child reserve, quantity per set) triples.

    A set with no children can make none.
    """
    counts = [sellable(expected, reserve) // qty for expected, reserve, qty in children]
    return min(counts) if counts else 0


def allocated(expected: int, reserve: int, rate: int) -> int:
    """The shop's share: floor(sellable × rate / 100) (seed: 100, 20, 50 → 40)."""
    return sellable(expected, reserve) * rate // 100


def trickle_target(allocation: int, shown: int, quantity: int, refill_at: int) -> int:
    """What a trickle (小出し) shop should show, given what it still shows.

    Topped up to ``quantity`` only when ``shown`` fell to ``refill_at`` or below; otherwise
    kept at what it shows. Never above the allocation, so a fall elsewhere shows at once, and
    never above ``quantity``, even when the shop shows more (the setting was lowered).
    """
    if shown <= refill_at:
        return min(allocation, quantity)
    return max(0, min(allocation, shown, quantity))


# the sales pace is counted over this many seconds (``daemon.ledger.pace``)
PACE_WINDOW_S = 600


def floor(min_shown: int, pace_units: int = 0, reach_s: int = 0) -> int:
    """The fewest units a shop is shown, fewer being shown as 0: ``min_shown`` (下限在庫数),
    raised by what the SKU's pace (``pace_units`` sold in the last ``PACE_WINDOW_S``) sells
    in ``reach_s``, the time a sale elsewhere takes to reach the shop (rounded half up)."""
    return min_shown + (2 * pace_units * reach_s + PACE_WINDOW_S) // (2 * PACE_WINDOW_S)


def above_floor(share: int, floor: int) -> int:
    """The share, or 0 when it is below the floor: the last units are not shown where a
    sale elsewhere would reach the shop too late to take them off."""
    return share if share >= floor else 0


def shop_target(
    expected: int,
    reserve: int,
    rate: int,
    *,
    floor: int = 1,
    trickle_quantity: int | None = None,
    refill_at: int = 0,
    shown: int | None = None,
) -> int:
    """The quantity to push to one shop for one SKU (SPEC §3.2, the floor, then §3.4).

    ``floor`` 1 shows every unit; ``trickle_quantity`` is None when the shop has no
    trickle; ``shown`` is None when nothing was pushed yet (the shop is treated as showing
    nothing, so it is filled).
    """
    share = above_floor(allocated(expected, reserve, rate), floor)
    if trickle_quantity is None:
        return share
    return trickle_target(share, 0 if shown is None else shown, trickle_quantity, refill_at)
