"""Orders taken from shops (受注取込) and the allocation list (引当確認受注一覧).

Each order line is taken once (key: shop, order, line) and each cancellation is given back
once (key: shop, order, line, cancel); the same key with other content is refused, never
applied. What a line does depends on the shop's intake mode when it arrives: ``active``
moves stock (sets through their children), ``suspended`` keeps it as a ``warning`` for the
operator to apply or dismiss. A line whose mall item maps to no SKU yet is kept
``unmatched`` and taken when a listing or a SKU makes it map. A sale that takes expected
below zero is recorded anyway (it happened at the mall) and raises an oversell.
"""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import msgspec

from daemon.clock import stamp
from daemon.commands import (
    FinishJob,
    IncomingOrder,
    OrderOutcome,
    OrderResult,
    OrdersTaken,
    TakeOrders,
)
from daemon.ledger import jobs, listings, outbox, pace, shops, stock
from daemon.ledger.tx import DomainError, Tx
from protocols import control
from protocols.malls.base import MallOrder
from protocols.settings import ShopSettings
from protocols.sku import quantity_problem

# line statuses whose stock has been taken
MOVED: frozenset[control.OrderStatus] = frozenset({"allocated", "pending"})
# the line status that most needs attention names the order
_ATTENTION: tuple[control.OrderStatus, ...] = (
    "unmatched",
    "warning",
    "pending",
    "allocated",
    "cancelled",
    "dismissed",
)
ORDERS_LIST_MAX = 1000


def order_key(shop: str, order_no: str) -> str:
    return f"{shop}:{order_no}"


def split_key(key: str) -> tuple[str, str]:
    """``shop:order_no`` (a shop id never holds a colon; an order number may)."""
    shop, sep, order_no = key.partition(":")
    if not sep or not shop or not order_no:
        raise DomainError("invalid", f"order key {key!r}: expected SHOP:ORDER_NO", "key")
    return shop, order_no


def takes_cancellations(shop: ShopSettings, *, partial: bool) -> bool:
    """Whether a cancellation at the mall gives the stock back (SPEC §4 mall options)."""
    match shop.mall:
        case "rakuten":
            return shop.take_buyer_cancel
        case "amazon":
            return shop.take_cancellations
        case "qoo10":
            # the seed: partial cancellations are not taken
            return shop.take_cancellations and not partial
    return False


def _takes_waiting(shop: ShopSettings, state: str) -> str | None:
    """For an order the mall has not confirmed yet: None when the shop allocates it, else
    the option that would make it."""
    if state == "pending":
        return None if shop.take_pending else "take_pending"
    if state == "unpaid":
        return None if shop.take_unpaid else "take_unpaid"
    return None


# --- taking orders ---------------------------------------------------------------------


def take_orders(tx: Tx, command: TakeOrders) -> OrdersTaken:
    shop = shops.get(tx, command.shop)
    if shop.order_intake == "stopped":
        raise DomainError(
            "refused", f"shop {shop.id}: order intake is stopped; nothing taken", "order_intake"
        )
    results: list[OrderResult] = []
    for incoming in command.orders:
        try:
            with tx.savepoint("incoming_order"):
                results.append(_take(tx, shop, incoming))
        except DomainError as exc:
            results.append(
                OrderResult(order_no=incoming.order.order_no, outcome="refused", reason=str(exc))
            )
    messages: list[str] = list(command.problems)
    for result in results:
        if result.outcome == "refused":
            messages.append(f"order {result.order_no}: refused: {result.reason}")
        elif result.reason:
            messages.append(f"order {result.order_no}: {result.reason}")
        if result.oversold:
            messages.append(
                f"order {result.order_no}: oversold {', '.join(result.oversold)} "
                "(expected below zero)"
            )
    if command.ignored:
        messages.append(f"{command.ignored} mail(s) were not orders (other notices of the mall)")
    failure = len(command.problems) + sum(r.outcome == "refused" for r in results)
    success = len(results) - sum(r.outcome == "refused" for r in results)
    finished = jobs.record(
        tx,
        "intake",
        shop.id,
        FinishJob(
            job=0,
            result="failed" if failure and not success else "ok",
            count=success + failure,
            success=success,
            failure=failure,
            messages=tuple(messages),
        ),
    )
    return OrdersTaken(job=finished, results=tuple(results))


