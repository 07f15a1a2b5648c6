"""Simulated customers: a seeded Poisson stream of orders per shop, on trio's clock.

A customer buys only what the shop shows (quantity > 0). Each order becomes a mail in the
shop's Maildir (mail intake) or an order in the shop's order API (API intake); a share of
orders is cancelled later, where the mall reports cancellations; a share waits for payment
first (Amazon Pending, Qoo10 unpaid) and is paid later; at an Amazon shop a share belongs to
another marketplace of the seller account (it moves no stock here). Arrival and cancellation
times are computed ahead and awaited with ``sleep_until``, so with
``trio.testing.MockClock`` a run is deterministic: same seed, same orders.
"""

from __future__ import annotations

import heapq
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import msgspec
import trio

from mallsim.maildir import deliver
from mallsim.malls import Mall, NotSupported
from mallsim.state import ItemState, ShopState, SimState, shop_seed
from protocols.malls.base import MailError, MallOrder, MallOrderState, OrderLine

log = logging.getLogger("mallsim.customers")

Deliver = Callable[[ShopState, MallOrder, float], Awaitable[None]]


def cancellations_supported(mall: Mall, shop: ShopState) -> bool:
    """Whether the daemon can learn of a cancellation at this shop.

    API intake: the order API shows the cancelled status. Mail intake: only when the mall's
    template renders a cancellation mail that reads back as cancelled.
    """
    if shop.intake == "api":
        return mall.has("render_order_answer")
    if not (mall.has("render_order_mail") and mall.has("parse_order_mail")):
        return False
    probe = MallOrder(
        order_no="PROBE-1",
        ordered_at="2025-01-01T09:00:00+09:00",
        status="cancelled",
        lines=(OrderLine(line_no=1, item_id="probe", sku="probe", quantity=1),),
        cancelled_lines=(1,),
    )
    try:
        back = mall.parse_order_mail(mall.render_order_mail(probe, "probe"))
    except (MailError, NotSupported, ValueError, KeyError):
        return False
    return back.status == "cancelled"


class MailOrApi:
    """Hands an order (new or cancelled) to the shop the way its mall reports orders."""

    def __init__(self, state: SimState, maildir_root: Path) -> None:
        self.state = state
        self.maildir_root = maildir_root

    async def __call__(self, shop: ShopState, order: MallOrder, t: float) -> None:
        # Every order is kept for the mall's order API (where the module has one) ...
        self.state.publish_order(shop.id, order, self.state.wall(t))
        if shop.intake != "mail":
            return
        # ... and a mail-intake shop also gets the mall's mail.
        mall = Mall(shop.kind)
        try:
            raw = mall.render_order_mail(order, shop.cfg.name or shop.id)
        except Exception as exc:  # a module bug: the order stands, its mail is missing
            shop.mail_errors += 1
            self.state.changed()
            log.warning(
                "shop %s: no mail for %s: %s: %s", shop.id, order.order_no, type(exc).__name__, exc
            )
            return
        when = self.state.wall(t).timestamp()
        deliver(self.maildir_root / shop.id, raw, when=when)  # synchronous: see maildir.py
        shop.mails_written += 1
        self.state.changed()


def _lines(picks: Sequence[tuple[ItemState, int]]) -> tuple[OrderLine, ...]:
    return tuple(
        OrderLine(
            line_no=i,
            item_id=it.item_id,
            variation=it.variation,
            sku=it.sku,
            quantity=qty,
            name=it.name,
        )
        for i, (it, qty) in enumerate(picks, start=1)
    )


def new_order(
    state: SimState,
    shop: ShopState,
    picks: Sequence[tuple[ItemState, int]],
    t: float,
    status: MallOrderState = "new",
) -> MallOrder:
    """Sell ``picks`` at ``shop`` at trio time ``t`` and return the mall's order for it
    (``status``: the mall's waiting state for an order not paid yet; the units are taken
    all the same, as the malls hold them for it)."""
    state.sell(shop.id, [(it.sku, qty) for it, qty in picks])
    return MallOrder(
        order_no=state.next_order_no(shop.id, t),
        ordered_at=state.wall(t).isoformat(timespec="seconds"),
        status=status,
        lines=_lines(picks),
    )


def foreign_order(
    state: SimState, shop: ShopState, picks: Sequence[tuple[ItemState, int]], t: float
) -> MallOrder:
    """An order of the seller account's other marketplace, published at ``shop``'s order
    API: it sells that marketplace's listing, so neither this shop nor the merchant's stock
    moves. The daemon must leave it out (and count it)."""
    order = MallOrder(
        order_no=state.next_order_no(shop.id, t),
        ordered_at=state.wall(t).isoformat(timespec="seconds"),
        lines=_lines(picks),
    )
    shop.foreign_orders += 1
    state.publish_order(shop.id, order, state.wall(t), foreign=True)
    return order


