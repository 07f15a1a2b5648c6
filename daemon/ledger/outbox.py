"""The outbox (SPEC §3.2–3.5): per shop and linked SKU, the quantity the shop is to show (its
target, from ``protocols.quantity.shop_target``), what was last pushed and when, and the units
sold at that shop since (so what it still shows: pushed − sold).

Every write path that can change a target marks it, in its own transaction: a SKU whose stock,
set composition or listing changed goes to ``outbox_dirty``; a shop whose settings changed to
``outbox_dirty_shops``. At the end of each batch the engine refreshes what was marked
(``refresh``), a bounded amount at a time, so that a 100,000-row import never holds the
ledger for the whole recomputation: the rest is done by the next batches. A row is
``pending`` while the shop does not show its target (or, with ``reflect_to_origin``, was not
sent it; latest value wins: the target is overwritten, never queued), and ``urgent`` when it
must go out at once (``urgent_push``: it fell below what the shop shows). A push reads the pending rows with their
``version`` and acknowledges with it: a row that changed meanwhile stays pending.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgspec

from daemon.commands import PushItem
from daemon.ledger import shops
from daemon.ledger.tx import DomainError, Tx
from protocols import control, quantity
from protocols.malls import capability
from protocols.settings import ShopSettings, min_shown_of, order_lag_s, reach_s

# (shop, SKU) targets computed per batch at most: the rest waits for the next batch
REFRESH_BUDGET = 20_000
_CHUNK = 400  # SKUs per query (SQLite's host parameters)


def mark(tx: Tx, codes: Iterable[str]) -> None:
    """These SKUs' targets may have changed, for every shop."""
    tx.db.executemany(
        "INSERT INTO outbox_dirty(sku) VALUES (?) ON CONFLICT DO NOTHING",
        ((code,) for code in codes),
    )


def mark_journal(tx: Tx, first: int, last: int) -> None:
    """The SKUs of journal entries ``first..last`` (an import) and their sets; nothing when
    no shop takes stock."""
    if not _stock_shops(tx):
        return
    tx.db.execute(
        "INSERT INTO outbox_dirty(sku) SELECT sku FROM journal_entries WHERE id BETWEEN ? AND ? "
        "AND field != 'actual' ON CONFLICT DO NOTHING",
        (first, last),
    )
    tx.db.execute(
        "INSERT INTO outbox_dirty(sku) SELECT DISTINCT c.parent FROM journal_entries e "
        "JOIN set_components c ON c.child = e.sku WHERE e.id BETWEEN ? AND ? "
        "AND e.field != 'actual' ON CONFLICT DO NOTHING",
        (first, last),
    )


def mark_batch(tx: Tx, table: str) -> None:
    """The SKUs (column ``code``) of an import's batch table; nothing when no shop takes
    stock."""
    if _stock_shops(tx):
        tx.db.execute(
            f"INSERT INTO outbox_dirty(sku) SELECT code FROM {table} WHERE true "
            "ON CONFLICT DO NOTHING"
        )


def mark_paced(tx: Tx) -> None:
    """The SKUs sold lately: their floors follow how late a sale reaches zaiko."""
    tx.db.execute(
        "INSERT INTO outbox_dirty(sku) SELECT DISTINCT sku FROM recent_sales WHERE true "
        "ON CONFLICT DO NOTHING"
    )


def mark_shop(tx: Tx, shop: str) -> None:
    """Every SKU's target at this shop may have changed (a setting, its listings)."""
    tx.db.execute(
        "INSERT INTO outbox_dirty_shops(shop) VALUES (?) ON CONFLICT DO UPDATE SET after = ''",
        (shop,),
    )


# A file waits on the mall's server until its batch job runs (minutes; no mall publishes
# when): a sale placed within this of the upload may have been overwritten by the file.
FILE_APPLY_LAG_S = 15 * 60.0


def sold_at(tx: Tx, shop: ShopSettings, sku: str, units: int, placed_at: str) -> None:
    """The shop sold ``units`` of the SKU: it shows that many fewer (the mall counted them
    down itself), until it is sent a quantity again. A sale placed before the last push
    reached the mall was overwritten by it (the quantity sent did not know of the sale): it
    is not counted, so the shop is taken to show what it was sent, and the sale's drop goes
    out at once. An API mall applies a push when it answers (its acknowledgement); a file
    mall when its batch runs, which may be ``FILE_APPLY_LAG_S`` later. When the order of the
    two is not certain, the sale is not counted (the drop is sent again rather than not at
    all)."""
    lag_days = (FILE_APPLY_LAG_S if shop.transport == "ftp" else 0.0) / 86400
    tx.db.execute(
        "UPDATE outbox SET sold = sold + ? WHERE shop = ? AND sku = ? "
        "AND julianday(?) > julianday(pushed_at) + ?",
        (units, shop.id, sku, placed_at, lag_days),
    )
    mark(tx, (sku,))


