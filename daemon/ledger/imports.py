"""Stock and catalog files applied in one transaction, batch by batch as a parser thread
hands them over (``daemon.stockfiles.ParsedFile``): all valid rows, or, when refused (an
all-or-nothing failure, a dry run), none.

Each batch is JSON that SQLite reads itself (``json_each``) into a TEMP table beside each
SKU's current count; it is checked there, journaled and applied with set-based statements.
A uniform batch (``{code: value}``: every row takes the import's mode and target) is
journaled and moved in one pass over its new journal entries, the measured fast path of a
1,000,000-row import.
"""

from __future__ import annotations

from typing import Literal

from daemon.commands import ApplyImport, FinishJob
from daemon.ledger import audit, catalog, jobs, orders, outbox, stock
from daemon.ledger.jobs import MAX_ROW_ERRORS
from daemon.ledger.listings import LISTING_UPDATE
from daemon.ledger.tx import DomainError, Tx, Undo
from protocols import control, tempostar
from protocols.malls.base import RowError
from protocols.sku import MAX_QUANTITY

MAX_DRY_RUN_ROWS = 100_000


class RowFailures:
    """The rows the ledger refuses: all counted, the first ``MAX_ROW_ERRORS`` kept."""

    def __init__(self) -> None:
        self.count = 0
        self.kept: list[RowError] = []

    def add(self, error: RowError) -> None:
        self.count += 1
        if len(self.kept) < MAX_ROW_ERRORS:
            self.kept.append(error)


def apply_import(tx: Tx, command: ApplyImport) -> control.Job:
    """Apply a stock or catalog file in one transaction, batch by batch as it is parsed;
    either all valid rows or, when refused or a dry run, none. A dry run's job says what the
    real run would: the same counts and the same result."""
    start = command.start
    if start.kind == "audit":
        return audit.from_file(tx, command)
    if start.kind == "stock":
        success, failed, notes = _apply_stock(tx, command)
    else:
        success, failed, notes = _apply_catalog(tx, command)
    source = command.source
    if source.fatal:
        raise Undo(FinishJob(job=command.job, result="failed", failure=1, messages=(source.fatal,)))
    failure = source.errors + failed.count
    row_errors = sorted([*source.row_errors, *failed.kept], key=lambda error: error.line)
    row_messages: list[str | RowError] = list(row_errors[:MAX_ROW_ERRORS])
    if failure > len(row_messages):
        row_messages.append(f"… and {failure - len(row_messages):,} more failed rows")
    refused = start.all_or_nothing and failure > 0
    result: Literal["ok", "failed"] = (
        "failed" if refused or (success == 0 and failure > 0) else "ok"
    )
    messages: list[str | RowError] = []
    if refused:
        nothing = "nothing would be applied" if start.dry_run else "nothing was applied"
        messages.append(f"all-or-nothing: {failure} row(s) failed; {nothing}")
    messages += row_messages
    messages += source.notes
    if start.dry_run and not refused:
        messages += notes
    outcome = FinishJob(
        job=command.job,
        result=result,
        count=success + failure,
        success=0 if refused else success,
        failure=failure,
        messages=tuple(messages),
    )
    if refused or start.dry_run:
        # undo this command only: the job row is written after the rollback
        raise Undo(outcome)
    return jobs.finish(tx, outcome)