def _take(tx: Tx, shop: ShopSettings, incoming: IncomingOrder) -> OrderResult:
    order = incoming.order
    numbers = [line.line_no for line in order.lines]
    if len(set(numbers)) != len(numbers):
        raise DomainError("invalid", "a line number appears twice")
    db = tx.db
    state = order.status
    waiting = state in ("pending", "unpaid")
    missing_option = _takes_waiting(shop, state)
    cancelled = (
        {line.line_no for line in order.lines}
        if state == "cancelled"
        else set(order.cancelled_lines)
    )
    for line in order.lines:
        # a mall may report a cancelled line with the quantity it no longer ships: 0
        if line.quantity < 1 and not (line.quantity == 0 and line.line_no in cancelled):
            raise DomainError("invalid", f"line {line.line_no}: quantity must be at least 1")
        if (problem := quantity_problem(line.quantity)) is not None:
            raise DomainError("invalid", f"line {line.line_no}: quantity {problem}")
    known = db.execute(
        "SELECT mall_state FROM orders WHERE shop = ? AND order_no = ?", (shop.id, order.order_no)
    ).fetchone()
    if known is None:
        if missing_option is not None:
            return OrderResult(
                order_no=order.order_no,
                outcome="ignored",
                reason=f"{state} at the mall: not taken ({missing_option} is off)",
            )
        if state == "cancelled":
            return OrderResult(
                order_no=order.order_no,
                outcome="ignored",
                reason="cancelled before it was taken: nothing to take or give back",
            )
        received_at = tx.now()
        db.execute(
            "INSERT INTO orders(shop, order_no, status, ordered_at, received_at, mall_state, "
            "source) VALUES (?, ?, 'allocated', ?, ?, ?, ?)",
            (shop.id, order.order_no, order.ordered_at, received_at, state, incoming.source),
        )
    # a new order's lines are all new: nothing to read back (this runs for every order)
    stored = (
        {}
        if known is None
        else {
            line_no: (status, quantity)
            for line_no, status, quantity in db.execute(
                "SELECT line_no, status, quantity FROM order_lines WHERE shop = ? AND order_no = ?",
                (shop.id, order.order_no),
            )
        }
    )
    new_lines: list[control.OrderLineDoc] = []
    taken = changed = False
    notes: list[str] = []
    oversold: list[str] = []
    for line in order.lines:
        key = f"order-line\x1f{shop.id}\x1f{order.order_no}\x1f{line.line_no}"
        payload = (line.item_id, list(line.variation), line.quantity)
        before = stored.get(line.line_no)
        if before is None:
            if line.line_no in cancelled or missing_option is not None:
                continue  # never taken: nothing to give back
            stock.claim_key(tx, key, payload)
            sku = listings.sku_for_item(
                tx, shop, line.item_id, line.variation, line.sku, line.choices
            )
            status = _arrival_status(shop, sku, waiting)
            db.execute(
                "INSERT INTO order_lines(shop, order_no, line_no, sku, item_id, variation, "
                "quantity, name, status, choices) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    shop.id,
                    order.order_no,
                    line.line_no,
                    sku,
                    line.item_id,
                    msgspec.json.encode(line.variation).decode(),
                    line.quantity,
                    line.name,
                    status,
                    msgspec.json.encode(line.choices).decode(),
                ),
            )
            if status in MOVED:
                oversold += _sell(
                    tx, shop.id, order.order_no, line.line_no, sku, line.quantity, order.ordered_at
                )
            if sku:
                # the mall counted its own quantity down, whether or not stock moved here
                outbox.sold_at(tx, shop, sku, line.quantity, order.ordered_at)
            new_lines.append(
                control.OrderLineDoc(
                    line_no=line.line_no,
                    item_id=line.item_id,
                    variation=line.variation,
                    sku=sku,
                    quantity=line.quantity,
                    status=status,
                    name=line.name,
                    choices=line.choices,
                )
            )
            taken = True
            continue
        status, quantity = before
        if line.quantity == 0 and line.line_no in cancelled:
            payload = (line.item_id, list(line.variation), quantity)
        # a line seen before: the same content, or a refusal (claim_key raises)
        stock.claim_key(tx, key, payload)
        if line.line_no in cancelled:
            if status in ("cancelled", "dismissed"):
                continue
            # a line that never took stock is simply cancelled; one that did gives it back
            # only where the shop takes cancellations
            if status in MOVED and not takes_cancellations(
                shop, partial=state == "partially_cancelled"
            ):
                notes.append(
                    f"line {line.line_no} cancelled at the mall; not taken per the shop's "
                    "options: give its stock back by hand if it returns"
                )
                continue
            cancel_key = f"order-cancel\x1f{shop.id}\x1f{order.order_no}\x1f{line.line_no}"
            if status in MOVED and stock.claim_key(tx, cancel_key, payload):
                _give_back(tx, shop.id, order.order_no, line.line_no)
            _set_status(tx, shop.id, order.order_no, line.line_no, "cancelled")
            changed = True
        elif status == "pending" and state == "new":
            _set_status(tx, shop.id, order.order_no, line.line_no, "allocated")
            changed = True
    if state != (known[0] if known else state):
        db.execute(
            "UPDATE orders SET mall_state = ? WHERE shop = ? AND order_no = ?",
            (state, shop.id, order.order_no),
        )
    if known is None and taken:
        _announce_new(tx, shop.id, order, received_at, new_lines)
    elif taken or changed:
        _refresh(tx, shop.id, order.order_no)
    outcome: OrderOutcome = "taken" if taken else "changed" if changed else "replayed"
    return OrderResult(
        order_no=order.order_no,
        outcome=outcome,
        reason="; ".join(notes),
        oversold=tuple(dict.fromkeys(oversold)),
    )


