"""The stock database: schema migrations and every domain operation, synchronous.

Only the ledger task calls this, one batch at a time on a worker thread, so one connection
serves everything. A batch is one transaction; each command inside it runs in a savepoint,
so a refused command leaves nothing behind while the others in the batch still commit.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec

from daemon.commands import (
    ApplyImport,
    Command,
    CreateJob,
    FinishJob,
    ListShops,
    OrderRecorded,
    RecordOrder,
    Result,
    ShopsList,
)
from protocols import control, quantity, tempostar
from protocols.malls import capability
from protocols.settings import (
    SettingsError,
    ShopSettings,
    apply_changes,
    plain_ftp_warning,
    validate_shop,
)

log = logging.getLogger(__name__)

SKU_MAX = 64
GUARD_LIST_MAX = 20
MAX_JOB_MESSAGES = 10_000
MAX_DRY_RUN_ROWS = 100_000
MIN_SQLITE = (3, 38)
INTERRUPTED = "interrupted: the daemon stopped before this job finished; nothing of it was applied"

MIGRATIONS: tuple[str, ...] = (
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
)


class _Undo(Exception):
    """Roll a command back but still record an outcome (dry runs, refused all-or-nothing)."""

    def __init__(self, outcome: FinishJob) -> None:
        super().__init__("undo")
        self.outcome = outcome


class _KnownCodes:
    """``code in known`` asked of the database, for the zero-padding hint."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __contains__(self, code: object) -> bool:
        return self._db.execute("SELECT 1 FROM skus WHERE code = ?", (code,)).fetchone() is not None