def forget_sent(tx: Tx, shop: str, codes: Sequence[str]) -> None:
    """What the shop was sent for these SKUs no longer counts (they are sold as another mall
    item now): they are pending until it is sent again."""
    # a push in flight to the old item is acknowledged as uncertain: its version moved
    tx.db.executemany(
        "UPDATE outbox SET pushed = NULL, sold = 0, pending = 1, version = version + 1 "
        "WHERE shop = ? AND sku = ?",
        ((shop, code) for code in codes),
    )
    mark(tx, codes)


def has_work(tx: Tx) -> bool:
    """Whether marks are left to compute."""
    found: int = tx.db.execute(
        "SELECT EXISTS (SELECT 1 FROM outbox_dirty) OR EXISTS (SELECT 1 FROM outbox_dirty_shops)"
    ).fetchone()[0]
    return found == 1


def refresh(tx: Tx, budget: int = REFRESH_BUDGET) -> bool:
    """Recompute the targets that were marked, about ``budget`` (shop, SKU) pairs at most;
    announce each shop that has new pending rows (``PushesPending``). True when marks are
    left for the next batch."""
    if not has_work(tx):  # most batches: no shop's settings decoded for nothing
        return False
    db = tx.db
    every_shop = shops.all_shops(tx)
    stock_shops = _taking_stock(every_shop)
    order_lag = order_lag_s(every_shop)
    by_id = {s.id: s for s in stock_shops}
    announced: dict[str, bool] = {}
    # SKUs first: an order's marks (urgent pushes) never wait behind a shop's whole sweep
    while budget > 0 and stock_shops:
        codes = [
            code
            for (code,) in db.execute(
                "SELECT sku FROM outbox_dirty LIMIT ?",
                (max(1, min(_CHUNK, budget // len(stock_shops))),),
            )
        ]
        if not codes:
            break
        _compute(tx, stock_shops, codes, announced, order_lag)
        db.execute(f"DELETE FROM outbox_dirty WHERE sku IN ({_marks(codes)})", codes)
        budget -= len(codes) * len(stock_shops)
    for shop_id, after in db.execute("SELECT shop, after FROM outbox_dirty_shops").fetchall():
        shop = by_id.get(shop_id)
        if shop is None:  # gone, or a mall that takes no stock
            db.execute("DELETE FROM outbox WHERE shop = ?", (shop_id,))
            db.execute("DELETE FROM outbox_dirty_shops WHERE shop = ?", (shop_id,))
            continue
        while budget > 0:
            codes = [
                code
                for (code,) in db.execute(
                    "SELECT code FROM skus WHERE code > ? ORDER BY code LIMIT ?",
                    (after, min(budget, _CHUNK)),
                )
            ]
            if not codes:
                db.execute("DELETE FROM outbox_dirty_shops WHERE shop = ?", (shop_id,))
                break
            _compute(tx, [shop], codes, announced, order_lag)
            budget -= len(codes)
            after = codes[-1]
            db.execute("UPDATE outbox_dirty_shops SET after = ? WHERE shop = ?", (after, shop_id))
        if budget <= 0:
            break
    if not stock_shops:
        db.execute("DELETE FROM outbox_dirty")
    _announce(tx, announced)
    return has_work(tx)


def refresh_sku(tx: Tx, code: str) -> None:
    """Compute one SKU's targets now, if it is marked or this command changed it (``sku
    show``, and the reply of a command that changed it)."""
    marked = tx.db.execute("SELECT 1 FROM outbox_dirty WHERE sku = ?", (code,)).fetchone()
    if marked is None and code not in tx.touched:
        return
    announced: dict[str, bool] = {}
    every_shop = shops.all_shops(tx)
    _compute(tx, _taking_stock(every_shop), [code], announced, order_lag_s(every_shop))
    tx.db.execute("DELETE FROM outbox_dirty WHERE sku = ?", (code,))
    _announce(tx, announced)


def _stock_shops(tx: Tx) -> list[ShopSettings]:
    """The shops whose mall takes stock from zaiko."""
    return _taking_stock(shops.all_shops(tx))


def _taking_stock(every_shop: Sequence[ShopSettings]) -> list[ShopSettings]:
    return [s for s in every_shop if capability(s.mall).stock_out]


def _announce(tx: Tx, announced: dict[str, bool]) -> None:
    """Each shop with new pending rows (and whether one is urgent), to its reflector."""
    for shop_id, urgent in announced.items():
        tx.publish(control.PushesPending(shop=shop_id, urgent=urgent))


@dataclass(frozen=True)
class _Row:
    target: int
    pushed: int | None
    sold: int
    pending: bool
    urgent: bool
    uncertain: bool = False


def _compute(
    tx: Tx,
    stock_shops: Sequence[ShopSettings],
    codes: list[str],
    announced: dict[str, bool],
    order_lag: int,
) -> None:
    """The targets of these SKUs at these shops (``order_lag``: ``order_lag_s`` of every
    shop, for the pace floor)."""
    db = tx.db
    levels = _levels(tx, codes)
    marks = _marks(codes)
    paces = paces_of(tx, codes)
    listed = {
        (shop, sku): bool(linked)
        for shop, sku, linked in db.execute(
            f"SELECT shop, sku, linked FROM listings WHERE sku IN ({marks})", codes
        )
    }
    rows = {
        (shop, sku): _Row(target, pushed, sold, bool(pending), bool(urgent), bool(uncertain))
        for shop, sku, target, pushed, sold, pending, urgent, uncertain in db.execute(
            "SELECT shop, sku, target, pushed, sold, pending, urgent, uncertain FROM outbox "
            f"WHERE sku IN ({marks})",
            codes,
        )
    }
    upserts: list[tuple[str, str, int, int, int]] = []
    gone: list[tuple[str, str]] = []
    for shop in stock_shops:
        for code in codes:
            row = rows.get((shop.id, code))
            level = levels.get(code)
            if level is None or not listed.get((shop.id, code), shop.listing_mode == "all"):
                if row is not None:
                    gone.append((shop.id, code))
                continue
            target, pending, urgent = _target(shop, level, row, paces.get(code, 0), order_lag)
            if row is not None and (row.target, row.pending, row.urgent) == (
                target,
                pending,
                urgent,
            ):
                continue
            upserts.append((shop.id, code, target, int(pending), int(urgent)))
            if pending and (row is None or not row.pending or (urgent and not row.urgent)):
                announced[shop.id] = announced.get(shop.id, False) or urgent
    if upserts:
        db.executemany(
            "INSERT INTO outbox(shop, sku, target, pending, urgent) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT DO UPDATE SET target = excluded.target, pending = excluded.pending, "
            "urgent = excluded.urgent, version = version + 1",
            upserts,
        )
    if gone:
        db.executemany("DELETE FROM outbox WHERE shop = ? AND sku = ?", gone)


def _target(
    shop: ShopSettings,
    level: tuple[int, int],
    row: _Row | None,
    sold_lately: int,
    order_lag: int,
) -> tuple[int, bool, bool]:
    """The target, and whether it is pending (the shop does not show it; or, with
    ``reflect_to_origin``, it was not sent it) and urgent (below what the shop shows)."""
    expected, reserve = level
    pushed, sold = (row.pushed, row.sold) if row is not None else (None, 0)
    shown = None if pushed is None else pushed - sold
    target = quantity.shop_target(
        expected,
        reserve,
        shop.distribution_rate,
        floor=floor_of(shop, sold_lately, order_lag),
        trickle_quantity=shop.trickle.quantity if shop.trickle.enabled else None,
        refill_at=shop.trickle.refill_at,
        shown=shown,
    )
    # what the shop shows must be the target; a shop sent the orders it took itself
    # (reflect_to_origin) is also sent a change its own sale made
    pending = (
        shown is None
        or target != shown
        or (shop.reflect_to_origin and target != pushed)
        or (row is not None and row.uncertain)
    )
    urgent = pending and shop.urgent_push and shown is not None and target < shown
    return target, pending, urgent


def floor_of(shop: ShopSettings, sold_lately: int, order_lag: int) -> int:
    """The shop's floor for a SKU of this pace (``order_lag``: ``order_lag_s`` of every
    shop)."""
    return quantity.floor(min_shown_of(shop), sold_lately, reach_s(shop, order_lag))


def paces_of(tx: Tx, codes: Sequence[str]) -> dict[str, int]:
    """Each SKU's units sold in the pace window (``ledger.pace``), a set's at least what its
    children's pace makes of it (their last units are the set's); SKUs with none left out."""
    paces = _sold_lately(tx, codes)
    components = tx.db.execute(
        f"SELECT parent, child, qty FROM set_components WHERE parent IN ({_marks(codes)})", codes
    ).fetchall()
    if components:
        children = _sold_lately(tx, list({child for _, child, _ in components}))
        for parent, child, qty in components:
            if made := children.get(child, 0) // qty:
                paces[parent] = max(paces.get(parent, 0), made)
    return paces


def _sold_lately(tx: Tx, codes: Sequence[str]) -> dict[str, int]:
    return dict(
        tx.db.execute(
            f"SELECT sku, sum(units) FROM recent_sales WHERE sku IN ({_marks(codes)}) GROUP BY sku",
            codes,
        ).fetchall()
    )


def _levels(tx: Tx, codes: list[str]) -> dict[str, tuple[int, int]]:
    """(expected, reserve) of each SKU; a set's expected is what its children can make (its
    reserve 0). A SKU that no longer exists is left out."""
    marks = _marks(codes)
    levels: dict[str, tuple[int, int]] = {}
    sets: list[str] = []
    for code, is_set, expected, reserve in tx.db.execute(
        "SELECT k.code, k.is_set, coalesce(s.expected, 0), coalesce(s.reserve, 0) "
        f"FROM skus k LEFT JOIN stock s ON s.sku = k.code WHERE k.code IN ({marks})",
        codes,
    ):
        if is_set:
            sets.append(code)
        else:
            levels[code] = (expected, reserve)
    if sets:
        children: dict[str, list[tuple[int, int, int]]] = {code: [] for code in sets}
        for parent, expected, reserve, qty in tx.db.execute(
            "SELECT c.parent, s.expected, s.reserve, c.qty FROM set_components c "
            f"JOIN stock s ON s.sku = c.child WHERE c.parent IN ({_marks(sets)})",
            sets,
        ):
            children[parent].append((expected, reserve, qty))
        for parent, triples in children.items():
            levels[parent] = (quantity.set_expected(triples), 0)
    return levels


# --- what the reflectors read and acknowledge ---------------------------------------------


def pending(tx: Tx, shop: str, *, urgent_only: bool, after: str, limit: int) -> list[PushItem]:
    """The shop's pending rows after SKU ``after``, in SKU order."""
    which = "AND o.pending = 1 " + ("AND o.urgent = 1 " if urgent_only else "")
    return push_items(tx.db, shop, after, limit, which)


def push_items(
    db: sqlite3.Connection, shop: str, after: str, limit: int, which: str = ""
) -> list[PushItem]:
    """A shop's rows after SKU ``after``, in SKU order, as the mall is sent them (its
    listing's identifiers, else the SKU code as the item id); ``which`` narrows them (SQL)."""
    return [
        PushItem(sku, item_id, tuple(msgspec.json.decode(variation)), target, version, sold)
        for sku, item_id, variation, target, version, sold in db.execute(
            "SELECT o.sku, coalesce(nullif(l.item_id, ''), o.sku), coalesce(l.variation, '[]'), "
            "o.target, o.version, o.sold FROM outbox o LEFT JOIN listings l "
            "ON l.shop = o.shop AND l.sku = o.sku "
            f"WHERE o.shop = ? AND o.sku > ? {which}ORDER BY o.sku LIMIT ?",
            (shop, after, limit),
        )
    ]


def acknowledge(
    tx: Tx, shop: str, items: Sequence[PushItem], at: str, *, uncertain: bool = False
) -> None:
    """The shop received these quantities: it shows them, less what it sold since they were
    read. A row that changed since it was read (a sale, a newer target, a push that crossed
    this one; a bulk sync's snapshot is older still) was sent an older value, and which of
    the values the mall kept is not known (a feed applies minutes later; acknowledgements
    can cross): it is taken as showing what it was sent, and stays pending until a push read
    after the change is acknowledged. ``uncertain``: the mall may or may not have applied
    them (a feed that failed after it was submitted): each is treated so."""
    db = tx.db
    stale = "1" if uncertain else "version != :version"
    db.executemany(
        "UPDATE outbox SET pushed = :quantity, pushed_at = :at, "
        f"sold = CASE WHEN {stale} THEN 0 ELSE max(0, sold - :sold) END, "
        f"uncertain = {stale}, pending = {stale}, urgent = urgent AND {stale}, "
        f"version = version + ({stale}) WHERE shop = :shop AND sku = :sku",
        (
            {
                "quantity": i.quantity,
                "at": at,
                "sold": i.sold,
                "version": i.version,
                "shop": shop,
                "sku": i.sku,
            }
            for i in items
        ),
    )
    read = {i.sku: i.version for i in items}
    changed: list[str] = []
    for chunk in _chunks(list(read)):
        changed += [
            sku
            for sku, version in db.execute(
                f"SELECT sku, version FROM outbox WHERE shop = ? AND sku IN ({_marks(chunk)})",
                (shop, *chunk),
            )
            if uncertain or version != read[sku]
        ]
    mark(tx, changed)
    if changed:
        # its reflector may have read it before the change and missed the announcement
        (urgent,) = tx.db.execute(
            f"SELECT count(*) FROM outbox WHERE shop = ? AND urgent = 1 AND sku IN "
            f"({_marks(changed[:_CHUNK])})",
            (shop, *changed[:_CHUNK]),
        ).fetchone()
        tx.publish(control.PushesPending(shop=shop, urgent=urgent > 0))


def reflect_now(tx: Tx, command: control.ReflectNow) -> control.ReflectReply:
    """What the shop would be sent, per SKU with the formula's inputs; unless a dry run, the
    shop's reflector is told to send it now."""
    shop = shops.get(tx, command.shop)
    if not capability(shop.mall).stock_out:
        raise DomainError(
            "refused", f"shop {shop.id}: {shop.mall} takes no stock from zaiko", "shop"
        )
    if not command.dry_run and shop.reflect != "active":
        raise DomainError(
            "refused",
            f"shop {shop.id}: reflect is stopped; switch it on with "
            f"zaiko shops set {shop.id} reflect=active (or look with --dry-run)",
            "reflect",
        )
    # what is marked, within a batch's budget: a large import's marks may still be computed
    # over the next batches (the reply says so)
    behind = refresh(tx, REFRESH_BUDGET)
    which = "" if command.bulk else "AND o.pending = 1 "
    (count,) = tx.db.execute(
        f"SELECT count(*) FROM outbox o WHERE o.shop = ? {which}", (shop.id,)
    ).fetchone()
    found = tx.db.execute(
        "SELECT o.sku, coalesce(l.item_id, o.sku), coalesce(l.variation, '[]'), o.target, "
        "o.pushed, o.sold, o.urgent FROM outbox o LEFT JOIN listings l "
        f"ON l.shop = o.shop AND l.sku = o.sku WHERE o.shop = ? {which}"
        "ORDER BY o.sku LIMIT ?",
        (shop.id, command.limit),
    ).fetchall()
    levels = _levels(tx, [sku for sku, *_ in found]) if found else {}
    paces = paces_of(tx, [sku for sku, *_ in found]) if found else {}
    order_lag = order_lag_s(shops.all_shops(tx))
    trickle = shop.trickle.quantity if shop.trickle.enabled else None
    rows = tuple(
        control.ReflectRow(
            sku=sku,
            item_id=item_id,
            variation=tuple(msgspec.json.decode(variation)),
            target=target,
            expected=levels.get(sku, (0, 0))[0],
            reserve=levels.get(sku, (0, 0))[1],
            rate=shop.distribution_rate,
            pushed=pushed,
            shown=None if pushed is None else pushed - sold,
            trickle_quantity=trickle,
            refill_at=shop.trickle.refill_at,
            urgent=bool(urgent),
            floor=floor_of(shop, paces.get(sku, 0), order_lag),
        )
        for sku, item_id, variation, target, pushed, sold, urgent in found
    )
    if not command.dry_run:
        tx.publish(
            control.PushesPending(shop=shop.id, bulk=True)
            if command.bulk
            else control.PushesPending(shop=shop.id, now=True)
        )
    return control.ReflectReply(
        id=command.id,
        shop=shop.id,
        pending=count,
        rows=rows,
        sending=not command.dry_run,
        complete=not behind,
    )


def reflect_status(tx: Tx, shop: ShopSettings) -> control.ReflectStatus:
    """What the outbox knows of a shop: pending rows, of which urgent, and the last push."""
    if not capability(shop.mall).stock_out:
        return control.ReflectStatus()
    pending_count, urgent_count, last = tx.db.execute(
        "SELECT count(*), count(*) FILTER (WHERE urgent = 1), "
        "(SELECT coalesce(max(pushed_at), '') FROM outbox WHERE shop = :shop) "
        "FROM outbox WHERE shop = :shop AND pending = 1",
        {"shop": shop.id},
    ).fetchone()
    return control.ReflectStatus(last_push=last, pending=pending_count, urgent=urgent_count)


def rows_of(tx: Tx, code: str) -> dict[str, tuple[int, int | None, str, int, bool]]:
    """Each shop's row for a SKU: target, pushed, pushed at, sold since, pending."""
    return {
        shop: (target, pushed, pushed_at, sold, bool(pend))
        for shop, target, pushed, pushed_at, sold, pend in tx.db.execute(
            "SELECT shop, target, pushed, pushed_at, sold, pending FROM outbox WHERE sku = ?",
            (code,),
        )
    }


def _chunks(codes: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(codes), _CHUNK):
        yield codes[start : start + _CHUNK]


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values))
