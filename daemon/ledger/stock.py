"""Stock counts and their journal: every change of expected, actual or reserve is one
journal entry, chained to the SKU's previous one; idempotency keys make a retried change
apply once.

Journal storage: what a change shares with the others of its command (time, reason,
reference, actor) is one ``journal_contexts`` row per command and cause; each change is a
short ``journal_entries`` row whose ``prev`` points at the same SKU's previous entry, with
the newest in ``stock.journal_head``. A 1,000,000-row import then only appends (an index on
(sku, id) measured 2.5x the append). The view ``journal`` shows every row whole.
"""

from __future__ import annotations

import hashlib

import msgspec

from daemon.ledger import catalog, outbox
from daemon.ledger.tx import DomainError, Tx
from protocols import control, quantity
from protocols.sku import MAX_QUANTITY, quantity_problem

JOURNAL_LIMIT_MAX = 1000


def check_count(field: str, value: int, request_field: str) -> None:
    """A value an operator sets: within 0..MAX_QUANTITY, as imports require."""
    if (problem := quantity_problem(value)) is not None:
        raise DomainError("invalid", f"{field}: {problem}", request_field)


def level(tx: Tx, code: str) -> control.StockLevel:
    """A SKU's counts; a set's expected is what its children can make."""
    return _level_and_sets(tx, code)[0]


def _level_and_sets(tx: Tx, code: str) -> tuple[control.StockLevel, list[str]]:
    """A SKU's counts and the sets it is a component of, in one statement for a plain SKU
    (this runs for every SKU a command touched: every order line)."""
    found = tx.db.execute(
        "SELECT k.is_set, s.expected, s.actual, s.reserve, s.registered, "
        "(SELECT group_concat(parent, char(31)) FROM set_components WHERE child = k.code) "
        "FROM skus k LEFT JOIN stock s ON s.sku = k.code WHERE k.code = ?",
        (code,),
    ).fetchone()
    if found is None:
        raise DomainError("not_found", f"unknown SKU {code!r}", "code")
    is_set, expected, actual, reserve, registered, parents = found
    sets = parents.split("\x1f") if parents else []
    if not is_set:
        return control.StockLevel(
            code=code,
            expected=expected,
            actual=actual,
            reserve=reserve,
            registered=bool(registered),
        ), sets
    return _set_level(tx, code), sets


def _set_level(tx: Tx, code: str) -> control.StockLevel:
    """A set's expected is what its children can make."""
    children = tx.db.execute(
        "SELECT s.expected, s.reserve, c.qty, s.registered FROM set_components c "
        "JOIN stock s ON s.sku = c.child WHERE c.parent = ?",
        (code,),
    ).fetchall()
    return control.StockLevel(
        code=code,
        expected=quantity.set_expected((e, r, q) for e, r, q, _ in children),
        actual=0,
        reserve=0,
        registered=bool(children) and all(reg for *_, reg in children),
        is_set=True,
    )


def move(
    tx: Tx, code: str, field: control.StockField, delta: int, reason: str, ref: str
) -> tuple[int, int]:
    """Change one stock field by delta and journal it; returns (before, after)."""
    if delta:
        # the entry is made from the stock row itself: one statement fewer per change
        head, before = tx.db.execute(
            "INSERT INTO journal_entries(context, sku, field, delta, before, after, prev) "
            f"SELECT ?, sku, ?, ?, {field}, {field} + ?, journal_head FROM stock WHERE sku = ? "
            "RETURNING id, before",
            (journal_context(tx, reason, ref), field, delta, delta, code),
        ).fetchone()
    else:
        before, head = tx.db.execute(
            f"SELECT {field}, journal_head FROM stock WHERE sku = ?", (code,)
        ).fetchone()
    after = before + delta
    registered = ", registered = 1" if field == "expected" else ""
    tx.db.execute(
        f"UPDATE stock SET {field} = ?, journal_head = ?{registered} WHERE sku = ?",
        (after, head, code),
    )
    note_touched(tx, code, reason, ref)
    return before, after


def note_touched(tx: Tx, code: str, reason: str, ref: str) -> None:
    """Note a changed SKU; its level (and its sets') is read once, when the command ends."""
    tx.touched[code] = (reason, ref)


def journal_context(tx: Tx, reason: str, ref: str) -> int:
    """The journal context of this command's changes for (reason, ref) and its actor."""
    key = (reason, ref, tx.actor)
    context = tx.contexts.get(key)
    if context is None:
        cursor = tx.db.execute(
            "INSERT INTO journal_contexts(at, reason, ref, actor) VALUES (?, ?, ?, ?)",
            (tx.now(), reason, ref, tx.actor),
        )
        context = tx.contexts[key] = cursor.lastrowid or 0
    return context


def command_events(tx: Tx) -> list[control.Event]:
    """The command's events: one StockChanged per SKU it touched and per set it moved, then
    the others in the order they were raised."""
    changed: list[control.Event] = []
    sets: dict[str, str] = {}
    for code, (reason, ref) in tx.touched.items():
        stock_level, parents = _level_and_sets(tx, code)
        changed.append(control.StockChanged(stock=stock_level, reason=reason, ref=ref))
        for parent in parents:
            sets[parent] = ref
    changed.extend(
        control.StockChanged(stock=level(tx, parent), reason="set-component", ref=ref)
        for parent, ref in sets.items()
        if parent not in tx.touched
    )
    outbox.mark(tx, [*tx.touched, *sets])
    return changed + tx.events