class DomainError(Exception):
    """A command refused for a reason the caller can act on; nothing of it is applied."""

    def __init__(
        self,
        code: control.ErrorCode,
        message: str,
        field: str = "",
        details: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.code: control.ErrorCode = code
        self.field = field
        self.details = tuple(details)


def check_sku_code(code: str, field: str = "code") -> None:
    """SKU codes are text kept exactly as given: 1–64 characters, no control characters."""
    if not code:
        raise DomainError("invalid", "SKU code is empty", field)
    if len(code) > SKU_MAX:
        raise DomainError(
            "invalid", f"SKU code is {len(code)} characters; at most {SKU_MAX}", field
        )
    if any(unicodedata.category(ch) == "Cc" for ch in code):
        raise DomainError("invalid", f"SKU code {code!r} contains a control character", field)


def _payload_hash(payload: object) -> str:
    return hashlib.sha256(msgspec.json.encode(payload)).hexdigest()


settings_encoder = msgspec.json.Encoder()
settings_decoder = msgspec.json.Decoder(ShopSettings)


class Store:
    """One sqlite3 connection and the operations on it. Not thread-safe: one caller at a time."""

    def __init__(self, path: Path, now: Callable[[], str]) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            # imports read their batches with json_each and ->> (SQLite 3.38)
            raise RuntimeError(
                f"SQLite {sqlite3.sqlite_version} is too old: zaiko needs "
                f"{'.'.join(map(str, MIN_SQLITE))} or newer"
            )
        self.path = path
        self.now = now
        # check_same_thread=False: trio's worker threads differ between batches, but the
        # ledger never runs two batches at once.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # WAL with synchronous=FULL: every commit is fsynced before it is acknowledged, so an
        # acknowledged change survives power loss, not only a process crash; group commit
        # pays that fsync once per batch instead of once per change.
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._migrate()
        self._events: list[control.Event] = []
        self._touched: dict[str, tuple[str, str]] = {}
        self._contexts: dict[tuple[str, str, str], int] = {}
        self._fail_interrupted_jobs()

    def _fail_interrupted_jobs(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        running = [job for (job,) in self.db.execute("SELECT id FROM jobs WHERE state = 'running'")]
        for job in running:
            self._finish_job(FinishJob(job=job, result="failed", messages=(INTERRUPTED,)))
        self.db.execute("COMMIT")

    def _migrate(self) -> None:
        version: int = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"database {self.path} has schema version {version}, newer than this zaiko "
                f"({len(MIGRATIONS)}); upgrade zaiko"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            self.db.execute("BEGIN IMMEDIATE")
            for statement in script.split(";"):
                if statement.strip():
                    self.db.execute(statement)
            self.db.execute(f"PRAGMA user_version={number}")
            self.db.execute("COMMIT")
            log.info("database migrated to schema version %d", number)

    def close(self) -> None:
        self.db.close()

    # --- batches ------------------------------------------------------------------------

    def apply_batch(
        self, commands: Sequence[tuple[Command, str]]
    ) -> tuple[list[Result], list[control.Event]]:
        """Run commands in one transaction; return a result per command and the events.

        A DomainError refuses its own command only. A database error fails the whole batch
        (rolled back) and propagates: the ledger stops, nothing was acknowledged.
        """
        results: list[Result] = []
        events: list[control.Event] = []
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for command, actor in commands:
                self._begin_command()
                self.db.execute("SAVEPOINT command")
                try:
                    result = self._dispatch(command, actor)
                except _Undo as undo:
                    self.db.execute("ROLLBACK TO command")
                    self._begin_command()
                    try:
                        result = self._finish_job(undo.outcome)
                    except DomainError as exc:
                        results.append(self._refusal(command, exc))
                    else:
                        events.extend(self._command_events())
                        results.append(result)
                except sqlite3.IntegrityError as exc:
                    # a constraint the checks above missed: refuse this command only
                    self.db.execute("ROLLBACK TO command")
                    results.append(
                        self._refusal(
                            command, DomainError("conflict", f"refused by the database: {exc}")
                        )
                    )
                except DomainError as exc:
                    self.db.execute("ROLLBACK TO command")
                    results.append(self._refusal(command, exc))
                except sqlite3.DatabaseError:
                    raise
                except Exception as exc:
                    log.exception("command %s failed", type(command).__name__)
                    self.db.execute("ROLLBACK TO command")
                    results.append(
                        control.Error(
                            id=getattr(command, "id", None),
                            code="internal",
                            message=f"internal error: {type(exc).__name__}",
                        )
                    )
                else:
                    events.extend(self._command_events())
                    results.append(result)
                self.db.execute("RELEASE command")
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        return results, _coalesce(events)

    @staticmethod
    def _refusal(command: Command, exc: DomainError) -> control.Error:
        return control.Error(
            id=getattr(command, "id", None),
            code=exc.code,
            message=str(exc),
            field=exc.field,
            details=exc.details,
        )

    def _dispatch(self, command: Command, actor: str) -> Result:
        match command:
            case control.Ping(id=rid):
                return control.Pong(id=rid)
            case control.SkuAdd():
                return self.sku_add(command, actor)
            case control.SkuShow():
                return control.SkuReply(
                    id=command.id, sku=self.sku_detail(command.code, command.journal_limit)
                )
            case control.SkuList():
                return self.sku_list(command)
            case control.StockSet() | control.StockAdd():
                return self.stock_change(command, actor)
            case control.SetAdd():
                return self.set_add(command, actor)
            case control.ListingsImport():
                return self.listings_import(command)
            case control.ShopsApply():
                return self.shops_apply(command, actor)
            case control.ShopShow():
                return control.ShopReply(id=command.id, shop=self.shop(command.shop))
            case control.ShopSet():
                return self.shop_set(command, actor)
            case control.JobsList():
                return control.JobsReply(id=command.id, jobs=self.jobs(command.limit))
            case control.JobShow():
                return control.JobReply(id=command.id, job=self.job(command.job))
            case control.GetStatus():
                return self.status(command.id)
            case RecordOrder():
                return self.record_order(command, actor)
            case ListShops():
                return ShopsList(shops=self.shops())
            case CreateJob():
                return self._create_job(command)
            case FinishJob():
                return self._finish_job(command)
            case ApplyImport():
                return self.apply_import(command, actor)
            case (
                control.Subscribe()
                | control.ImportStart()
                | control.UploadChunk()
                | control.ImportFinish()
                | control.ExportStart()
                | control.Download()
            ):
                raise DomainError(
                    "invalid", f"{type(command).__name__} is handled by the control session"
                )
        raise DomainError("invalid", f"unknown command {type(command).__name__}")

    # --- SKUs and stock ---------------------------------------------------------------------

    def _sku_row(self, code: str) -> tuple[str, bool]:
        row = self.db.execute("SELECT name, is_set FROM skus WHERE code = ?", (code,)).fetchone()
        if row is None:
            raise DomainError("not_found", f"unknown SKU {code!r}", "code")
        return row[0], bool(row[1])

    def stock_level(self, code: str) -> control.StockLevel:
        _, is_set = self._sku_row(code)
        if is_set:
            children = self.db.execute(
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
        expected, actual, reserve, registered = self.db.execute(
            "SELECT expected, actual, reserve, registered FROM stock WHERE sku = ?", (code,)
        ).fetchone()
        return control.StockLevel(
            code=code,
            expected=expected,
            actual=actual,
            reserve=reserve,
            registered=bool(registered),
        )

    def sku_add(self, command: control.SkuAdd, actor: str) -> control.SkuReply:
        check_sku_code(command.code)
        if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in command.name):
            raise DomainError("invalid", "the name contains a control character", "name")
        if command.reserve < 0:
            raise DomainError("invalid", "reserve cannot be below zero", "reserve")
        if self.db.execute("SELECT 1 FROM skus WHERE code = ?", (command.code,)).fetchone():
            raise DomainError("conflict", f"SKU {command.code!r} already exists", "code")
        self.db.execute(
            "INSERT INTO skus(code, name, created_at) VALUES (?, ?, ?)",
            (command.code, command.name, self.now()),
        )
        self.db.execute("INSERT INTO stock(sku) VALUES (?)", (command.code,))
        if command.reserve:
            self._move(command.code, "reserve", command.reserve, "manual", "", actor)
        else:
            self._stock_event(command.code, "sku-added", "")
        return control.SkuReply(id=command.id, sku=self.sku_detail(command.code, 20))

    def _move(
        self, code: str, field: control.StockField, delta: int, reason: str, ref: str, actor: str
    ) -> tuple[int, int]:
        """Change one stock field by delta and journal it; returns (before, after)."""
        before, head = self.db.execute(
            f"SELECT {field}, journal_head FROM stock WHERE sku = ?", (code,)
        ).fetchone()
        after = before + delta
        if delta:
            head = self.db.execute(
                "INSERT INTO journal_entries(context, sku, field, delta, before, after, prev) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    self._journal_context(reason, ref, actor),
                    code,
                    field,
                    delta,
                    before,
                    after,
                    head,
                ),
            ).lastrowid
        registered = ", registered = 1" if field == "expected" else ""
        self.db.execute(
            f"UPDATE stock SET {field} = ?, journal_head = ?{registered} WHERE sku = ?",
            (after, head, code),
        )
        self._stock_event(code, reason, ref)
        return before, after

    def _stock_event(self, code: str, reason: str, ref: str) -> None:
        """Note a changed SKU; its level (and its sets') is read once, when the command ends."""
        self._touched[code] = (reason, ref)

    def _journal_context(self, reason: str, ref: str, actor: str) -> int:
        """The journal context of this command's changes for (reason, ref, actor)."""
        key = (reason, ref, actor)
        context = self._contexts.get(key)
        if context is None:
            cursor = self.db.execute(
                "INSERT INTO journal_contexts(at, reason, ref, actor) VALUES (?, ?, ?, ?)",
                (self.now(), reason, ref, actor),
            )
            context = self._contexts[key] = cursor.lastrowid or 0
        return context

    def _begin_command(self) -> None:
        self._events = []
        self._touched = {}
        self._contexts = {}

    def _command_events(self) -> list[control.Event]:
        """The command's events: one StockChanged per SKU it touched and per set it moved."""
        stock: list[control.Event] = []
        sets: dict[str, str] = {}
        for code, (reason, ref) in self._touched.items():
            stock.append(control.StockChanged(stock=self.stock_level(code), reason=reason, ref=ref))
            for (parent,) in self.db.execute(
                "SELECT parent FROM set_components WHERE child = ?", (code,)
            ):
                sets[parent] = ref
        stock.extend(
            control.StockChanged(stock=self.stock_level(parent), reason="set-component", ref=ref)
            for parent, ref in sets.items()
            if parent not in self._touched
        )
        return stock + self._events

    def _claim_key(self, key: str, payload: object) -> bool:
        """Record an idempotency key; False when it was already applied with this payload."""
        digest = _payload_hash(payload)
        row = self.db.execute(
            "SELECT payload_hash FROM idempotency WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            self.db.execute(
                "INSERT INTO idempotency(key, payload_hash, at) VALUES (?, ?, ?)",
                (key, digest, self.now()),
            )
            return True
        if row[0] != digest:
            raise DomainError(
                "conflict", f"key {key!r} was already used with a different payload", "key"
            )
        return False

    def stock_change(
        self, command: control.StockSet | control.StockAdd, actor: str
    ) -> control.StockReply:
        _, is_set = self._sku_row(command.code)
        if is_set:
            raise DomainError(
                "refused",
                f"{command.code} is a set product: it has no stock of its own; change its children",
                "code",
            )
        if command.key:
            payload = (
                type(command).__name__,
                command.code,
                command.field,
                command.value if isinstance(command, control.StockSet) else command.delta,
            )
            if not self._claim_key(f"manual\x1f{command.key}", payload):
                return control.StockReply(
                    id=command.id, stock=self.stock_level(command.code), replayed=True
                )
        current = getattr(self.stock_level(command.code), command.field)
        if isinstance(command, control.StockSet):
            if command.value < 0:
                raise DomainError("refused", f"{command.field} cannot be set below zero", "value")
            delta = command.value - current
        else:
            delta = command.delta
            if current + delta < 0 and delta < 0:
                raise DomainError(
                    "refused",
                    f"{command.field} would fall to {current + delta}: manual changes never go below zero",
                    "delta",
                )
        # setting expected to the value it has still registers the stock (_move marks it)
        self._move(command.code, command.field, delta, "manual", command.key, actor)
        return control.StockReply(id=command.id, stock=self.stock_level(command.code))

    def set_add(self, command: control.SetAdd, actor: str) -> control.SkuReply:
        check_sku_code(command.parent, "parent")
        if not command.children:
            raise DomainError("invalid", "a set needs at least one child", "children")
        codes = [child.code for child in command.children]
        if len(set(codes)) != len(codes):
            raise DomainError("invalid", "a child is listed twice", "children")
        if command.parent in codes:
            raise DomainError("invalid", "a set cannot contain itself", "children")
        if self.db.execute(
            "SELECT 1 FROM set_components WHERE child = ?", (command.parent,)
        ).fetchone():
            raise DomainError(
                "refused", f"{command.parent} is a child of a set; sets do not nest", "parent"
            )
        existing = self.db.execute(
            "SELECT is_set FROM skus WHERE code = ?", (command.parent,)
        ).fetchone()
        if existing is not None:
            if existing[0]:
                raise DomainError("conflict", f"{command.parent} is already a set", "parent")
            level = self.stock_level(command.parent)
            (history,) = self.db.execute(
                "SELECT journal_head IS NOT NULL FROM stock WHERE sku = ?", (command.parent,)
            ).fetchone() or (False,)
            # its stock row goes, and with it the head of its journal chain
            if level.registered or level.expected or level.actual or level.reserve or history:
                raise DomainError(
                    "refused",
                    f"{command.parent} has stock of its own or a stock journal; a set parent has none",
                    "parent",
                )
        for child in command.children:
            if child.qty < 1:
                raise DomainError(
                    "invalid", f"quantity of {child.code} must be at least 1", "children"
                )
            _, child_is_set = self._sku_row(child.code)
            if child_is_set:
                raise DomainError(
                    "refused", f"{child.code} is itself a set; sets do not nest", "children"
                )
        if existing is None:
            self.db.execute(
                "INSERT INTO skus(code, name, is_set, created_at) VALUES (?, ?, 1, ?)",
                (command.parent, command.name, self.now()),
            )
        else:
            self.db.execute("UPDATE skus SET is_set = 1 WHERE code = ?", (command.parent,))
            self.db.execute("DELETE FROM stock WHERE sku = ?", (command.parent,))
        self.db.executemany(
            "INSERT INTO set_components(parent, child, qty) VALUES (?, ?, ?)",
            [(command.parent, c.code, c.qty) for c in command.children],
        )
        self._events.append(
            control.StockChanged(stock=self.stock_level(command.parent), reason="set-defined")
        )
        self._check_sets_against_origin_rule()
        return control.SkuReply(id=command.id, sku=self.sku_detail(command.parent, 20))

    def _check_sets_against_origin_rule(self) -> None:
        """SPEC §3.1: no set product may be linked to a shop with reflect_to_origin=false."""
        for shop in self.shops():
            if not shop.reflect_to_origin and self._has_linked_sets(shop):
                raise DomainError(
                    "refused",
                    f"shop {shop.id} has reflect_to_origin=false: a set product linked to it would "
                    "make its count drift; unlink the set there, or set reflect_to_origin=true",
                    "reflect_to_origin",
                )

    def sku_detail(self, code: str, journal_limit: int) -> control.SkuDetail:
        name, _ = self._sku_row(code)
        level = self.stock_level(code)
        children = tuple(
            control.SetChild(code=c, qty=q)
            for c, q in self.db.execute(
                "SELECT child, qty FROM set_components WHERE parent = ? ORDER BY child", (code,)
            )
        )
        parents = tuple(
            p
            for (p,) in self.db.execute(
                "SELECT parent FROM set_components WHERE child = ? ORDER BY parent", (code,)
            )
        )
        journal = tuple(
            control.JournalRow(*row)
            for row in self.db.execute(
                # newest first, along the SKU's chain of entries
                "WITH RECURSIVE chain(id, n) AS (SELECT journal_head, 1 FROM stock "
                "WHERE sku = :sku AND journal_head IS NOT NULL UNION ALL SELECT e.prev, n + 1 "
                "FROM chain JOIN journal_entries e ON e.id = chain.id "
                "WHERE e.prev IS NOT NULL AND n < :limit) "
                "SELECT j.id, j.at, j.sku, j.field, j.delta, j.before, j.after, j.reason, j.ref, "
                "j.actor FROM chain JOIN journal j ON j.id = chain.id WHERE :limit > 0 "
                "ORDER BY j.id DESC",
                {"sku": code, "limit": max(0, min(journal_limit, 1000))},
            )
        )
        return control.SkuDetail(
            code=code,
            name=name,
            stock=level,
            children=children,
            parents=parents,
            shops=self._shop_quantities(code, level),
            journal=journal,
        )

    def _shop_quantities(
        self, code: str, level: control.StockLevel
    ) -> tuple[control.ShopQuantity, ...]:
        listed = {
            shop: (item_id, tuple(msgspec.json.decode(variation)), bool(linked))
            for shop, item_id, variation, linked in self.db.execute(
                "SELECT shop, item_id, variation, linked FROM listings WHERE sku = ?", (code,)
            )
        }
        quantities = []
        for shop in self.shops():
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

    def sku_list(self, command: control.SkuList) -> control.SkuListReply:
        limit = max(1, min(command.limit, 10_000))
        pattern = command.prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self.db.execute(
            "SELECT k.code, k.name, k.is_set, coalesce(s.expected, 0), coalesce(s.actual, 0), "
            "coalesce(s.reserve, 0) FROM skus k LEFT JOIN stock s ON s.sku = k.code "
            "WHERE k.code > ? AND k.code LIKE ? ESCAPE '\\' ORDER BY k.code LIMIT ?",
            (command.after, pattern + "%", limit + 1),
        ).fetchall()
        skus = []
        for code, name, is_set, expected, actual, reserve in rows[:limit]:
            if is_set:
                expected = self.stock_level(code).expected
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

    # --- orders ---------------------------------------------------------------------------

    def record_order(self, command: RecordOrder, actor: str) -> OrderRecorded:
        shop = self.shop(command.shop)
        for line in command.lines:
            if line.quantity < 1:
                raise DomainError("invalid", f"line {line.line_no}: quantity must be at least 1")
            self._sku_row(line.sku)
        if not self.db.execute(
            "SELECT 1 FROM orders WHERE shop = ? AND order_no = ?", (shop.id, command.order_no)
        ).fetchone():
            self.db.execute(
                "INSERT INTO orders(shop, order_no, status, ordered_at, received_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (shop.id, command.order_no, command.status, command.ordered_at, self.now()),
            )
        applied = replayed = 0
        oversold: list[str] = []
        for line in command.lines:
            key = f"order\x1f{shop.id}\x1f{command.order_no}\x1f{line.line_no}"
            # the status is part of the payload: a warning line sent again as allocated is a
            # conflict to resolve (orders apply), never a silent replay
            if not self._claim_key(key, (line.sku, line.quantity, line.item_id, command.status)):
                replayed += 1
                continue
            applied += 1
            self.db.execute(
                "INSERT INTO order_lines(shop, order_no, line_no, sku, item_id, quantity) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (shop.id, command.order_no, line.line_no, line.sku, line.item_id, line.quantity),
            )
            if command.status != "allocated":
                continue
            ref = f"{shop.id}:{command.order_no}:{line.line_no}"
            components = self.db.execute(
                "SELECT child, qty FROM set_components WHERE parent = ?", (line.sku,)
            ).fetchall()
            moves = (
                [(child, qty * line.quantity, "set-component") for child, qty in components]
                if components
                else [(line.sku, line.quantity, "order")]
            )
            for code, units, reason in moves:
                _, after = self._move(code, "expected", -units, reason, ref, actor)
                if after < 0:
                    oversold.append(code)
                    self.db.execute(
                        "INSERT INTO oversells(at, sku, expected, shop, ref) VALUES (?, ?, ?, ?, ?)",
                        (self.now(), code, after, shop.id, ref),
                    )
                    self._events.append(
                        control.Oversell(sku=code, expected=after, shop=shop.id, ref=ref)
                    )
        return OrderRecorded(
            shop=shop.id,
            order_no=command.order_no,
            applied_lines=applied,
            replayed_lines=replayed,
            oversold=tuple(oversold),
        )

    # --- shops and listings ---------------------------------------------------------------

    def shops(self) -> tuple[ShopSettings, ...]:
        return tuple(
            settings_decoder.decode(raw)
            for (raw,) in self.db.execute("SELECT settings FROM shops ORDER BY id")
        )

    def shop(self, shop_id: str) -> ShopSettings:
        row = self.db.execute("SELECT settings FROM shops WHERE id = ?", (shop_id,)).fetchone()
        if row is None:
            raise DomainError("not_found", f"unknown shop {shop_id!r}", "shop")
        return settings_decoder.decode(row[0])

    def _check_shop_rules(
        self, shop: ShopSettings, before: ShopSettings | None, force: bool
    ) -> None:
        try:
            validate_shop(shop)
        except SettingsError as exc:
            raise DomainError("invalid", str(exc), exc.field) from exc
        if not shop.reflect_to_origin and self._has_linked_sets(shop):
            raise DomainError(
                "refused",
                "reflect_to_origin: must be true while set products are linked to this shop: the "
                "shop's own count would drift (seed: セット商品を登録している場合は「注文のあった"
                "ショップに在庫反映を行う」)",
                "reflect_to_origin",
            )
        switching_on = shop.reflect == "active" and (before is None or before.reflect != "active")
        if switching_on and not force:
            never = self._linked_unregistered(shop)
            if never:
                count = self._count_linked_unregistered(shop)
                raise DomainError(
                    "refused",
                    f"reflect: {count} linked SKU(s) of shop {shop.id} never had stock registered;"
                    " switching reflect on would push 0 for them. Register their stock first,"
                    " or force.",
                    "reflect",
                    details=never,
                )

    def _linked_clause(self, shop: ShopSettings) -> str:
        if shop.listing_mode == "all":
            return (
                "NOT EXISTS (SELECT 1 FROM listings l WHERE l.shop = :shop AND l.sku = k.code "
                "AND l.linked = 0)"
            )
        return (
            "EXISTS (SELECT 1 FROM listings l WHERE l.shop = :shop AND l.sku = k.code "
            "AND l.linked = 1)"
        )

    def _has_linked_sets(self, shop: ShopSettings) -> bool:
        sql = f"SELECT 1 FROM skus k WHERE k.is_set = 1 AND {self._linked_clause(shop)} LIMIT 1"
        return self.db.execute(sql, {"shop": shop.id}).fetchone() is not None

    def _unregistered_sql(self, shop: ShopSettings) -> str:
        """Linked SKUs that would be pushed as 0: never registered, or sets with such a child."""
        return (
            "SELECT k.code FROM skus k LEFT JOIN stock s ON s.sku = k.code WHERE "
            "(s.registered = 0 OR (k.is_set = 1 AND EXISTS (SELECT 1 FROM set_components c "
            "JOIN stock cs ON cs.sku = c.child WHERE c.parent = k.code AND cs.registered = 0))) "
            f"AND {self._linked_clause(shop)}"
        )

    def _linked_unregistered(self, shop: ShopSettings) -> tuple[str, ...]:
        sql = f"{self._unregistered_sql(shop)} ORDER BY k.code LIMIT {GUARD_LIST_MAX}"
        return tuple(code for (code,) in self.db.execute(sql, {"shop": shop.id}))

    def _count_linked_unregistered(self, shop: ShopSettings) -> int:
        sql = f"SELECT count(*) FROM ({self._unregistered_sql(shop)})"
        count: int = self.db.execute(sql, {"shop": shop.id}).fetchone()[0]
        return count

    def _save_shop(self, shop: ShopSettings, before: ShopSettings | None, actor: str) -> None:
        now = self.now()
        self.db.execute(
            "INSERT INTO shops(id, mall, settings, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
            (shop.id, shop.mall, settings_encoder.encode(shop).decode(), now, now),
        )
        old: dict[str, Any] = _flat(msgspec.to_builtins(before)) if before else {}
        new = _flat(msgspec.to_builtins(shop))
        changed = [
            (key, old.get(key), new.get(key))
            for key in sorted(set(old) | set(new))
            if old.get(key) != new.get(key)
        ]
        self.db.executemany(
            "INSERT INTO shop_journal(at, shop, setting, before, after, actor) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (now, shop.id, key, _json_or_none(a), _json_or_none(b), actor)
                for key, a, b in changed
            ],
        )
        if changed:
            self._events.append(control.ShopChanged(shop=shop))

    def shops_apply(self, command: control.ShopsApply, actor: str) -> control.ShopsReply:
        warnings = []
        for shop in command.shops:
            row = self.db.execute("SELECT settings FROM shops WHERE id = ?", (shop.id,)).fetchone()
            before = settings_decoder.decode(row[0]) if row else None
            if before is not None and before.mall != shop.mall:
                raise DomainError(
                    "refused",
                    f"shop {shop.id} is a {before.mall} shop; its mall cannot change to {shop.mall}",
                    "mall",
                )
            try:
                self._check_shop_rules(shop, before, command.force)
            except DomainError as exc:
                raise DomainError(
                    exc.code, f"shop {shop.id}: {exc}", exc.field, exc.details
                ) from exc
            self._save_shop(shop, before, actor)
            if warning := plain_ftp_warning(shop):
                warnings.append(warning)
        return control.ShopsReply(id=command.id, shops=command.shops, warnings=tuple(warnings))

    def shop_set(self, command: control.ShopSet, actor: str) -> control.ShopReply:
        before = self.shop(command.shop)
        try:
            shop = apply_changes(before, command.changes)
        except SettingsError as exc:
            raise DomainError("invalid", str(exc), exc.field) from exc
        self._check_shop_rules(shop, before, command.force)
        self._save_shop(shop, before, actor)
        return control.ShopReply(id=command.id, shop=shop)

    def listings_import(self, command: control.ListingsImport) -> control.ListingsReply:
        self.shop(command.shop)
        problems = []
        items: dict[tuple[str, str], str] = {}
        for index, row in enumerate(command.rows, start=1):
            variation = msgspec.json.encode(row.variation).decode()
            if not self.db.execute("SELECT 1 FROM skus WHERE code = ?", (row.sku,)).fetchone():
                problems.append(f"row {index} [{row.sku}]: unknown SKU")
            elif not row.item_id:
                problems.append(f"row {index} [{row.sku}]: empty mall item id")
            elif (other := items.get((row.item_id, variation))) is not None:
                problems.append(
                    f"row {index} [{row.sku}]: item {row.item_id} {variation} is also given to {other}"
                )
            else:
                items[(row.item_id, variation)] = row.sku
                listed = self.db.execute(
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
        self.db.executemany(
            "DELETE FROM listings WHERE shop = ? AND item_id = ? AND variation = ? AND sku != ?",
            [(command.shop, item, variation, sku) for (item, variation), sku in items.items()],
        )
        self.db.executemany(
            "INSERT INTO listings(shop, sku, item_id, variation, linked) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(shop, sku) DO UPDATE SET item_id = excluded.item_id, "
            "variation = excluded.variation, linked = excluded.linked",
            [
                (
                    command.shop,
                    r.sku,
                    r.item_id,
                    msgspec.json.encode(r.variation).decode(),
                    r.linked,
                )
                for r in command.rows
            ],
        )
        self._check_sets_against_origin_rule()
        self._events.append(control.ListingsChanged(shop=command.shop, rows=len(command.rows)))
        return control.ListingsReply(id=command.id, imported=len(command.rows))

    # --- jobs and status ------------------------------------------------------------------

    def jobs(self, limit: int) -> tuple[control.Job, ...]:
        rows = self.db.execute(
            "SELECT id FROM jobs ORDER BY id DESC LIMIT ?", (max(1, min(limit, 1000)),)
        ).fetchall()
        return tuple(self.job(job_id, with_messages=False) for (job_id,) in rows)

    def job(self, job_id: int, *, with_messages: bool = True) -> control.Job:
        row = self.db.execute(
            "SELECT id, kind, shop, state, started_at, ended_at, result, count, success, failure, "
            "detail, download_bytes FROM jobs WHERE id = ?",
            (job_id,),
        ).fetchone()
        if row is None:
            raise DomainError("not_found", f"unknown job {job_id}", "job")
        messages: Iterable[tuple[str]] = (
            self.db.execute(
                "SELECT message FROM job_messages WHERE job = ? ORDER BY seq", (job_id,)
            )
            if with_messages
            else ()
        )
        (
            job_id,
            kind,
            shop,
            state,
            started_at,
            ended_at,
            result,
            count,
            success,
            failure,
            detail,
            download_bytes,
        ) = row
        return control.Job(
            id=job_id,
            kind=kind,
            shop=shop,
            state=state,
            started_at=started_at,
            ended_at=ended_at,
            result=result,
            count=count,
            success=success,
            failure=failure,
            messages=tuple(m for (m,) in messages),
            detail=detail,
            download_bytes=download_bytes,
        )

    def _create_job(self, command: CreateJob) -> control.Job:
        if command.shop:
            self.shop(command.shop)  # an unknown shop is refused before any upload
        cursor = self.db.execute(
            "INSERT INTO jobs(kind, shop, state, started_at, detail) VALUES (?, ?, 'running', ?, ?)",
            (command.kind, command.shop, self.now(), command.detail),
        )
        job = self.job(cursor.lastrowid or 0)
        self._events.append(control.JobChanged(job=job))
        return job

    def _finish_job(self, command: FinishJob) -> control.Job:
        updated = self.db.execute(
            "UPDATE jobs SET state = 'done', ended_at = ?, result = ?, count = ?, success = ?, "
            "failure = ?, download_bytes = ? WHERE id = ? AND state = 'running'",
            (
                self.now(),
                command.result,
                command.count,
                command.success,
                command.failure,
                command.download_bytes,
                command.job,
            ),
        )
        if updated.rowcount != 1:
            raise DomainError("conflict", f"job {command.job} is not running", "job")
        messages = list(command.messages[:MAX_JOB_MESSAGES])
        if len(command.messages) > MAX_JOB_MESSAGES:
            messages.append(f"… and {len(command.messages) - MAX_JOB_MESSAGES} more messages")
        self.db.executemany(
            "INSERT INTO job_messages(job, seq, message) VALUES (?, ?, ?)",
            [(command.job, seq, message) for seq, message in enumerate(messages)],
        )
        job = self.job(command.job, with_messages=False)
        self._events.append(control.JobChanged(job=job))
        return self.job(command.job)

    # --- imports --------------------------------------------------------------------------

    def apply_import(self, command: ApplyImport, actor: str) -> control.Job:
        """Apply a stock or catalog file in one transaction, batch by batch as it is parsed;
        either all valid rows or, when refused, none."""
        start = command.start
        if start.kind == "stock":
            success, failed, notes = self._apply_stock(command, actor)
        else:
            success, failed, notes = self._apply_catalog(command)
        source = command.source
        if source.fatal:
            raise _Undo(
                FinishJob(job=command.job, result="failed", failure=1, messages=(source.fatal,))
            )
        messages = [*source.messages, *failed]
        failure = source.errors + len(failed)
        refused = start.all_or_nothing and failure > 0
        if refused or start.dry_run:
            # undo this command only: the job row below is written after the rollback
            raise _Undo(
                FinishJob(
                    job=command.job,
                    result="failed" if refused else "ok",
                    count=success + failure,
                    success=0 if refused else success,
                    failure=failure,
                    messages=tuple(
                        [f"all-or-nothing: {failure} row(s) failed; nothing was applied"] * refused
                        + [m for _, m in sorted(messages)]
                        + (notes if start.dry_run and not refused else [])
                    ),
                )
            )
        result: Literal["ok", "failed"] = "failed" if success == 0 and failure > 0 else "ok"
        return self._finish_job(
            FinishJob(
                job=command.job,
                result=result,
                count=success + failure,
                success=success,
                failure=failure,
                messages=tuple(m for _, m in sorted(messages)),
            )
        )

    def _apply_stock(
        self, command: ApplyImport, actor: str
    ) -> tuple[int, list[tuple[int, str]], list[str]]:
        db = self.db
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
            seen_checks.append(
                "SELECT code, 2, line FROM temp.import_batch WHERE reserve IS NOT NULL"
            )
        if seen_checks:
            db.execute("DROP TABLE IF EXISTS temp.import_seen")
            db.execute(
                "CREATE TEMP TABLE import_seen (code TEXT NOT NULL, what INTEGER NOT NULL, "
                "line INTEGER NOT NULL, PRIMARY KEY (code, what)) WITHOUT ROWID"
            )
        context = self._journal_context("import", f"job:{command.job}", actor)
        (journal_from,) = db.execute(
            "SELECT coalesce(max(id), 0) + 1 FROM journal_entries"
        ).fetchone()
        flags = {"is_add": start.mode == "add", "is_actual": start.target == "actual"}
        known = _KnownCodes(db)
        success = 0
        failed: list[tuple[int, str]] = []
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
                    db.execute(
                        "UPDATE temp.import_batch SET code = l.sku FROM listings l "
                        "WHERE l.shop = ? AND l.item_id = import_batch.item_id "
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
                    failed.append(
                        (
                            line,
                            f"line {line} [{code}]: duplicate code: line {seen} already updates {updates}",
                        )
                    )
                    bad.add(pos)
            unregistered: list[tuple[str]] = []
            for pos, line, code, value, current, new in db.execute(
                "SELECT pos, coalesce(line, ? + pos), code, value, current, new "
                "FROM temp.import_batch WHERE current IS NULL OR new < 0 OR new > ? "
                "OR (registered = 0 AND is_actual = 0 AND new = current) ORDER BY pos",
                (first, tempostar.MAX_QUANTITY),
            ).fetchall():
                if pos in bad:
                    continue
                if current is not None and 0 <= new <= tempostar.MAX_QUANTITY:
                    # valid but unchanged, so not journaled: its stock still becomes registered
                    unregistered.append((code,))
                    continue
                if current is None:
                    is_set = db.execute(
                        "SELECT is_set FROM skus WHERE code = ?", (code,)
                    ).fetchone()
                    failed.append(
                        (
                            line,
                            tempostar.unknown_sku_error(line, code, known).message()
                            if is_set is None
                            else f"line {line} [{code}]: a set product has no stock of its own; import its children",
                        )
                    )
                else:
                    sign = "-" if value < 0 else "+"
                    limit = "below 0" if new < 0 else f"above {tempostar.MAX_QUANTITY}"
                    failed.append(
                        (
                            line,
                            f"line {line} [{code}]: result {limit}: {current} {sign} {abs(value)} = {new}",
                        )
                    )
                bad.add(pos)
            if bad:
                db.executemany(
                    "DELETE FROM temp.import_batch WHERE pos = ?", [(pos,) for pos in bad]
                )
            if start.dry_run:
                if len(notes) < MAX_DRY_RUN_ROWS:
                    notes.extend(self._dry_run_notes(first, MAX_DRY_RUN_ROWS - len(notes)))
            elif batch.uniform:
                self._write_uniform_batch(context, start.target)
                db.executemany("UPDATE stock SET registered = 1 WHERE sku = ?", unregistered)
            else:
                self._write_import_batch(context)
            success += staged - len(bad)
            db.execute("DELETE FROM temp.import_batch")
        if success > MAX_DRY_RUN_ROWS and start.dry_run:
            notes.append(f"… and {success - MAX_DRY_RUN_ROWS} more rows")
        (journal_to,) = db.execute("SELECT coalesce(max(id), 0) FROM journal_entries").fetchone()
        if journal_to >= journal_from:
            self._events.append(
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

    def _dry_run_notes(self, first: int, limit: int) -> list[str]:
        notes = []
        for line, code, is_actual, current, new, current_reserve, reserve in self.db.execute(
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

    def _write_uniform_batch(self, context: int, target: tempostar.ImportTarget) -> None:
        """Journal and apply a uniform batch: one entry per changed SKU, and one pass over
        the new entries (consecutive ids, read in rowid order) that moves each SKU's count
        and chain head."""
        db = self.db
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

    def _write_import_batch(self, context: int) -> None:
        """Journal and apply the valid rows left in ``temp.import_batch``, where one SKU may
        have several entries (a per-row file's expected, actual and reserve)."""
        db = self.db
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

    def _apply_catalog(self, command: ApplyImport) -> tuple[int, list[tuple[int, str]], list[str]]:
        db = self.db
        start = command.start
        db.execute("DROP TABLE IF EXISTS temp.catalog_batch")
        db.execute(
            "CREATE TEMP TABLE catalog_batch (line INTEGER PRIMARY KEY, code TEXT NOT NULL, "
            "name TEXT NOT NULL, item_id TEXT NOT NULL, variation TEXT NOT NULL)"
        )
        # the catalog names products; a mall file's name may be an option label ("Ｓ ホワイト"),
        # so it only names SKUs it creates
        on_conflict = (
            "DO UPDATE SET name = excluded.name WHERE excluded.name != '' AND skus.name != excluded.name"
            if start.format == "tempostar"
            else "DO NOTHING"
        )
        now = self.now()
        success = new_skus = 0
        failed: list[tuple[int, str]] = []
        for batch in command.source:
            db.execute(
                "INSERT INTO temp.catalog_batch SELECT value->>0, value->>1, value->>2, "
                "value->>3, value->>4 FROM json_each(?)",
                (batch.rows,),
            )
            bad: list[tuple[int]] = []
            for line, code in db.execute("SELECT line, code FROM temp.catalog_batch").fetchall():
                try:
                    check_sku_code(code)
                except DomainError as exc:
                    failed.append((line, f"line {line} [{code[:64]}]: {exc}"))
                    bad.append((line,))
            if start.shop:
                for line, code, listed in db.execute(
                    "SELECT c.line, c.code, l.sku FROM temp.catalog_batch c JOIN listings l "
                    "ON l.shop = ? AND l.item_id = c.item_id AND l.variation = c.variation "
                    "WHERE l.sku != c.code",
                    (start.shop,),
                ).fetchall():
                    failed.append(
                        (
                            line,
                            f"line {line} [{code}]: this item is already listed as SKU {listed} in shop {start.shop}",
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
                self._write_catalog_batch(now, on_conflict, start.shop)
            db.execute("DELETE FROM temp.catalog_batch")
        db.execute("DROP TABLE temp.catalog_batch")
        return success, failed, [f"{new_skus} new SKU(s), {success - new_skus} existing"]

    def _write_catalog_batch(self, now: str, on_conflict: str, shop: str) -> None:
        db = self.db
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
        if shop:
            db.execute(
                "INSERT INTO listings(shop, sku, item_id, variation, linked) "
                "SELECT ?, code, item_id, variation, 1 FROM temp.catalog_batch WHERE item_id != '' "
                "ON CONFLICT(shop, sku) DO UPDATE SET item_id = excluded.item_id, "
                "variation = excluded.variation",
                (shop,),
            )

    def status(self, request_id: int) -> control.StatusReply:
        (skus,) = self.db.execute("SELECT count(*) FROM skus").fetchone()
        (oversells,) = self.db.execute("SELECT count(*) FROM oversells").fetchone()
        shops = tuple(
            control.ShopStatus(
                id=s.id,
                mall=s.mall,
                order_intake=s.order_intake,
                reflect=s.reflect,
                warnings=tuple(w for w in (plain_ftp_warning(s),) if w),
            )
            for s in self.shops()
        )
        return control.StatusReply(
            id=request_id,
            version="",
            started_at="",
            database=str(self.path),
            skus=skus,
            shops=shops,
            oversells=oversells,
        )

    def stock_invariant_violations(self) -> list[str]:
        """SKUs whose journal deltas do not sum to their stock (SPEC §2 invariant), or whose
        journal chain is broken."""
        bad: list[str] = []
        for field in ("expected", "actual", "reserve"):
            rows = self.db.execute(
                f"SELECT s.sku, s.{field}, coalesce(j.total, 0) FROM stock s LEFT JOIN "
                f"(SELECT sku, sum(delta) AS total FROM journal_entries WHERE field = '{field}' "
                f"GROUP BY sku) j ON j.sku = s.sku WHERE s.{field} != coalesce(j.total, 0)"
            )
            bad.extend(
                f"{sku} {field}: stock {value}, journal {total}" for sku, value, total in rows
            )
        # each SKU's entries form one chain, newest at its head
        bad.extend(
            f"{sku}: journal entry {entry} links to {prev}, not {previous}"
            for sku, entry, prev, previous in self.db.execute(
                "SELECT sku, id, prev, previous FROM (SELECT sku, id, prev, lag(id) OVER "
                "(PARTITION BY sku ORDER BY id) AS previous FROM journal_entries) "
                "WHERE prev IS NOT previous"
            )
        )
        bad.extend(
            f"{sku}: journal head {head}, newest entry {newest}"
            for sku, head, newest in self.db.execute(
                "SELECT s.sku, s.journal_head, j.newest FROM stock s LEFT JOIN (SELECT sku, "
                "max(id) AS newest FROM journal_entries GROUP BY sku) j ON j.sku = s.sku "
                "WHERE s.journal_head IS NOT j.newest"
            )
        )
        return bad


def _coalesce(events: list[control.Event]) -> list[control.Event]:
    """Keep the last stock event per SKU of a batch; keep every other event in order."""
    last_stock: dict[str, int] = {}
    for index, event in enumerate(events):
        if isinstance(event, control.StockChanged):
            last_stock[event.stock.code] = index
    return [
        event
        for index, event in enumerate(events)
        if not isinstance(event, control.StockChanged) or last_stock[event.stock.code] == index
    ]


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _json_or_none(value: object) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()
