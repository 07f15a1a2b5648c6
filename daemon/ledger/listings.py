"""Listings: per shop and SKU, the mall's identifiers and the link flag (連動 / 停止中), and
what each shop is to be sent for a SKU.

A mall item (and variation) is one SKU of a shop (a unique index): orders and mall files
map through it. Under ``listing_mode = "all"`` every SKU is linked unless a listing row
unlinks it; under ``"explicit"`` only SKUs with a linked listing row are.
"""

from __future__ import annotations

import msgspec

from daemon.ledger import catalog, orders, sets, shops
from daemon.ledger.tx import DomainError, Tx
from protocols import control, quantity
from protocols.malls import capability, module
from protocols.settings import ShopSettings


def linked_clause(shop: ShopSettings) -> str:
    """SQL true for a SKU ``k`` linked to the shop ``:shop``."""
    if shop.listing_mode == "all":
        return (
            "NOT EXISTS (SELECT 1 FROM listings l WHERE l.shop = :shop AND l.sku = k.code "
            "AND l.linked = 0)"
        )
    return (
        "EXISTS (SELECT 1 FROM listings l WHERE l.shop = :shop AND l.sku = k.code AND l.linked = 1)"
    )


def has_linked_sets(tx: Tx, shop: ShopSettings) -> bool:
    sql = f"SELECT 1 FROM skus k WHERE k.is_set = 1 AND {linked_clause(shop)} LIMIT 1"
    return tx.db.execute(sql, {"shop": shop.id}).fetchone() is not None


def _unregistered_sql(shop: ShopSettings) -> str:
    """Linked SKUs that would be pushed as 0: never registered, or sets with such a child."""
    return (
        "SELECT k.code FROM skus k LEFT JOIN stock s ON s.sku = k.code WHERE "
        "(s.registered = 0 OR (k.is_set = 1 AND EXISTS (SELECT 1 FROM set_components c "
        "JOIN stock cs ON cs.sku = c.child WHERE c.parent = k.code AND cs.registered = 0))) "
        f"AND {linked_clause(shop)}"
    )


def linked_unregistered(tx: Tx, shop: ShopSettings, limit: int) -> tuple[str, ...]:
    sql = f"{_unregistered_sql(shop)} ORDER BY k.code LIMIT {int(limit)}"
    return tuple(code for (code,) in tx.db.execute(sql, {"shop": shop.id}))


def count_linked_unregistered(tx: Tx, shop: ShopSettings) -> int:
    sql = f"SELECT count(*) FROM ({_unregistered_sql(shop)})"
    count: int = tx.db.execute(sql, {"shop": shop.id}).fetchone()[0]
    return count


def sku_for_item(
    tx: Tx,
    shop: ShopSettings,
    item_id: str,
    variation: tuple[str, ...],
    default_sku: str | None,
) -> str:
    """The SKU a shop's mall item (and variation) maps to: its listing row, else the mall's
    default rule (``default_sku``, or the mall module's ``join_sku``) when that SKU exists;
    empty when neither. An unlinked listing still maps: linking is about what is pushed."""
    found = tx.db.execute(
        "SELECT sku FROM listings WHERE shop = ? AND item_id = ? AND variation = ?",
        (shop.id, item_id, msgspec.json.encode(variation).decode()),
    ).fetchone()
    if found is not None:
        return str(found[0])
    sku: str = (
        default_sku if default_sku is not None else module(shop.mall).join_sku(item_id, variation)
    )
    return sku if sku and catalog.exists(tx.db, sku) else ""


def listings_import(tx: Tx, command: control.ListingsImport) -> control.ListingsReply:
    """A shop's listing overrides, all rows or none."""
    shops.get(tx, command.shop)
    problems = []
    items: dict[tuple[str, str], str] = {}
    for index, row in enumerate(command.rows, start=1):
        variation = msgspec.json.encode(row.variation).decode()
        if not catalog.exists(tx.db, row.sku):
            problems.append(f"row {index} [{row.sku}]: unknown SKU")
        elif not row.item_id:
            problems.append(f"row {index} [{row.sku}]: empty mall item id")
        elif (other := items.get((row.item_id, variation))) is not None:
            problems.append(
                f"row {index} [{row.sku}]: item {row.item_id} {variation} is also given to {other}"
            )
        else:
            items[(row.item_id, variation)] = row.sku
            listed = tx.db.execute(
                "SELECT sku FROM listings WHERE shop = ? AND item_id = ? AND variation = ? AND sku != ?",
                (command.shop, row.item_id, variation, row.sku),
            ).fetchone()
            if listed and listed[0] not in {r.sku for r in command.rows}:
                problems.append(
                    f"row {index} [{row.sku}]: item {row.item_id} {variation} is listed as SKU {listed[0]}"
                )
    if problems:
        raise DomainError(
            "invalid",
            f"{len(problems)} of {len(command.rows)} listing rows refused; nothing imported",
            "rows",
            details=problems[:100],
        )
    # rows that move an item from one SKU to another: clear the old places first
    tx.db.executemany(
        "DELETE FROM listings WHERE shop = ? AND item_id = ? AND variation = ? AND sku != ?",
        [(command.shop, item, variation, sku) for (item, variation), sku in items.items()],
    )
    tx.db.executemany(
        "INSERT INTO listings(shop, sku, item_id, variation, linked) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT(shop, sku) DO UPDATE SET item_id = excluded.item_id, "
        "variation = excluded.variation, linked = excluded.linked",
        [
            (command.shop, r.sku, r.item_id, msgspec.json.encode(r.variation).decode(), r.linked)
            for r in command.rows
        ],
    )
    sets.check_origin_rule(tx)
    orders.rematch(tx)
    tx.publish(control.ListingsChanged(shop=command.shop, rows=len(command.rows)))
    return control.ListingsReply(id=command.id, imported=len(command.rows))


def shop_quantities(
    tx: Tx, code: str, level: control.StockLevel
) -> tuple[control.ShopQuantity, ...]:
    """What each shop that takes stock is to be sent for this SKU (SPEC §3.2–3.4)."""
    listed = {
        shop: (item_id, tuple(msgspec.json.decode(variation)), bool(linked))
        for shop, item_id, variation, linked in tx.db.execute(
            "SELECT shop, item_id, variation, linked FROM listings WHERE sku = ?", (code,)
        )
    }
    quantities = []
    for shop in shops.all_shops(tx):
        if not capability(shop.mall).stock_out:
            continue  # an intake-only mall (ヤフオク!) is never sent a quantity
        item_id, variation, linked = listed.get(shop.id, ("", (), shop.listing_mode == "all"))
        trickle = shop.trickle.quantity if shop.trickle.enabled else None
        target = quantity.shop_target(
            level.expected,
            level.reserve,
            shop.distribution_rate,
            trickle_quantity=trickle,
            refill_at=shop.trickle.refill_at,
        )
        quantities.append(
            control.ShopQuantity(
                shop=shop.id,
                linked=linked,
                target=target if linked else 0,
                item_id=item_id,
                variation=variation,
            )
        )
    return tuple(quantities)
