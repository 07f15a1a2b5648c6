"""The database's schema: versioned migrations from an empty file to the current version.

``PRAGMA user_version`` is the number of migrations applied. A migration is SQL (statements
separated by ``;``) or a function of the connection, for changes SQL cannot say, such as
rewriting the stored shop settings when a setting is renamed or removed. Each migration runs
in its own transaction, so a crash leaves the file at the last complete version.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import msgspec

from protocols.listings import variation_key

log = logging.getLogger(__name__)

# imports read their batches with json_each and ->> (SQLite 3.38)
MIN_SQLITE = (3, 38)

Migration = str | Callable[[sqlite3.Connection], None]


class SchemaError(Exception):
    """The database cannot be used by this zaiko; the message says why and what to do."""


def _listing_identifiers(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE listings ADD COLUMN alt_item_id TEXT NOT NULL DEFAULT ''")
    db.execute("CREATE INDEX listings_alt_item ON listings(shop, alt_item_id)")
    rows = db.execute("SELECT shop, sku, variation FROM listings").fetchall()
    for shop, sku, variation in rows:
        key = variation_key(json.loads(variation))
        if key != variation:
            # two rows that become one variation keep the older form: logged, not lost
            changed = db.execute(
                "UPDATE OR IGNORE listings SET variation = ? WHERE shop = ? AND sku = ?",
                (key, shop, sku),
            ).rowcount
            if not changed:
                log.warning(
                    "listing %s/%s keeps variation %s (%s is taken)", shop, sku, variation, key
                )


MIGRATIONS: tuple[Migration, ...] = (
    """
    CREATE TABLE skus (
        code TEXT PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        is_set INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE stock (
        sku TEXT PRIMARY KEY REFERENCES skus(code),
        expected INTEGER NOT NULL DEFAULT 0,
        actual INTEGER NOT NULL DEFAULT 0,
        reserve INTEGER NOT NULL DEFAULT 0,
        registered INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE set_components (
        parent TEXT NOT NULL REFERENCES skus(code),
        child TEXT NOT NULL REFERENCES skus(code),
        qty INTEGER NOT NULL CHECK (qty >= 1),
        PRIMARY KEY (parent, child)
    ) WITHOUT ROWID;
    CREATE INDEX set_components_child ON set_components(child);
    CREATE TABLE shops (
        id TEXT PRIMARY KEY,
        mall TEXT NOT NULL,
        settings TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE shop_journal (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        shop TEXT NOT NULL,
        setting TEXT NOT NULL,
        before TEXT,
        after TEXT,
        actor TEXT NOT NULL
    );
    CREATE TABLE listings (
        shop TEXT NOT NULL REFERENCES shops(id),
        sku TEXT NOT NULL REFERENCES skus(code),
        item_id TEXT NOT NULL,
        variation TEXT NOT NULL DEFAULT '[]',
        linked INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (shop, sku)
    ) WITHOUT ROWID;
    CREATE INDEX listings_item ON listings(shop, item_id, variation);
    CREATE TABLE journal (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        sku TEXT NOT NULL,
        field TEXT NOT NULL CHECK (field IN ('expected', 'actual', 'reserve')),
        delta INTEGER NOT NULL,
        before INTEGER NOT NULL,
        after INTEGER NOT NULL,
        reason TEXT NOT NULL,
        ref TEXT NOT NULL DEFAULT '',
        actor TEXT NOT NULL
    );
    CREATE INDEX journal_sku ON journal(sku, id);
    CREATE TABLE idempotency (
        key TEXT PRIMARY KEY,
        payload_hash TEXT NOT NULL,
        at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE orders (
        shop TEXT NOT NULL,
        order_no TEXT NOT NULL,
        status TEXT NOT NULL,
        ordered_at TEXT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (shop, order_no)
    ) WITHOUT ROWID;
    CREATE TABLE order_lines (
        shop TEXT NOT NULL,
        order_no TEXT NOT NULL,
        line_no INTEGER NOT NULL,
        sku TEXT NOT NULL,
        item_id TEXT NOT NULL DEFAULT '',
        quantity INTEGER NOT NULL,
        cancelled INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (shop, order_no, line_no)
    ) WITHOUT ROWID;
    CREATE TABLE oversells (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        sku TEXT NOT NULL,
        expected INTEGER NOT NULL,
        shop TEXT NOT NULL,
        ref TEXT NOT NULL
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        shop TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT NOT NULL DEFAULT '',
        result TEXT NOT NULL DEFAULT '',
        count INTEGER NOT NULL DEFAULT 0,
        success INTEGER NOT NULL DEFAULT 0,
        failure INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE job_messages (
        job INTEGER NOT NULL REFERENCES jobs(id),
        seq INTEGER NOT NULL,
        message TEXT NOT NULL,
        PRIMARY KEY (job, seq)
    ) WITHOUT ROWID;
    """,
    """
    ALTER TABLE jobs ADD COLUMN detail TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN download_bytes INTEGER NOT NULL DEFAULT 0
    """,
    # a mall item (and variation) is one SKU of a shop: orders and imports map through it
    """
    DROP INDEX listings_item;
    CREATE UNIQUE INDEX listings_item ON listings(shop, item_id, variation)
    """,
    # What a change shares with the others of its command (time, reason, reference, actor) is
    # kept once per command, not on every journal row, and a SKU's entries are chained
    # (``prev``, newest in ``stock.journal_head``) instead of indexed by SKU: an import of
    # 1,000,000 rows then appends 1,000,000 short entries and touches no index (an index on
    # (sku, id) gets an insert in every one of its pages: measured 2.5x the append, growing
    # with the journal). The view ``journal`` shows every row whole, as before.
    """
    CREATE TABLE journal_contexts (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        reason TEXT NOT NULL,
        ref TEXT NOT NULL DEFAULT '',
        actor TEXT NOT NULL
    );
    CREATE TABLE journal_entries (
        id INTEGER PRIMARY KEY,
        context INTEGER NOT NULL,
        sku TEXT NOT NULL,
        field TEXT NOT NULL,
        delta INTEGER NOT NULL,
        before INTEGER NOT NULL,
        after INTEGER NOT NULL,
        prev INTEGER
    );
    INSERT INTO journal_contexts(at, reason, ref, actor)
        SELECT at, reason, ref, actor FROM journal GROUP BY at, reason, ref, actor ORDER BY min(id);
    CREATE INDEX journal_contexts_once ON journal_contexts(at, reason, ref, actor);
    INSERT INTO journal_entries(id, context, sku, field, delta, before, after, prev)
        SELECT j.id, c.id, j.sku, j.field, j.delta, j.before, j.after,
        lag(j.id) OVER (PARTITION BY j.sku ORDER BY j.id) FROM journal j
        JOIN journal_contexts c ON c.at = j.at AND c.reason = j.reason AND c.ref = j.ref
        AND c.actor = j.actor ORDER BY j.id;
    DROP INDEX journal_contexts_once;
    ALTER TABLE stock ADD COLUMN journal_head INTEGER;
    UPDATE stock SET journal_head = (SELECT max(id) FROM journal WHERE journal.sku = stock.sku);
    DROP TABLE journal;
    CREATE VIEW journal AS
        SELECT e.id, c.at, e.sku, e.field, e.delta, e.before, e.after, c.reason, c.ref, c.actor
        FROM journal_entries e JOIN journal_contexts c ON c.id = e.context
    """,
    # a row error keeps its fields beside its text (the JSON job carries them); a dry run is
    # marked as one, not only in the job's detail text
    """
    ALTER TABLE job_messages ADD COLUMN line INTEGER;
    ALTER TABLE job_messages ADD COLUMN code TEXT;
    ALTER TABLE job_messages ADD COLUMN field TEXT;
    ALTER TABLE job_messages ADD COLUMN reason TEXT;
    ALTER TABLE jobs ADD COLUMN dry_run INTEGER NOT NULL DEFAULT 0
    """,
    # a listing keeps the mall's other identifier of its item (Rakuten 商品番号 beside
    # 商品管理番号: order mails print it); variations are stored without trailing empty
    # components (protocols.listings.variation_key)
    _listing_identifiers,
    # order intake: each line has its own status (one order may have an allocated line and an
    # unmatched one), the mall's item and variation, and the order what the mall says of it;
    # a shop's intake keeps its API cursor and its stop/resume bookkeeping; a cancellation finds
    # what its line's sale took by the journal's reference
    """
    ALTER TABLE orders ADD COLUMN mall_state TEXT NOT NULL DEFAULT 'new';
    ALTER TABLE orders ADD COLUMN source TEXT NOT NULL DEFAULT '';
    ALTER TABLE order_lines ADD COLUMN variation TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE order_lines ADD COLUMN name TEXT NOT NULL DEFAULT '';
    ALTER TABLE order_lines ADD COLUMN status TEXT NOT NULL DEFAULT 'allocated';
    ALTER TABLE order_lines ADD COLUMN choices TEXT NOT NULL DEFAULT '[]';
    UPDATE order_lines SET status = CASE WHEN cancelled = 1 THEN 'cancelled' ELSE
        (SELECT o.status FROM orders o WHERE o.shop = order_lines.shop
        AND o.order_no = order_lines.order_no) END;
    ALTER TABLE order_lines DROP COLUMN cancelled;
    CREATE INDEX order_lines_waiting ON order_lines(status, shop)
        WHERE status IN ('warning', 'unmatched');
    CREATE INDEX orders_received ON orders(shop, received_at);
    CREATE INDEX journal_contexts_ref ON journal_contexts(ref);
    CREATE TABLE intake_state (
        shop TEXT PRIMARY KEY REFERENCES shops(id),
        cursor TEXT NOT NULL DEFAULT '',
        stopped_at TEXT NOT NULL DEFAULT '',
        resumed_at TEXT NOT NULL DEFAULT '',
        backlog TEXT NOT NULL DEFAULT ''
    ) WITHOUT ROWID
    """,
    # the last backlog skipped by an order API shop: orders placed in (from, until] are not
    # taken, however far back a later poll reaches
    """
    ALTER TABLE intake_state ADD COLUMN skipped_from TEXT NOT NULL DEFAULT '';
    ALTER TABLE intake_state ADD COLUMN skipped_until TEXT NOT NULL DEFAULT ''
    """,
    # the outbox (ledger.outbox): per shop and linked SKU, the target and what was sent
    """
    CREATE TABLE outbox (
        shop TEXT NOT NULL,
        sku TEXT NOT NULL,
        target INTEGER NOT NULL,
        pushed INTEGER,
        pushed_at TEXT NOT NULL DEFAULT '',
        sold INTEGER NOT NULL DEFAULT 0,
        pending INTEGER NOT NULL DEFAULT 1,
        urgent INTEGER NOT NULL DEFAULT 0,
        version INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (shop, sku)
    ) WITHOUT ROWID;
    CREATE INDEX outbox_pending ON outbox(shop, sku) WHERE pending = 1;
    CREATE INDEX outbox_sku ON outbox(sku);
    CREATE TABLE outbox_dirty (sku TEXT PRIMARY KEY) WITHOUT ROWID;
    CREATE TABLE outbox_dirty_shops (
        shop TEXT PRIMARY KEY,
        after TEXT NOT NULL DEFAULT ''
    ) WITHOUT ROWID;
    INSERT INTO outbox_dirty_shops(shop) SELECT id FROM shops
    """,
    # a row sent a value read before a later change (a bulk snapshot, a feed applied late,
    # an ack that crossed another): which value the mall kept is unknown, so it is sent again
    """
    ALTER TABLE outbox ADD COLUMN uncertain INTEGER NOT NULL DEFAULT 0
    """,
    # the drift audit (ledger.audit): what a mall showed, per job until it is finished, and
    # each shop's last audit
    """
    CREATE TABLE audit_seen (
        job INTEGER NOT NULL,
        item_id TEXT NOT NULL,
        variation TEXT NOT NULL,
        shown INTEGER NOT NULL,
        PRIMARY KEY (job, item_id, variation)
    ) WITHOUT ROWID;
    CREATE TABLE audits (
        shop TEXT PRIMARY KEY,
        job INTEGER NOT NULL,
        at TEXT NOT NULL,
        checked INTEGER NOT NULL,
        drift INTEGER NOT NULL,
        pending INTEGER NOT NULL,
        fixed INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    # what was read, per item: shown (NULL: the mall has no such item; -1: its API cannot
    # address it) and when (a push acknowledged after the read makes the read no drift)
    """
    DROP TABLE audit_seen;
    CREATE TABLE audit_seen (
        job INTEGER NOT NULL,
        item_id TEXT NOT NULL,
        variation TEXT NOT NULL,
        shown INTEGER,
        read_at TEXT NOT NULL,
        PRIMARY KEY (job, item_id, variation)
    ) WITHOUT ROWID
    """,
    # the sales pace (ledger.pace): the units each order line took, kept for a few minutes
    """
    CREATE TABLE recent_sales (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        sku TEXT NOT NULL,
        units INTEGER NOT NULL
    );
    CREATE INDEX recent_sales_sku ON recent_sales(sku);
    CREATE INDEX recent_sales_at ON recent_sales(at);
    INSERT INTO outbox_dirty_shops(shop) SELECT id FROM shops WHERE true
        ON CONFLICT DO UPDATE SET after = ''
    """,
)


def open_database(path: Path) -> sqlite3.Connection:
    """The ledger's one connection: WAL, ``synchronous=FULL``, foreign keys, migrated."""
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise SchemaError(
            f"SQLite {sqlite3.sqlite_version} is too old: zaiko needs "
            f"{'.'.join(map(str, MIN_SQLITE))} or newer"
        )
    # check_same_thread=False: trio's worker threads differ between batches, but the ledger
    # never runs two batches at once.
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        # WAL with synchronous=FULL: every commit is fsynced before it is acknowledged, so an
        # acknowledged change survives power loss, not only a process crash; group commit
        # pays that fsync once per batch instead of once per change.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        migrate(db, path)
    except BaseException:
        db.close()
        raise
    return db


def migrate(
    db: sqlite3.Connection, path: Path, migrations: Sequence[Migration] = MIGRATIONS
) -> None:
    version: int = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(migrations):
        raise SchemaError(
            f"database {path} has schema version {version}, newer than this zaiko "
            f"({len(migrations)}); upgrade zaiko"
        )
    for number, migration in enumerate(migrations[version:], start=version + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            if isinstance(migration, str):
                for statement in migration.split(";"):
                    if statement.strip():
                        db.execute(statement)
            else:
                migration(db)
            db.execute(f"PRAGMA user_version={number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        log.info("database migrated to schema version %d", number)


def rewrite_shop_settings(
    renamed: Mapping[str, str] = {}, removed: Sequence[str] = ()
) -> Callable[[sqlite3.Connection], None]:
    """A migration for a release that renames or removes shop settings: every stored shop's
    settings are rewritten, so that they decode under the new names (stored settings are read
    as strictly as a shops file). Keys are dotted paths (``trickle.quantity``); a renamed
    setting keeps its value, a removed one is dropped, and each change is written to
    ``shop_journal`` (actor ``migration``) like any other settings change."""

    def run(db: sqlite3.Connection) -> None:
        # the journal's format: ISO 8601 UTC with milliseconds and +00:00
        now = db.execute("SELECT strftime('%Y-%m-%dT%H:%M:%f+00:00')").fetchone()[0]
        for shop, raw in db.execute("SELECT id, settings FROM shops").fetchall():
            settings = msgspec.json.decode(raw)
            changes: list[tuple[str, str | None, str | None]] = []
            for old, new in renamed.items():
                if _has(settings, old):
                    value = _pop(settings, old)
                    _put(settings, new, value)
                    encoded = msgspec.json.encode(value).decode()
                    changes += [(old, encoded, None), (new, None, encoded)]
            for name in removed:
                if _has(settings, name):
                    changes.append((name, msgspec.json.encode(_pop(settings, name)).decode(), None))
            if changes:
                db.execute(
                    "UPDATE shops SET settings = ? WHERE id = ?",
                    (msgspec.json.encode(settings).decode(), shop),
                )
                db.executemany(
                    "INSERT INTO shop_journal(at, shop, setting, before, after, actor) "
                    "VALUES (?, ?, ?, ?, ?, 'migration')",
                    [(now, shop, key, before, after) for key, before, after in changes],
                )

    return run


def _has(settings: dict[str, object], dotted: str) -> bool:
    *parents, last = dotted.split(".")
    for part in parents:
        nested = settings.get(part)
        if not isinstance(nested, dict):
            return False
        settings = nested
    return last in settings


def _pop(settings: dict[str, object], dotted: str) -> object:
    *parents, last = dotted.split(".")
    for part in parents:
        settings = settings[part]  # type: ignore[assignment]
    return settings.pop(last)


def _put(settings: dict[str, object], dotted: str, value: object) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        settings = settings.setdefault(part, {})  # type: ignore[assignment]
    settings[last] = value