def _announce_new(
    tx: Tx,
    shop: str,
    order: MallOrder,
    received_at: str,
    lines: list[control.OrderLineDoc],
) -> None:
    """A new order's status and event, from what was just written (``_refresh`` reads it
    back: the same document)."""
    statuses = {line.status for line in lines}
    doc = control.OrderDoc(
        key=order_key(shop, order.order_no),
        shop=shop,
        order_no=order.order_no,
        status=next((s for s in _ATTENTION if s in statuses), "allocated"),
        mall_state=order.status,
        ordered_at=order.ordered_at,
        received_at=received_at,
        lines=tuple(sorted(lines, key=lambda line: line.line_no)),
    )
    if doc.status != "allocated":
        tx.db.execute(
            "UPDATE orders SET status = ? WHERE shop = ? AND order_no = ?",
            (doc.status, shop, order.order_no),
        )
    tx.publish(control.OrderChanged(order=doc))


def _arrival_status(shop: ShopSettings, sku: str, waiting: bool) -> control.OrderStatus:
    if not sku:
        return "unmatched"
    if shop.order_intake != "active":
        return "warning"
    return "pending" if waiting else "allocated"


def _line_ref(shop: str, order_no: str, line_no: int) -> str:
    return f"{shop}:{order_no}:{line_no}"


def _sell(
    tx: Tx, shop: str, order_no: str, line_no: int, sku: str, quantity: int, ordered_at: str
) -> list[str]:
    """Take a line's stock (a set's from its children, one journal row each) and count it
    in the sales pace of what was bought and what it took; returns the SKUs it oversold."""
    ref = _line_ref(shop, order_no, line_no)
    components = tx.db.execute(
        "SELECT child, qty FROM set_components WHERE parent = ?", (sku,)
    ).fetchall()
    moves = (
        [(child, qty * quantity, "set-component") for child, qty in components]
        if components
        else [(sku, quantity, "order")]
    )
    # what was bought (a set) and what it took
    sold = [(code, units) for code, units, _ in moves]
    pace.record(tx, [(sku, quantity), *sold] if components else sold, ordered_at)
    oversold = []
    for code, units, reason in moves:
        _, after = stock.move(tx, code, "expected", -units, reason, ref)
        if after < 0:
            oversold.append(code)
            tx.db.execute(
                "INSERT INTO oversells(at, sku, expected, shop, ref) VALUES (?, ?, ?, ?, ?)",
                (tx.now(), code, after, shop, ref),
            )
            tx.publish(control.Oversell(sku=code, expected=after, shop=shop, ref=ref))
    return oversold


def _give_back(tx: Tx, shop: str, order_no: str, line_no: int) -> None:
    """Reverse exactly what the line's sale took (a set redefined since gives back what it
    took then), one journal row per SKU with reason ``cancel``."""
    ref = _line_ref(shop, order_no, line_no)
    taken = tx.db.execute(
        "SELECT e.sku, sum(e.delta) FROM journal_entries e JOIN journal_contexts c "
        "ON c.id = e.context WHERE c.ref = ? AND c.reason IN ('order', 'set-component') "
        "AND e.field = 'expected' GROUP BY e.sku ORDER BY min(e.id)",
        (ref,),
    ).fetchall()
    for code, delta in taken:
        if delta:
            stock.move(tx, code, "expected", -delta, "cancel", ref)


