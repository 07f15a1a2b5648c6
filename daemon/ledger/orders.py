"""Orders taken from shops: each line applied once (key: shop, order, line), moving stock
when allocated (sets through their children), raising an oversell event when a sale takes
expected below zero — the sale already happened at the mall, so it is recorded anyway."""

from __future__ import annotations

from daemon.commands import OrderRecorded, RecordOrder
from daemon.ledger import catalog, shops, stock
from daemon.ledger.tx import DomainError, Tx
from protocols import control


def record_order(tx: Tx, command: RecordOrder) -> OrderRecorded:
    shop = shops.get(tx, command.shop)
    for line in command.lines:
        if line.quantity < 1:
            raise DomainError("invalid", f"line {line.line_no}: quantity must be at least 1")
        catalog.row(tx, line.sku)
    db = tx.db
    if not db.execute(
        "SELECT 1 FROM orders WHERE shop = ? AND order_no = ?", (shop.id, command.order_no)
    ).fetchone():
        db.execute(
            "INSERT INTO orders(shop, order_no, status, ordered_at, received_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (shop.id, command.order_no, command.status, command.ordered_at, tx.now()),
        )
    applied = replayed = 0
    oversold: list[str] = []
    for line in command.lines:
        key = f"order\x1f{shop.id}\x1f{command.order_no}\x1f{line.line_no}"
        # the status is part of the payload: a warning line sent again as allocated is a
        # conflict to resolve (orders apply), never a silent replay
        if not stock.claim_key(tx, key, (line.sku, line.quantity, line.item_id, command.status)):
            replayed += 1
            continue
        applied += 1
        db.execute(
            "INSERT INTO order_lines(shop, order_no, line_no, sku, item_id, quantity) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (shop.id, command.order_no, line.line_no, line.sku, line.item_id, line.quantity),
        )
        if command.status != "allocated":
            continue
        ref = f"{shop.id}:{command.order_no}:{line.line_no}"
        components = db.execute(
            "SELECT child, qty FROM set_components WHERE parent = ?", (line.sku,)
        ).fetchall()
        moves = (
            [(child, qty * line.quantity, "set-component") for child, qty in components]
            if components
            else [(line.sku, line.quantity, "order")]
        )
        for code, units, reason in moves:
            _, after = stock.move(tx, code, "expected", -units, reason, ref)
            if after < 0:
                oversold.append(code)
                db.execute(
                    "INSERT INTO oversells(at, sku, expected, shop, ref) VALUES (?, ?, ?, ?, ?)",
                    (tx.now(), code, after, shop.id, ref),
                )
                tx.publish(control.Oversell(sku=code, expected=after, shop=shop.id, ref=ref))
    return OrderRecorded(
        shop=shop.id,
        order_no=command.order_no,
        applied_lines=applied,
        replayed_lines=replayed,
        oversold=tuple(oversold),
    )
