"""Listings: per shop and SKU, the mall's identifiers and the link flag (連動 / 停止中), and
what each shop is to be sent for a SKU.

A mall item (and variation) is one SKU of a shop (a unique index): orders and mall files
map through it. Under ``listing_mode = "all"`` every SKU is linked unless a listing row
unlinks it; under ``"explicit"`` only SKUs with a linked listing row are.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from daemon.ledger import catalog, orders, outbox, sets, shops
from daemon.ledger.tx import DomainError, Tx
from protocols import control, quantity
from protocols.listings import code_prefixes, match_by_choices, variation_key
from protocols.malls import capability, module
from protocols.malls.base import identifier
from protocols.settings import ShopSettings, order_lag_s

# ON CONFLICT(shop, sku): the listing takes the row's identifiers; the item's other
# identifier is kept when the row names the same item without one.
LISTING_UPDATE = (
    "item_id = excluded.item_id, variation = excluded.variation, "
    "alt_item_id = CASE WHEN excluded.alt_item_id != '' THEN excluded.alt_item_id "
    "WHEN excluded.item_id = listings.item_id THEN listings.alt_item_id ELSE '' END"
)


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
    choices: Sequence[str] = (),
) -> str:
    """The SKU an order line of a shop's mall item maps to: its listing (``listed_sku``),
    else the mall's default rule (``default_sku``, or the mall module's ``join_sku``) when
    that SKU exists; empty when neither. An unlinked listing still maps: linking is about
    what is pushed, not what was sold."""
    listed = _listed(tx, shop, item_id, variation, choices)
    if listed is not None:
        return listed
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
        variation = variation_key(row.variation)
        if not catalog.exists(tx.db, row.sku):
            problems.append(f"row {index} [{row.sku}]: unknown SKU")
        elif not identifier(row.item_id):
            problems.append(f"row {index} [{row.sku}]: empty mall item id")
        elif (other := items.get((identifier(row.item_id), variation))) is not None:
            problems.append(
                f"row {index} [{row.sku}]: item {row.item_id} {variation} is also given to {other}"
            )
        else:
            items[(identifier(row.item_id), variation)] = row.sku
            listed = tx.db.execute(
                "SELECT sku FROM listings WHERE shop = ? AND item_id = ? AND variation = ? AND sku != ?",
                (command.shop, identifier(row.item_id), variation, row.sku),
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
    moved_from = [
        sku
        for (item, variation), sku in items.items()
        for (sku,) in tx.db.execute(
            "SELECT sku FROM listings WHERE shop = ? AND item_id = ? AND variation = ? "
            "AND sku != ?",
            (command.shop, item, variation, sku),
        )
    ]
    affected = sorted({r.sku for r in command.rows} | set(moved_from))
    before = _mall_items(tx, command.shop, affected)
    tx.db.executemany(
        "DELETE FROM listings WHERE shop = ? AND item_id = ? AND variation = ? AND sku != ?",
        [(command.shop, item, variation, sku) for (item, variation), sku in items.items()],
    )
    tx.db.executemany(
        "INSERT INTO listings(shop, sku, item_id, variation, linked, alt_item_id) "
        "VALUES (?, ?, ?, ?, ?, ?) "
        f"ON CONFLICT(shop, sku) DO UPDATE SET {LISTING_UPDATE}, linked = excluded.linked",
        [
            (
                command.shop,
                r.sku,
                identifier(r.item_id),
                variation_key(r.variation),
                r.linked,
                identifier(r.alt_item_id),
            )
            for r in command.rows
        ],
    )
    # a SKU now sold as another mall item: that item was never sent its quantity
    after = _mall_items(tx, command.shop, affected)
    outbox.forget_sent(tx, command.shop, [sku for sku in affected if before[sku] != after[sku]])
    sets.check_origin_rule(tx)
    orders.rematch(tx)
    outbox.mark_shop(tx, command.shop)
    tx.publish(control.ListingsChanged(shop=command.shop, rows=len(command.rows)))
    return control.ListingsReply(id=command.id, imported=len(command.rows))


def _mall_items(tx: Tx, shop: str, codes: list[str]) -> dict[str, tuple[str, str] | None]:
    """The mall item each SKU is sent to at the shop (its own code without a listing row)."""
    found: dict[str, tuple[str, str] | None] = {code: (code, "[]") for code in codes}
    for start in range(0, len(codes), 500):
        part = codes[start : start + 500]
        marks = ", ".join("?" * len(part))
        for sku, item_id, variation, linked in tx.db.execute(
            f"SELECT sku, item_id, variation, linked FROM listings WHERE shop = ? "
            f"AND sku IN ({marks})",
            (shop, *part),
        ):
            found[sku] = (item_id, variation) if linked else None
    return found


def listed_sku(
    tx: Tx,
    shop_id: str,
    item_id: str,
    variation: Sequence[str] = (),
    choices: Sequence[str] = (),
) -> str | None:
    """The SKU a shop's mall item (and variation) is listed as, or None: then the mall's
    default rule decides (``OrderLine.sku``). What order intake asks of every line.

    The item is found by either of its identifiers (商品管理番号 or 商品番号, as an order mail
    prints it) and, where the mall says so, in the forms its printed code may stand for
    (Rakuten keeps 商品管理番号 in lower case). A line whose variation the printed code does
    not hold (a Rakuten choice whose 子番号 is empty) is matched by the choice names printed
    with it (``protocols.listings.match_by_choices``).
    """
    return _listed(tx, shops.get(tx, shop_id), item_id, variation, choices)


def _listed(
    tx: Tx,
    shop: ShopSettings,
    item_id: str,
    variation: Sequence[str],
    choices: Sequence[str],
) -> str | None:
    key = variation_key(variation)
    forms = tuple(
        dict.fromkeys(
            getattr(module(shop.mall), "item_id_forms", lambda code: (code,))(identifier(item_id))
        )
    )
    # one query for every form and both identifiers (it runs for every order line), then
    # the same precedence: a form's 商品管理番号, then its 商品番号, each only if unique
    marks = ", ".join("?" * len(forms))
    by_identifier: dict[tuple[str, int], list[str]] = {}
    for sku, item, alt in tx.db.execute(
        f"SELECT sku, item_id, '' FROM listings WHERE shop = ? AND item_id IN ({marks}) "
        f"AND variation = ? UNION ALL SELECT sku, '', alt_item_id FROM listings "
        f"WHERE shop = ? AND alt_item_id IN ({marks}) AND variation = ?",
        (shop.id, *forms, key, shop.id, *forms, key),
    ):
        by_identifier.setdefault((item, 0) if item else (alt, 1), []).append(sku)
    for item in forms:
        for column in (0, 1):
            listed_as = by_identifier.get((item, column), [])
            if len(listed_as) == 1:
                return listed_as[0]
        if choices:
            prefixes = code_prefixes(item)
            marks = ", ".join("?" * len(prefixes))
            listed = tx.db.execute(
                "SELECT item_id, alt_item_id, variation, sku FROM listings WHERE shop = ? "
                f"AND item_id IN ({marks}) UNION SELECT item_id, alt_item_id, variation, sku "
                f"FROM listings WHERE shop = ? AND alt_item_id IN ({marks})",
                (shop.id, *prefixes, shop.id, *prefixes),
            ).fetchall()
            found = match_by_choices(item, listed, choices)
            if found is not None:
                return found
    return None


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
    outbox.refresh_sku(tx, code)
    sent = outbox.rows_of(tx, code)
    paces = outbox.paces_of(tx, [code])
    quantities = []
    every_shop = shops.all_shops(tx)
    order_lag = order_lag_s(every_shop)
    for shop in every_shop:
        if not capability(shop.mall).stock_out:
            continue  # an intake-only mall (ヤフオク!) is never sent a quantity
        item_id, variation, linked = listed.get(shop.id, ("", (), shop.listing_mode == "all"))
        row = sent.get(shop.id)
        floor = outbox.floor_of(shop, paces.get(code, 0), order_lag)
        if row is None or not linked:
            # not computed yet (a large import's marks are computed over a few batches)
            target = quantity.shop_target(
                level.expected,
                level.reserve,
                shop.distribution_rate,
                floor=floor,
                trickle_quantity=shop.trickle.quantity if shop.trickle.enabled else None,
                refill_at=shop.trickle.refill_at,
            )
            quantities.append(
                control.ShopQuantity(
                    shop=shop.id,
                    linked=linked,
                    target=target if linked else 0,
                    item_id=item_id,
                    variation=variation,
                    pending=linked,
                    floor=floor,
                )
            )
            continue
        target, pushed, pushed_at, sold, pending = row
        quantities.append(
            control.ShopQuantity(
                shop=shop.id,
                linked=linked,
                target=target,
                item_id=item_id,
                variation=variation,
                pushed=pushed,
                pushed_at=pushed_at,
                shown=None if pushed is None else pushed - sold,
                pending=pending,
                floor=floor,
            )
        )
    return tuple(quantities)