def _set_status(
    tx: Tx, shop: str, order_no: str, line_no: int, status: control.OrderStatus
) -> None:
    tx.db.execute(
        "UPDATE order_lines SET status = ? WHERE shop = ? AND order_no = ? AND line_no = ?",
        (status, shop, order_no, line_no),
    )


def _refresh(tx: Tx, shop: str, order_no: str) -> None:
    """The order's status from its lines, and its event."""
    doc = _order(tx, shop, order_no)
    tx.db.execute(
        "UPDATE orders SET status = ? WHERE shop = ? AND order_no = ?",
        (doc.status, shop, order_no),
    )
    tx.publish(control.OrderChanged(order=doc))


# --- unmatched lines, apply, dismiss ---------------------------------------------------------


def rematch(tx: Tx) -> None:
    """Take the unmatched lines that map to a SKU by now (a listing or a SKU was added), as
    their shop's intake mode says."""
    waiting = tx.db.execute(
        "SELECT l.shop, l.order_no, l.line_no, l.item_id, l.variation, l.choices, l.quantity, "
        "o.mall_state, o.ordered_at "
        "FROM order_lines l JOIN orders o ON o.shop = l.shop AND o.order_no = l.order_no "
        "WHERE l.status = 'unmatched' ORDER BY l.shop, l.order_no, l.line_no"
    ).fetchall()
    if not waiting:
        return
    settings = {shop.id: shop for shop in shops.all_shops(tx)}
    refreshed: set[tuple[str, str]] = set()
    for (
        shop_id,
        order_no,
        line_no,
        item_id,
        variation,
        choices,
        quantity,
        mall_state,
        ordered_at,
    ) in waiting:
        shop = settings[shop_id]
        sku = listings.sku_for_item(
            tx,
            shop,
            item_id,
            tuple(msgspec.json.decode(variation)),
            None,
            tuple(msgspec.json.decode(choices)),
        )
        if not sku:
            continue
        status = _arrival_status(shop, sku, mall_state in ("pending", "unpaid"))
        tx.db.execute(
            "UPDATE order_lines SET sku = ?, status = ? WHERE shop = ? AND order_no = ? "
            "AND line_no = ?",
            (sku, status, shop_id, order_no, line_no),
        )
        if status in MOVED:
            _sell(tx, shop_id, order_no, line_no, sku, quantity, ordered_at)
        refreshed.add((shop_id, order_no))
    for shop_id, order_no in sorted(refreshed):
        _refresh(tx, shop_id, order_no)


def order_apply(tx: Tx, command: control.OrderApply) -> control.OrderReply:
    shop_id, order_no = split_key(command.key)
    shop = shops.get(tx, shop_id)
    doc = _order(tx, shop_id, order_no)
    waiting = _mall_state(tx, shop_id, order_no) in ("pending", "unpaid")
    applied = 0
    still_unmatched = []
    for line in doc.lines:
        sku = line.sku
        if line.status == "unmatched":
            sku = listings.sku_for_item(tx, shop, line.item_id, line.variation, None, line.choices)
            if not sku:
                still_unmatched.append(line.line_no)
                continue
        elif line.status != "warning":
            continue
        status: control.OrderStatus = "pending" if waiting else "allocated"
        tx.db.execute(
            "UPDATE order_lines SET sku = ?, status = ? WHERE shop = ? AND order_no = ? "
            "AND line_no = ?",
            (sku, status, shop_id, order_no, line.line_no),
        )
        _sell(tx, shop_id, order_no, line.line_no, sku, line.quantity, doc.ordered_at)
        applied += 1
    if not applied:
        unmatched = (
            f"; line(s) {', '.join(map(str, still_unmatched))} map to no SKU yet: map them with "
            "'zaiko listings import' first"
            if still_unmatched
            else ""
        )
        raise DomainError(
            "refused", f"order {command.key} has no line waiting to be applied{unmatched}", "key"
        )
    _refresh(tx, shop_id, order_no)
    return control.OrderReply(id=command.id, order=_order(tx, shop_id, order_no))


def order_dismiss(tx: Tx, command: control.OrderDismiss) -> control.OrderReply:
    shop_id, order_no = split_key(command.key)
    _order(tx, shop_id, order_no)
    dismissed = tx.db.execute(
        "UPDATE order_lines SET status = 'dismissed' WHERE shop = ? AND order_no = ? "
        "AND status IN ('warning', 'unmatched')",
        (shop_id, order_no),
    ).rowcount
    if not dismissed:
        raise DomainError(
            "refused", f"order {command.key} has no warning or unmatched line to dismiss", "key"
        )
    _refresh(tx, shop_id, order_no)
    return control.OrderReply(id=command.id, order=_order(tx, shop_id, order_no))