def _apply_stock(tx: Tx, command: ApplyImport) -> tuple[int, RowFailures, list[str]]:
    db = tx.db
    start = command.start
    # ``line`` is NULL in a uniform batch: its lines follow from ``pos``
    db.execute("DROP TABLE IF EXISTS temp.import_batch")
    db.execute(
        "CREATE TEMP TABLE import_batch (pos INTEGER PRIMARY KEY, line INTEGER, "
        "code TEXT NOT NULL, value INTEGER NOT NULL, reserve INTEGER, is_add INTEGER NOT NULL, "
        "is_actual INTEGER NOT NULL, item_id TEXT NOT NULL DEFAULT '', "
        "variation TEXT NOT NULL DEFAULT '[]', current INTEGER, current_reserve INTEGER, "
        "head INTEGER, registered INTEGER, "
        "new INTEGER AS (CASE is_add WHEN 1 THEN current + value ELSE value END))"
    )
    # Two lines that reach one SKU would journal twice what is set once: the later line
    # fails. The parser already refuses a code twice per target, so this can only happen
    # through listing mapping (--shop), or with a reserve on both lines of a per-row file.
    # ``what``: 0 expected, 1 actual, 2 reserve.
    seen_checks = []
    if start.shop:
        seen_checks.append("SELECT code, is_actual, line FROM temp.import_batch")
    if start.mode == "per-row":
        seen_checks.append("SELECT code, 2, line FROM temp.import_batch WHERE reserve IS NOT NULL")
    if seen_checks:
        db.execute("DROP TABLE IF EXISTS temp.import_seen")
        db.execute(
            "CREATE TEMP TABLE import_seen (code TEXT NOT NULL, what INTEGER NOT NULL, "
            "line INTEGER NOT NULL, PRIMARY KEY (code, what)) WITHOUT ROWID"
        )
    context = stock.journal_context(tx, "import", f"job:{command.job}")
    # --allow-negative: a TEMPOSTAR download's oversold items keep their negative 想定在庫数
    lowest_expected = -MAX_QUANTITY if start.allow_negative else 0
    (journal_from,) = db.execute("SELECT coalesce(max(id), 0) + 1 FROM journal_entries").fetchone()
    flags = {"is_add": start.mode == "add", "is_actual": start.target == "actual"}
    known = catalog.KnownCodes(db)
    success = 0
    failed = RowFailures()
    notes: list[str] = []
    for batch in command.source:
        if batch.uniform:
            # one statement: rows in, each with its SKU's current count
            staged = db.execute(
                "INSERT INTO temp.import_batch(code, value, is_add, is_actual, current, "
                "current_reserve, head, registered) SELECT j.key, j.value, :is_add, "
                ":is_actual, CASE :is_actual WHEN 1 THEN s.actual ELSE s.expected END, "
                "s.reserve, s.journal_head, s.registered "
                "FROM json_each(:rows) j LEFT JOIN stock s ON s.sku = j.key",
                {**flags, "rows": batch.rows},
            ).rowcount
        else:
            staged = db.execute(
                "INSERT INTO temp.import_batch(line, code, value, reserve, is_add, is_actual, "
                "item_id, variation) SELECT value->>0, value->>1, value->>2, value->>3, "
                "value->>4 = 'add', value->>5 = 'actual', coalesce(value->>6, ''), "
                "coalesce(value->>7, '[]') FROM json_each(?)",
                (batch.rows,),
            ).rowcount
            if start.shop:
                # by either identifier of the item; 商品管理番号 (item_id) wins, so it goes last
                for column in ("alt_item_id", "item_id"):
                    db.execute(
                        "UPDATE temp.import_batch SET code = l.sku FROM listings l "
                        f"WHERE l.shop = ? AND l.{column} = import_batch.item_id "
                        "AND import_batch.item_id != '' "
                        "AND l.variation = import_batch.variation",
                        (start.shop,),
                    )
            db.execute(
                "UPDATE temp.import_batch SET current = CASE is_actual WHEN 1 THEN s.actual "
                "ELSE s.expected END, current_reserve = s.reserve, head = s.journal_head, "
                "registered = s.registered FROM stock s WHERE s.sku = import_batch.code"
            )
        first = batch.first_line - 1
        bad: set[int] = set()
        if seen_checks:
            for check in seen_checks:
                # in line order, so that the first line of a code is the one kept
                db.execute(
                    f"INSERT INTO temp.import_seen(code, what, line) {check} ORDER BY line "
                    "ON CONFLICT DO NOTHING"
                )
            for pos, line, code, what, seen in db.execute(
                "SELECT b.pos, b.line, b.code, s.what, s.line FROM temp.import_batch b "
                "JOIN temp.import_seen s ON s.code = b.code AND s.line != b.line AND "
                "(s.what = b.is_actual OR (s.what = 2 AND b.reserve IS NOT NULL)) "
                "ORDER BY b.line"
            ).fetchall():
                if pos in bad:
                    continue
                updates = ("its expected", "its actual", "its reserve")[what]
                failed.add(
                    RowError(
                        line=line,
                        code=code,
                        reason=f"duplicate code: line {seen} already updates {updates}",
                    )
                )
                bad.add(pos)
        unregistered: list[tuple[str]] = []
        for pos, line, code, value, current, new, is_actual in db.execute(
            "SELECT pos, coalesce(line, ? + pos), code, value, current, new, is_actual "
            "FROM temp.import_batch WHERE current IS NULL "
            "OR new < CASE is_actual WHEN 0 THEN ? ELSE 0 END OR new > ? "
            "OR (registered = 0 AND is_actual = 0 AND new = current) ORDER BY pos",
            (first, lowest_expected, MAX_QUANTITY),
        ).fetchall():
            if pos in bad:
                continue
            lowest = 0 if is_actual else lowest_expected
            if current is not None and lowest <= new <= MAX_QUANTITY:
                # valid but unchanged, so not journaled: its stock still becomes registered
                unregistered.append((code,))
                continue
            if current is None:
                is_set = db.execute("SELECT is_set FROM skus WHERE code = ?", (code,)).fetchone()
                failed.add(
                    tempostar.unknown_sku_error(line, code, known)
                    if is_set is None
                    else RowError(
                        line=line,
                        code=code,
                        reason="a set product has no stock of its own; import its children",
                    )
                )
            else:
                sign = "-" if value < 0 else "+"
                limit = "below 0" if new < 0 else f"above {MAX_QUANTITY}"
                hint = (
                    "; --allow-negative takes 想定在庫数 below 0"
                    if new < 0 and not is_actual
                    else ""
                )
                failed.add(
                    RowError(
                        line=line,
                        code=code,
                        reason=f"result {limit}: {current} {sign} {abs(value)} = {new}{hint}",
                    )
                )
            bad.add(pos)
        if bad:
            db.executemany("DELETE FROM temp.import_batch WHERE pos = ?", [(pos,) for pos in bad])
        if start.dry_run:
            if len(notes) < MAX_DRY_RUN_ROWS:
                notes.extend(_dry_run_notes(tx, first, MAX_DRY_RUN_ROWS - len(notes)))
        else:
            if start.allow_negative:
                _oversells(tx, start.shop, f"job:{command.job}")
            if batch.uniform:
                _write_uniform_batch(tx, context, start.target)
                db.executemany("UPDATE stock SET registered = 1 WHERE sku = ?", unregistered)
            else:
                _write_import_batch(tx, context)
        success += staged - len(bad)
        db.execute("DELETE FROM temp.import_batch")
    if success > MAX_DRY_RUN_ROWS and start.dry_run:
        notes.append(f"… and {success - MAX_DRY_RUN_ROWS} more rows")
    (journal_to,) = db.execute("SELECT coalesce(max(id), 0) FROM journal_entries").fetchone()
    if journal_to >= journal_from:
        outbox.mark_journal(tx, journal_from, journal_to)
        tx.publish(
            control.StockImported(
                job=command.job,
                changed=journal_to - journal_from + 1,
                journal_from=journal_from,
                journal_to=journal_to,
            )
        )
    db.execute("DROP TABLE temp.import_batch")
    db.execute("DROP TABLE IF EXISTS temp.import_seen")
    return success, failed, notes


