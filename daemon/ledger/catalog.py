"""Products: registering SKUs one by one, reading one SKU whole, listing them."""

from __future__ import annotations

import sqlite3

from daemon.ledger import listings, orders, stock
from daemon.ledger.tx import DomainError, Tx
from protocols import control
from protocols.sku import MAX_CODE_LENGTH, code_problem, name_problem


def check_code(code: str, field: str = "code") -> None:
    """The SKU-code rule of ``protocols.sku``, as a refusal naming the field."""
    problem = code_problem(code)
    if problem is not None:
        shown = repr(code if len(code) <= MAX_CODE_LENGTH else code[:MAX_CODE_LENGTH] + "…")
        raise DomainError(
            "invalid", f"SKU code {shown}: {problem}" if code else "SKU code is empty", field
        )


class KnownCodes:
    """``code in known`` asked of the database, for the zero-padding hint."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __contains__(self, code: object) -> bool:
        return exists(self._db, str(code))


def exists(db: sqlite3.Connection, code: str) -> bool:
    return db.execute("SELECT 1 FROM skus WHERE code = ?", (code,)).fetchone() is not None


def row(tx: Tx, code: str) -> tuple[str, bool]:
    """(name, is_set) of a SKU; an unknown one is refused."""
    found = tx.db.execute("SELECT name, is_set FROM skus WHERE code = ?", (code,)).fetchone()
    if found is None:
        raise DomainError("not_found", f"unknown SKU {code!r}", "code")
    return found[0], bool(found[1])


def sku_add(tx: Tx, command: control.SkuAdd) -> control.SkuReply:
    check_code(command.code)
    if (problem := name_problem(command.name)) is not None:
        raise DomainError("invalid", f"the name {problem}", "name")
    stock.check_count("reserve", command.reserve, "reserve")
    if exists(tx.db, command.code):
        raise DomainError("conflict", f"SKU {command.code!r} already exists", "code")
    tx.db.execute(
        "INSERT INTO skus(code, name, created_at) VALUES (?, ?, ?)",
        (command.code, command.name, tx.now()),
    )
    tx.db.execute("INSERT INTO stock(sku) VALUES (?)", (command.code,))
    if command.reserve:
        stock.move(tx, command.code, "reserve", command.reserve, "manual", "")
    else:
        stock.note_touched(tx, command.code, "sku-added", "")
    orders.rematch(tx)
    return control.SkuReply(id=command.id, sku=detail(tx, command.code, 20))


def detail(tx: Tx, code: str, journal_limit: int) -> control.SkuDetail:
    """A SKU whole: stock, set composition, each shop's quantity, newest journal rows."""
    name, _ = row(tx, code)
    level = stock.level(tx, code)
    children = tuple(
        control.SetChild(code=c, qty=q)
        for c, q in tx.db.execute(
            "SELECT child, qty FROM set_components WHERE parent = ? ORDER BY child", (code,)
        )
    )
    parents = tuple(
        p
        for (p,) in tx.db.execute(
            "SELECT parent FROM set_components WHERE child = ? ORDER BY parent", (code,)
        )
    )
    return control.SkuDetail(
        code=code,
        name=name,
        stock=level,
        children=children,
        parents=parents,
        shops=listings.shop_quantities(tx, code, level),
        journal=stock.journal_of(tx, code, journal_limit),
    )


def like_literal(text: str) -> str:
    """``text`` for a LIKE pattern with ESCAPE '\\': its ``%`` and ``_`` match only themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def sku_list(tx: Tx, command: control.SkuList) -> control.SkuListReply:
    limit = max(1, min(command.limit, 10_000))
    # the prefix as a range of the primary key: codes are case-sensitive (LIKE is not), and
    # a range reads only the codes it names (this runs on the ledger's thread)
    in_range, bounds = "k.code > ? AND k.code >= ?", [command.after, command.prefix]
    if command.prefix:
        in_range += " AND k.code < ?"
        bounds.append(command.prefix + "\U0010ffff")
    rows = tx.db.execute(
        "SELECT k.code, k.name, k.is_set, coalesce(s.expected, 0), coalesce(s.actual, 0), "
        "coalesce(s.reserve, 0) FROM skus k LEFT JOIN stock s ON s.sku = k.code "
        f"WHERE {in_range} AND k.name LIKE ? ESCAPE '\\' ORDER BY k.code LIMIT ?",
        (*bounds, f"%{like_literal(command.name)}%", limit + 1),
    ).fetchall()
    skus = []
    for code, name, is_set, expected, actual, reserve in rows[:limit]:
        if is_set:
            expected = stock.level(tx, code).expected
        skus.append(
            control.SkuSummary(
                code=code,
                name=name,
                expected=expected,
                actual=actual,
                reserve=reserve,
                is_set=bool(is_set),
            )
        )
    next_after = skus[-1].code if len(rows) > limit else None
    return control.SkuListReply(id=command.id, skus=tuple(skus), next_after=next_after)
