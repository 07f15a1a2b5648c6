"""The engine: the ledger's one SQLite connection, and how a batch of commands runs on it.

A batch is one transaction (``BEGIN IMMEDIATE`` … ``COMMIT``: group commit, one fsync for
all); each command in it runs in a savepoint with a fresh ``Tx``, so a refused command
leaves nothing behind while the others still commit. Results and events are returned only
after COMMIT: the ledger task acknowledges and publishes them then. Only the ledger task
calls this, one batch at a time, on its own worker thread.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from daemon.commands import (
    ApplyImport,
    AuditDone,
    AuditJobs,
    AuditSeen,
    BacklogHandled,
    ChangeShops,
    Command,
    CreateJob,
    FinishJob,
    GetIntakeState,
    ListShops,
    PendingPushes,
    Pushes,
    PushesSent,
    Result,
    RunningAudits,
    SaveIntakeCursor,
    ShopsList,
    TakeOrders,
)
from daemon.ledger import (
    audit,
    catalog,
    imports,
    intake,
    jobs,
    listings,
    orders,
    outbox,
    pace,
    sets,
    shops,
    status,
    stock,
)
from daemon.ledger.schema import SchemaError, open_database
from daemon.ledger.tx import DomainError, Tx, Undo
from protocols import control

log = logging.getLogger(__name__)

T = TypeVar("T")


class Engine:
    """One sqlite3 connection and the batches run on it. Not thread-safe: one caller at a time."""

    def __init__(self, path: Path, now: Callable[[], str]) -> None:
        self.now = now
        # targets are marked that no batch computed yet: run a batch even with no request
        self.outbox_behind = False
        # seconds until a sale leaves a SKU's pace (its targets may rise): run a batch then
        self.pace_due_s: float | None = None
        self.db = open_database(path)
        try:
            self._start()
        except BaseException:
            self.db.close()
            raise

    def _start(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            tx = Tx(self.db, self.now, "daemon")
            if problems := shops.unreadable_settings(tx):
                raise SchemaError(
                    f"stored settings this zaiko cannot read ({'; '.join(problems)}): "
                    "a migration is missing for a renamed or removed setting"
                )
            jobs.fail_interrupted(tx)
            self.pace_due_s = pace.expire(tx)
            # targets marked but not yet computed when the daemon stopped
            self.outbox_behind = outbox.has_work(tx)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.db.close()

    def read(self, query: Callable[..., T], *args: object) -> T:
        """Run a domain function that only reads (tests, tools): ``read(stock.level, code)``."""
        return query(Tx(self.db, self.now, "reader"), *args)

    def apply_batch(
        self, commands: Sequence[tuple[Command, str]]
    ) -> tuple[list[Result], list[control.Event]]:
        """Run (command, actor) pairs in one transaction; a result per command, and the events.

        A DomainError refuses its own command only. A database error fails the whole batch
        (rolled back) and propagates: the ledger stops, nothing was acknowledged.
        """
        results: list[Result] = []
        events: list[control.Event] = []
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for command, actor in commands:
                db.execute("SAVEPOINT command")
                tx = Tx(db, self.now, actor)
                try:
                    result = run(tx, command)
                except Undo as undo:
                    db.execute("ROLLBACK TO command")
                    # the outcome is recorded by a fresh Tx: nothing of the undone command
                    # (its events, its touched SKUs) remains
                    tx = Tx(db, self.now, actor)
                    try:
                        result = jobs.finish(tx, undo.outcome)
                    except DomainError as exc:
                        result = refusal(command, exc)
                    else:
                        events.extend(stock.command_events(tx))
                except sqlite3.IntegrityError as exc:
                    # a constraint the checks missed: refuse this command only
                    db.execute("ROLLBACK TO command")
                    result = refusal(
                        command, DomainError("conflict", f"refused by the database: {exc}")
                    )
                except DomainError as exc:
                    db.execute("ROLLBACK TO command")
                    result = refusal(command, exc)
                except sqlite3.DatabaseError:
                    raise
                except Exception as exc:
                    log.exception("command %s failed", type(command).__name__)
                    db.execute("ROLLBACK TO command")
                    result = control.Error(
                        id=getattr(command, "id", None),
                        code="internal",
                        message=f"internal error: {type(exc).__name__}",
                    )
                else:
                    events.extend(stock.command_events(tx))
                results.append(result)
                db.execute("RELEASE command")
            # the targets this batch marked, in its transaction: a mark is never lost
            tx = Tx(db, self.now, "daemon")
            self.pace_due_s = pace.expire(tx)
            self.outbox_behind = outbox.refresh(tx, outbox.REFRESH_BUDGET)
            events.extend(tx.events)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return results, coalesce(events)


def run(tx: Tx, command: Command) -> Result:
    """Route a command to its domain's function."""
    match command:
        case control.Ping(id=rid):
            return control.Pong(id=rid)
        case control.SkuAdd():
            return catalog.sku_add(tx, command)
        case control.SkuShow():
            return control.SkuReply(
                id=command.id, sku=catalog.detail(tx, command.code, command.journal_limit)
            )
        case control.SkuList():
            return catalog.sku_list(tx, command)
        case control.StockSet() | control.StockAdd():
            return stock.stock_change(tx, command)
        case control.SetAdd():
            return sets.set_add(tx, command)
        case control.ListingsImport():
            return listings.listings_import(tx, command)
        case control.ShopsApply():
            return shops.shops_apply(tx, command)
        case control.ShopShow():
            return shops.shop_show(tx, command)
        case control.ShopSet():
            return shops.shop_set(tx, command)
        case control.JobsList():
            return jobs.jobs_list(tx, command)
        case control.JobShow():
            return control.JobReply(id=command.id, job=jobs.get(tx, command.job))
        case control.GetStatus():
            return status.status(tx, command)
        case control.OrdersList():
            return orders.orders_list(tx, command)
        case control.OrderShow():
            return orders.order_show(tx, command)
        case control.OrderApply():
            return orders.order_apply(tx, command)
        case control.OrderDismiss():
            return orders.order_dismiss(tx, command)
        case TakeOrders():
            return orders.take_orders(tx, command)
        case ChangeShops(request=control.ShopSet() as request):
            return shops.shop_set(tx, request, command.backlogs.get(request.shop))
        case ChangeShops(request=control.ShopsApply() as request):
            return shops.shops_apply(tx, request, command.backlogs)
        case GetIntakeState():
            return intake.state(tx, command.shop)
        case SaveIntakeCursor():
            return intake.save_cursor(tx, command)
        case BacklogHandled():
            return intake.backlog_handled(tx, command)
        case ListShops():
            return ShopsList(shops=shops.all_shops(tx))
        case CreateJob():
            return jobs.create(tx, command)
        case FinishJob():
            return jobs.finish(tx, command)
        case ApplyImport():
            return imports.apply_import(tx, command)
        case control.ReflectNow():
            return outbox.reflect_now(tx, command)
        case control.AuditStart():
            return audit.audit_start(tx, command)
        case RunningAudits():
            return AuditJobs(jobs=audit.running(tx, command.shop))
        case AuditSeen():
            audit.seen(tx, command.job, command.items, command.at)
            return AuditJobs(jobs=())
        case AuditDone():
            return audit.finish(
                tx,
                command.shop,
                command.job,
                fix=command.fix,
                whole_list=False,
                error=command.error,
            )
        case PendingPushes():
            return Pushes(
                items=tuple(
                    outbox.pending(
                        tx,
                        command.shop,
                        urgent_only=command.urgent_only,
                        after=command.after,
                        limit=command.limit,
                    )
                )
            )
        case PushesSent():
            outbox.acknowledge(
                tx, command.shop, command.items, command.at, uncertain=command.uncertain
            )
            return Pushes(items=())
        case _ if isinstance(command, control.SESSION_REQUESTS):
            raise DomainError(
                "invalid", f"{type(command).__name__} is handled by the control session"
            )
    raise DomainError("invalid", f"unknown command {type(command).__name__}")


def refusal(command: Command, exc: DomainError) -> control.Error:
    return control.Error(
        id=getattr(command, "id", None),
        code=exc.code,
        message=str(exc),
        field=exc.field,
        details=exc.details,
    )


def coalesce(events: list[control.Event]) -> list[control.Event]:
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