def _oversells(tx: Tx, shop: str, ref: str) -> None:
    """An oversell row and event for each SKU the batch takes below 0 (``--allow-negative``),
    as a sale that takes it there raises one (``ledger.orders``)."""
    for code, new in tx.db.execute(
        "SELECT code, new FROM temp.import_batch WHERE is_actual = 0 AND new < 0 "
        "AND new != current ORDER BY pos"
    ).fetchall():
        tx.db.execute(
            "INSERT INTO oversells(at, sku, expected, shop, ref) VALUES (?, ?, ?, ?, ?)",
            (tx.now(), code, new, shop, ref),
        )
        tx.publish(control.Oversell(sku=code, expected=new, shop=shop, ref=ref))


def _dry_run_notes(tx: Tx, first: int, limit: int) -> list[str]:
    notes = []
    for line, code, is_actual, current, new, current_reserve, reserve in tx.db.execute(
        "SELECT coalesce(line, ? + pos), code, is_actual, current, new, current_reserve, "
        "reserve FROM temp.import_batch ORDER BY pos LIMIT ?",
        (first, limit),
    ):
        field = "actual" if is_actual else "expected"
        change = f"line {line} [{code}] {field} {current} → {new}"
        if reserve is not None and reserve != current_reserve:
            change += f", reserve {current_reserve} → {reserve}"
        notes.append(change)
    return notes