# --- reading ------------------------------------------------------------------------------


def _mall_state(tx: Tx, shop: str, order_no: str) -> str:
    found = tx.db.execute(
        "SELECT mall_state FROM orders WHERE shop = ? AND order_no = ?", (shop, order_no)
    ).fetchone()
    return str(found[0]) if found else ""


def _order(tx: Tx, shop: str, order_no: str) -> control.OrderDoc:
    found = tx.db.execute(
        "SELECT mall_state, ordered_at, received_at FROM orders WHERE shop = ? AND order_no = ?",
        (shop, order_no),
    ).fetchone()
    if found is None:
        raise DomainError("not_found", f"unknown order {order_key(shop, order_no)}", "key")
    mall_state, ordered_at, received_at = found
    lines = tuple(
        control.OrderLineDoc(
            line_no=line_no,
            item_id=item_id,
            variation=tuple(msgspec.json.decode(variation)),
            sku=sku,
            quantity=quantity,
            status=status,
            name=name,
            choices=tuple(msgspec.json.decode(choices)),
        )
        for line_no, item_id, variation, sku, quantity, status, name, choices in tx.db.execute(
            "SELECT line_no, item_id, variation, sku, quantity, status, name, choices "
            "FROM order_lines "
            "WHERE shop = ? AND order_no = ? ORDER BY line_no",
            (shop, order_no),
        )
    )
    statuses = {line.status for line in lines}
    return control.OrderDoc(
        key=order_key(shop, order_no),
        shop=shop,
        order_no=order_no,
        status=next((s for s in _ATTENTION if s in statuses), "allocated"),
        mall_state=mall_state,
        ordered_at=ordered_at,
        received_at=received_at,
        lines=lines,
    )


def order_show(tx: Tx, command: control.OrderShow) -> control.OrderReply:
    shop, order_no = split_key(command.key)
    return control.OrderReply(id=command.id, order=_order(tx, shop, order_no))


def orders_list(tx: Tx, command: control.OrdersList) -> control.OrdersReply:
    limit = max(1, min(command.limit, ORDERS_LIST_MAX))
    if command.shop:
        shops.get(tx, command.shop)
    after_shop, _, after_order = command.after.partition(":")
    statuses = command.statuses or _ATTENTION
    marks = ", ".join("?" * len(statuses))
    rows = tx.db.execute(
        "SELECT DISTINCT shop, order_no FROM order_lines "
        f"WHERE status IN ({marks}) AND (? = '' OR shop = ?) AND (shop, order_no) > (?, ?) "
        "ORDER BY shop, order_no LIMIT ?",
        (*statuses, command.shop, command.shop, after_shop, after_order, limit + 1),
    ).fetchall()
    orders = tuple(_order(tx, shop, order_no) for shop, order_no in rows[:limit])
    next_after = orders[-1].key if len(rows) > limit else None
    return control.OrdersReply(id=command.id, orders=orders, next_after=next_after)


def intake_status(tx: Tx, shop: ShopSettings) -> control.IntakeStatus:
    """What the ledger knows of a shop's intake; its actor adds backlog, quarantine, errors."""
    (last,) = tx.db.execute(
        "SELECT max(received_at) FROM orders WHERE shop = ?", (shop.id,)
    ).fetchone()
    (taken_today,) = tx.db.execute(
        "SELECT count(*) FROM orders WHERE shop = ? AND received_at >= ?",
        (shop.id, _midnight(tx.now(), shop.timezone)),
    ).fetchone()
    waiting = dict(
        tx.db.execute(
            "SELECT status, count(*) FROM order_lines WHERE shop = ? "
            "AND status IN ('warning', 'unmatched') GROUP BY status",
            (shop.id,),
        ).fetchall()
    )
    return control.IntakeStatus(
        last_intake=last or "",
        taken_today=taken_today,
        unmatched=waiting.get("unmatched", 0),
        warnings=waiting.get("warning", 0),
    )


def _midnight(now: str, zone: str) -> str:
    """The start of today in the shop's time zone, as the journal writes times (UTC)."""
    moment = datetime.fromisoformat(now).astimezone(ZoneInfo(zone))
    return stamp(datetime.combine(moment.date(), time(), tzinfo=moment.tzinfo))
