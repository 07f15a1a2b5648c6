"""Set products (セット商品): a parent made of children with a quantity each, no nesting. The
parent has no stock of its own; what it can make follows from its children."""

from __future__ import annotations

from daemon.ledger import catalog, listings, orders, outbox, shops, stock
from daemon.ledger.tx import DomainError, Tx
from protocols import control
from protocols.malls import capability
from protocols.sku import quantity_problem


def set_add(tx: Tx, command: control.SetAdd) -> control.SkuReply:
    catalog.check_code(command.parent, "parent")
    if not command.children:
        raise DomainError("invalid", "a set needs at least one child", "children")
    codes = [child.code for child in command.children]
    if len(set(codes)) != len(codes):
        raise DomainError("invalid", "a child is listed twice", "children")
    if command.parent in codes:
        raise DomainError("invalid", "a set cannot contain itself", "children")
    db = tx.db
    if db.execute("SELECT 1 FROM set_components WHERE child = ?", (command.parent,)).fetchone():
        raise DomainError(
            "refused", f"{command.parent} is a child of a set; sets do not nest", "parent"
        )
    existing = db.execute("SELECT is_set FROM skus WHERE code = ?", (command.parent,)).fetchone()
    if existing is not None:
        if existing[0]:
            raise DomainError("conflict", f"{command.parent} is already a set", "parent")
        parent = stock.level(tx, command.parent)
        (history,) = db.execute(
            "SELECT journal_head IS NOT NULL FROM stock WHERE sku = ?", (command.parent,)
        ).fetchone() or (False,)
        # its stock row goes, and with it the head of its journal chain
        if parent.registered or parent.expected or parent.actual or parent.reserve or history:
            raise DomainError(
                "refused",
                f"{command.parent} has stock of its own or a stock journal; a set parent has none",
                "parent",
            )
    for child in command.children:
        if child.qty < 1:
            raise DomainError("invalid", f"quantity of {child.code} must be at least 1", "children")
        if (problem := quantity_problem(child.qty)) is not None:
            raise DomainError("invalid", f"quantity of {child.code}: {problem}", "children")
        _, child_is_set = catalog.row(tx, child.code)
        if child_is_set:
            raise DomainError(
                "refused", f"{child.code} is itself a set; sets do not nest", "children"
            )
    if existing is None:
        db.execute(
            "INSERT INTO skus(code, name, is_set, created_at) VALUES (?, ?, 1, ?)",
            (command.parent, command.name, tx.now()),
        )
    else:
        db.execute("UPDATE skus SET is_set = 1 WHERE code = ?", (command.parent,))
        db.execute("DELETE FROM stock WHERE sku = ?", (command.parent,))
    db.executemany(
        "INSERT INTO set_components(parent, child, qty) VALUES (?, ?, ?)",
        [(command.parent, c.code, c.qty) for c in command.children],
    )
    tx.publish(control.StockChanged(stock=stock.level(tx, command.parent), reason="set-defined"))
    outbox.mark(tx, (command.parent,))
    check_origin_rule(tx)
    orders.rematch(tx)
    return control.SkuReply(id=command.id, sku=catalog.detail(tx, command.parent, 20))


def check_origin_rule(tx: Tx) -> None:
    """SPEC §3.1: no set product may be linked to a shop with reflect_to_origin=false (the
    shop's own count would drift)."""
    for shop in shops.all_shops(tx):
        if not capability(shop.mall).stock_out:
            continue  # an intake-only mall is sent no quantity: nothing of it can drift
        if not shop.reflect_to_origin and listings.has_linked_sets(tx, shop):
            raise DomainError(
                "refused",
                f"shop {shop.id} has reflect_to_origin=false: a set product linked to it would "
                "make its count drift; unlink the set there, or set reflect_to_origin=true",
                "reflect_to_origin",
            )