def _write_uniform_batch(tx: Tx, context: int, target: tempostar.ImportTarget) -> None:
    """Journal and apply a uniform batch: one entry per changed SKU, and one pass over
    the new entries (consecutive ids, read in rowid order) that moves each SKU's count
    and chain head."""
    db = tx.db
    appended = db.execute(
        "INSERT INTO journal_entries(context, sku, field, delta, before, after, prev) "
        "SELECT ?, code, ?, new - current, current, new, head FROM temp.import_batch "
        "WHERE new != current ORDER BY pos",
        (context, target),
    )
    last = appended.lastrowid
    if appended.rowcount > 0 and last is not None:
        # an upsert, as UPDATE … FROM materializes its join first (measured 1.5x slower);
        # every entry's SKU has its stock row, so nothing is inserted
        registered = ", registered = 1" if target == "expected" else ""
        db.execute(
            f"INSERT INTO stock(sku, {target}, journal_head) SELECT sku, after, id "
            "FROM journal_entries WHERE id BETWEEN ? AND ? ON CONFLICT(sku) DO UPDATE SET "
            f"{target} = excluded.{target}, journal_head = excluded.journal_head{registered}",
            (last - appended.rowcount + 1, last),
        )


def _write_import_batch(tx: Tx, context: int) -> None:
    """Journal and apply the valid rows left in ``temp.import_batch``, where one SKU may
    have several entries (a per-row file's expected, actual and reserve)."""
    db = tx.db
    (first,) = db.execute("SELECT coalesce(max(id), 0) + 1 FROM journal_entries").fetchone()
    db.execute(
        "INSERT INTO journal_entries(context, sku, field, delta, before, after) "
        "SELECT ?, code, CASE is_actual WHEN 1 THEN 'actual' ELSE 'expected' END, "
        "new - current, current, new FROM temp.import_batch WHERE new != current ORDER BY pos",
        (context,),
    )
    db.execute(
        "INSERT INTO journal_entries(context, sku, field, delta, before, after) "
        "SELECT ?, code, 'reserve', reserve - current_reserve, current_reserve, reserve "
        "FROM temp.import_batch WHERE reserve IS NOT NULL AND reserve != current_reserve "
        "ORDER BY pos",
        (context,),
    )
    # chain the new entries: each to the SKU's previous new one, the first to its head
    db.execute(
        "UPDATE journal_entries SET prev = c.prev FROM (SELECT e.id, coalesce(lag(e.id) "
        "OVER (PARTITION BY e.sku ORDER BY e.id), s.journal_head) AS prev "
        "FROM journal_entries e JOIN stock s ON s.sku = e.sku WHERE e.id >= ?) c "
        "WHERE journal_entries.id = c.id",
        (first,),
    )
    db.execute(
        "INSERT INTO stock(sku, expected, registered) SELECT code, new, 1 "
        "FROM temp.import_batch WHERE is_actual = 0 ON CONFLICT(sku) DO UPDATE SET "
        "expected = excluded.expected, registered = 1"
    )
    db.execute(
        "UPDATE stock SET actual = r.new FROM temp.import_batch r "
        "WHERE r.is_actual = 1 AND stock.sku = r.code AND stock.actual != r.new"
    )
    db.execute(
        "UPDATE stock SET reserve = r.reserve FROM temp.import_batch r "
        "WHERE r.reserve IS NOT NULL AND stock.sku = r.code AND stock.reserve != r.reserve"
    )
    db.execute(
        "UPDATE stock SET journal_head = h.id FROM (SELECT sku, max(id) AS id "
        "FROM journal_entries WHERE id >= ? GROUP BY sku) h WHERE stock.sku = h.sku",
        (first,),
    )