def claim_key(tx: Tx, key: str, payload: object) -> bool:
    """Record an idempotency key; False when it was already applied with this payload, a
    refusal when it was applied with another."""
    digest = hashlib.sha256(msgspec.json.encode(payload)).hexdigest()
    if tx.db.execute(
        "INSERT INTO idempotency(key, payload_hash, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        (key, digest, tx.now()),
    ).rowcount:
        return True
    found = tx.db.execute("SELECT payload_hash FROM idempotency WHERE key = ?", (key,)).fetchone()
    if found[0] != digest:
        raise DomainError(
            "conflict", f"key {key!r} was already used with a different payload", "key"
        )
    return False


def stock_change(tx: Tx, command: control.StockSet | control.StockAdd) -> control.StockReply:
    """``stock set`` / ``stock add``: a manual change, never below zero nor above the range."""
    _, is_set = catalog.row(tx, command.code)
    if is_set:
        raise DomainError(
            "refused",
            f"{command.code} is a set product: it has no stock of its own; change its children",
            "code",
        )
    if isinstance(command, control.StockSet):
        if command.value < 0:
            raise DomainError("refused", f"{command.field} cannot be set below zero", "value")
        check_count(command.field, command.value, "value")
    elif abs(command.delta) > MAX_QUANTITY:
        raise DomainError(
            "invalid",
            f"{command.field}: a change of {command.delta} is beyond ±{MAX_QUANTITY:,}",
            "delta",
        )
    if command.key:
        payload = (
            type(command).__name__,
            command.code,
            command.field,
            command.value if isinstance(command, control.StockSet) else command.delta,
        )
        if not claim_key(tx, f"manual\x1f{command.key}", payload):
            return control.StockReply(id=command.id, stock=level(tx, command.code), replayed=True)
    current = getattr(level(tx, command.code), command.field)
    if isinstance(command, control.StockSet):
        if command.if_was is not None and current != command.if_was:
            raise DomainError(
                "conflict",
                f"{command.code}: {command.field} is {current} now, not {command.if_was} as "
                "read (a sale or an import changed it since): nothing changed; look again and "
                "set it anew, or add the difference instead",
                "if_was",
            )
        delta = command.value - current
    else:
        delta = command.delta
        if current + delta < 0 and delta < 0:
            raise DomainError(
                "refused",
                f"{command.field} would fall to {current + delta}: manual changes never go below zero",
                "delta",
            )
        if current + delta > MAX_QUANTITY and delta > 0:
            raise DomainError(
                "refused",
                f"{command.field} would rise to {current + delta}, above {MAX_QUANTITY:,}",
                "delta",
            )
    # setting expected to the value it has still registers the stock (move marks it)
    move(tx, command.code, command.field, delta, "manual", command.key)
    return control.StockReply(id=command.id, stock=level(tx, command.code))


def journal_of(tx: Tx, code: str, limit: int) -> tuple[control.JournalRow, ...]:
    """A SKU's newest journal rows, newest first, along its chain of entries."""
    return tuple(
        control.JournalRow(*found)
        for found in tx.db.execute(
            "WITH RECURSIVE chain(id, n) AS (SELECT journal_head, 1 FROM stock "
            "WHERE sku = :sku AND journal_head IS NOT NULL UNION ALL SELECT e.prev, n + 1 "
            "FROM chain JOIN journal_entries e ON e.id = chain.id "
            "WHERE e.prev IS NOT NULL AND n < :limit) "
            "SELECT j.id, j.at, j.sku, j.field, j.delta, j.before, j.after, j.reason, j.ref, "
            "j.actor FROM chain JOIN journal j ON j.id = chain.id WHERE :limit > 0 "
            "ORDER BY j.id DESC",
            {"sku": code, "limit": max(0, min(limit, JOURNAL_LIMIT_MAX))},
        )
    )


def invariant_violations(tx: Tx) -> list[str]:
    """SKUs whose journal deltas do not sum to their stock (SPEC §2 invariant), or whose
    journal chain is broken."""
    bad: list[str] = []
    for field in ("expected", "actual", "reserve"):
        rows = tx.db.execute(
            f"SELECT s.sku, s.{field}, coalesce(j.total, 0) FROM stock s LEFT JOIN "
            f"(SELECT sku, sum(delta) AS total FROM journal_entries WHERE field = '{field}' "
            f"GROUP BY sku) j ON j.sku = s.sku WHERE s.{field} != coalesce(j.total, 0)"
        )
        bad.extend(f"{sku} {field}: stock {value}, journal {total}" for sku, value, total in rows)
    # each SKU's entries form one chain, newest at its head
    bad.extend(
        f"{sku}: journal entry {entry} links to {prev}, not {previous}"
        for sku, entry, prev, previous in tx.db.execute(
            "SELECT sku, id, prev, previous FROM (SELECT sku, id, prev, lag(id) OVER "
            "(PARTITION BY sku ORDER BY id) AS previous FROM journal_entries) "
            "WHERE prev IS NOT previous"
        )
    )
    bad.extend(
        f"{sku}: journal head {head}, newest entry {newest}"
        for sku, head, newest in tx.db.execute(
            "SELECT s.sku, s.journal_head, j.newest FROM stock s LEFT JOIN (SELECT sku, "
            "max(id) AS newest FROM journal_entries GROUP BY sku) j ON j.sku = s.sku "
            "WHERE s.journal_head IS NOT j.newest"
        )
    )
    return bad