def pay_order(state: SimState, shop: ShopState, order: MallOrder) -> MallOrder:
    """A waiting order (Amazon Pending, Qoo10 unpaid) is paid: it becomes a new order."""
    shop.payments += 1
    state.changed()
    return msgspec.structs.replace(order, status="new")


def cancel_order(state: SimState, shop: ShopState, order: MallOrder) -> MallOrder:
    """Cancel every line of ``order``: units go back (none for another marketplace's
    order, which took none); returns the cancelled order."""
    published = shop.orders.get(order.order_no)
    if published is None or not published.foreign:
        state.cancel(shop.id, [(line.sku, line.quantity) for line in order.lines])
    return msgspec.structs.replace(
        order,
        status="cancelled",
        cancelled_lines=tuple(line.line_no for line in order.lines),
    )


def _current(shop: ShopState, order: MallOrder) -> MallOrder:
    """The order as the mall holds it now (paid, cancelled), else as it was placed."""
    published = shop.orders.get(order.order_no)
    return published.order if published is not None else order


async def run_customers(
    state: SimState,
    shop_id: str,
    hand_over: Deliver,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one shop's customers until cancelled."""
    shop = state.shops[shop_id]
    cfg = shop.cfg
    mall = Mall(shop.kind)
    task_status.started()
    if cfg.customers_per_hour <= 0 or shop.intake is None:
        return
    if shop.intake == "mail" and not mall.has("render_order_mail"):
        log.warning("shop %s: %s has no render_order_mail; no customers", shop_id, shop.kind)
        return
    if shop.intake == "api" and not mall.has("render_order_answer"):
        log.warning("shop %s: %s has no order API; no customers", shop_id, shop.kind)
        return
    can_cancel = cfg.cancel_fraction > 0 and cancellations_supported(mall, shop)
    if cfg.cancel_fraction > 0 and not can_cancel:
        log.warning("shop %s: %s reports no cancellations; none simulated", shop_id, shop.kind)
    waiting_state = mall.waiting_state if cfg.pending_fraction > 0 else None

    rng = random.Random(shop_seed(cfg))
    rate = cfg.customers_per_hour / 3600.0
    start = state.t0 if state.t0 is not None else trio.current_time()
    next_visit = start + rng.expovariate(rate)
    # later happenings to orders placed: (due, seq, "cancel" | "pay", order as placed)
    events: list[tuple[float, int, str, MallOrder]] = []
    seq = 0
    while True:
        if events and events[0][0] <= next_visit:
            due, _, what, placed = heapq.heappop(events)
            await trio.sleep_until(due)
            order = _current(shop, placed)
            if what == "cancel" and order.status != "cancelled":
                await hand_over(shop, cancel_order(state, shop, order), due)
            elif what == "pay" and order.status == waiting_state:
                await hand_over(shop, pay_order(state, shop, order), due)
            continue

        now = next_visit
        await trio.sleep_until(now)
        next_visit = now + rng.expovariate(rate)
        # Random draws for the optional happenings are made only where they are switched
        # on, so that a seed gives the same orders as before for every other shop.
        if cfg.foreign_fraction > 0 and rng.random() < cfg.foreign_fraction:
            listed = list(shop.items.values())
            chosen = rng.sample(listed, rng.randint(1, min(cfg.max_lines, len(listed))))
            foreign_order(
                state, shop, [(it, rng.randint(1, cfg.max_quantity)) for it in chosen], now
            )
            continue
        available = [it for it in shop.items.values() if it.shown > 0]
        if not available:
            continue
        n_lines = rng.randint(1, min(cfg.max_lines, len(available)))
        chosen = rng.sample(available, n_lines)
        picks = [(it, rng.randint(1, min(cfg.max_quantity, it.shown))) for it in chosen]
        want_cancel = can_cancel and rng.random() < cfg.cancel_fraction
        cancel_delay = rng.expovariate(1.0 / cfg.cancel_after_s) if want_cancel else 0.0
        waits = waiting_state is not None and rng.random() < cfg.pending_fraction
        pay_delay = rng.expovariate(1.0 / cfg.pending_after_s) if waits else 0.0

        order = new_order(
            state, shop, picks, now, waiting_state if waits and waiting_state else "new"
        )
        await hand_over(shop, order, now)
        if waits:
            seq += 1
            heapq.heappush(events, (now + pay_delay, seq, "pay", order))
        if want_cancel:
            seq += 1
            heapq.heappush(events, (now + cancel_delay, seq, "cancel", order))