def _apply_catalog(tx: Tx, command: ApplyImport) -> tuple[int, RowFailures, list[str]]:
    db = tx.db
    start = command.start
    db.execute("DROP TABLE IF EXISTS temp.catalog_batch")
    db.execute(
        "CREATE TEMP TABLE catalog_batch (line INTEGER PRIMARY KEY, code TEXT NOT NULL, "
        "name TEXT NOT NULL, item_id TEXT NOT NULL, variation TEXT NOT NULL, "
        "alt_item_id TEXT NOT NULL)"
    )
    # the catalog names products; a mall file's name may be an option label ("Ｓ ホワイト"),
    # so it only names SKUs it creates or that have no name yet
    on_conflict = (
        "DO UPDATE SET name = excluded.name WHERE excluded.name != '' AND skus.name != excluded.name"
        if start.format == "tempostar"
        else "DO UPDATE SET name = excluded.name WHERE excluded.name != '' AND skus.name = ''"
    )
    now = tx.now()
    success = new_skus = 0
    failed = RowFailures()
    for batch in command.source:
        db.execute(
            "INSERT INTO temp.catalog_batch SELECT value->>0, value->>1, value->>2, "
            "value->>3, value->>4, coalesce(value->>5, '') FROM json_each(?)",
            (batch.rows,),
        )
        bad: list[tuple[int]] = []
        for line, code in db.execute("SELECT line, code FROM temp.catalog_batch").fetchall():
            try:
                catalog.check_code(code)
            except DomainError as exc:
                failed.add(RowError(line=line, code=code[:64], reason=str(exc)))
                bad.append((line,))
        if start.shop:
            for line, code, listed in db.execute(
                "SELECT c.line, c.code, l.sku FROM temp.catalog_batch c JOIN listings l "
                "ON l.shop = ? AND l.item_id = c.item_id AND l.variation = c.variation "
                "WHERE l.sku != c.code",
                (start.shop,),
            ).fetchall():
                failed.add(
                    RowError(
                        line=line,
                        code=code,
                        reason=f"this item is already listed as SKU {listed} in shop {start.shop}",
                    )
                )
                bad.append((line,))
        db.executemany("DELETE FROM temp.catalog_batch WHERE line = ?", bad)
        (count, fresh) = db.execute(
            "SELECT count(*), count(*) FILTER (WHERE code NOT IN (SELECT code FROM skus)) "
            "FROM temp.catalog_batch"
        ).fetchone()
        success += count
        new_skus += fresh
        if not start.dry_run:
            _write_catalog_batch(tx, now, on_conflict, start.shop)
        db.execute("DELETE FROM temp.catalog_batch")
    db.execute("DROP TABLE temp.catalog_batch")
    if not start.dry_run and success:
        orders.rematch(tx)
    return success, failed, [f"{new_skus} new SKU(s), {success - new_skus} existing"]


def _write_catalog_batch(tx: Tx, now: str, on_conflict: str, shop: str) -> None:
    db = tx.db
    db.execute(
        "INSERT INTO skus(code, name, created_at) SELECT code, name, ? "
        f"FROM temp.catalog_batch WHERE true ON CONFLICT(code) {on_conflict}",
        (now,),
    )
    # set parents have no stock row
    db.execute(
        "INSERT INTO stock(sku) SELECT c.code FROM temp.catalog_batch c JOIN skus k "
        "ON k.code = c.code WHERE k.is_set = 0 ON CONFLICT(sku) DO NOTHING"
    )
    # new SKUs are linked where listing_mode is all; a mall file's listings link them there
    outbox.mark_batch(tx, "temp.catalog_batch")
    if shop:
        db.execute(
            "INSERT INTO listings(shop, sku, item_id, variation, linked, alt_item_id) "
            "SELECT ?, code, item_id, variation, 1, alt_item_id FROM temp.catalog_batch "
            f"WHERE item_id != '' ON CONFLICT(shop, sku) DO UPDATE SET {LISTING_UPDATE}",
            (shop,),
        )
