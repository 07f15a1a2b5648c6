"""``zaiko``: the daemon, and a command-line client of its control protocol.

Every command has ``--json`` (one JSON document on stdout) and exits non-zero with a
one-line error on stderr when it fails.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import msgspec
import trio

from cli import render
from cli.client import ClientError, ControlClient, DaemonNotRunning, connect, start_hint
from daemon.config import Config, ConfigError, load_config
from protocols import control
from protocols.listings import read_listings
from protocols.malls import capabilities, capability
from protocols.malls.base import LineTooLong, RowError
from protocols.settings import SettingsError, decode_shops_toml

EXIT_FAILED = 1
LISTINGS_PER_FRAME = 2000


class Failure(Exception):
    """A one-line failure of a command."""


def parse_stock_value(args: argparse.Namespace) -> tuple[control.StockField, int]:
    for field in ("expected", "actual", "reserve"):
        value = getattr(args, field)
        if value is not None:
            return field, value
    raise Failure("give one of --expected N, --actual N or --reserve N")


# --- commands: each returns the document printed with --json and a human rendering -----


async def cmd_status(client: ControlClient, args: argparse.Namespace) -> Any:
    return await client.request(control.GetStatus(id=0))


async def cmd_sku_add(client: ControlClient, args: argparse.Namespace) -> Any:
    return await client.request(
        control.SkuAdd(id=0, code=args.code, name=args.name, reserve=args.reserve)
    )


async def cmd_sku_show(client: ControlClient, args: argparse.Namespace) -> Any:
    return await client.request(control.SkuShow(id=0, code=args.code, journal_limit=args.journal))


async def cmd_sku_list(client: ControlClient, args: argparse.Namespace) -> Any:
    return await client.request(
        control.SkuList(
            id=0, after=args.after, prefix=args.prefix, name=args.name, limit=args.limit
        )
    )


async def cmd_stock(client: ControlClient, args: argparse.Namespace) -> Any:
    field, value = parse_stock_value(args)
    if args.stock_command == "set":
        return await client.request(
            control.StockSet(
                id=0, code=args.code, field=field, value=value, key=args.key, if_was=args.if_was
            )
        )
    return await client.request(
        control.StockAdd(id=0, code=args.code, field=field, delta=value, key=args.key)
    )


async def cmd_sets_add(client: ControlClient, args: argparse.Namespace) -> Any:
    children = []
    for text in args.child:
        code, sep, qty = text.rpartition(":")
        if not sep or not code or not qty.isdigit():
            raise Failure(f"--child {text!r}: expected CODE:QTY with QTY a whole number")
        children.append(control.SetChild(code=code, qty=int(qty)))
    return await client.request(
        control.SetAdd(id=0, parent=args.parent, children=tuple(children), name=args.name)
    )


def read_listing_rows(path: Path, encoding: str) -> list[control.ListingRow]:
    try:
        with path.open("rb") as handle:
            results = list(read_listings(handle, encoding))
    except OSError as exc:
        raise Failure(f"cannot read {path}: {exc.strerror}") from exc
    except LookupError as exc:
        raise Failure(f"--encoding {encoding}: unknown encoding") from exc
    except LineTooLong as exc:
        raise Failure(f"{path}: {exc}; nothing imported") from exc
    errors = [r for r in results if isinstance(r, RowError)]
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise Failure(f"{path}: {errors[0].message()}{more}; nothing imported")
    return [r for r in results if isinstance(r, control.ListingRow)]


async def cmd_listings_import(client: ControlClient, args: argparse.Namespace) -> Any:
    rows = read_listing_rows(Path(args.file), args.encoding)
    imported = 0
    for start in range(0, len(rows), LISTINGS_PER_FRAME):
        chunk = tuple(rows[start : start + LISTINGS_PER_FRAME])
        try:
            reply = await client.request(control.ListingsImport(id=0, shop=args.shop, rows=chunk))
        except ClientError as exc:
            done = f"rows 1–{start} were imported; " if start else ""
            raise Failure(f"{done}rows from {start + 1} on were not: {exc}") from exc
        imported += reply.imported
    return control.ListingsReply(id=0, imported=imported)


async def cmd_shops_apply(client: ControlClient, args: argparse.Namespace) -> Any:
    try:
        shops = decode_shops_toml(await trio.Path(args.file).read_bytes())
    except OSError as exc:
        raise Failure(f"cannot read {args.file}: {exc.strerror}") from exc
    except SettingsError as exc:
        raise Failure(f"{args.file}: {exc}") from exc
    return await client.request(control.ShopsApply(id=0, shops=shops, force=args.force))


async def cmd_shops_show(client: ControlClient, args: argparse.Namespace) -> Any:
    return await client.request(control.ShopShow(id=0, shop=args.shop))


async def cmd_shops_set(client: ControlClient, args: argparse.Namespace) -> Any:
    changes = {}
    for text in args.assignments:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise Failure(f"{text!r}: expected KEY=VALUE")
        changes[key.strip()] = value.strip()
    return await client.request(
        control.ShopSet(
            id=0, shop=args.shop, changes=changes, force=args.force, backlog=args.backlog or ""
        )
    )


async def cmd_orders_list(client: ControlClient, args: argparse.Namespace) -> Any:
    statuses = control.ACTIONABLE_ORDER_STATUSES
    if args.status == "all":
        statuses = get_args(control.OrderStatus)
    elif args.status:
        statuses = (args.status,)
    return await client.request(
        control.OrdersList(
            id=0, shop=args.shop, statuses=statuses, after=args.after, limit=args.limit
        )
    )


async def cmd_orders_show(client: ControlClient, args: argparse.Namespace) -> Any:
    return await client.request(control.OrderShow(id=0, key=args.key))


async def cmd_orders_apply(client: ControlClient, args: argparse.Namespace) -> Any:
    return await client.request(control.OrderApply(id=0, key=args.key))


async def cmd_orders_dismiss(client: ControlClient, args: argparse.Namespace) -> Any:
    return await client.request(control.OrderDismiss(id=0, key=args.key))


async def cmd_reflect_now(client: ControlClient, args: argparse.Namespace) -> Any:
    return await client.request(
        control.ReflectNow(
            id=0, shop=args.shop, dry_run=args.dry_run, limit=args.limit, bulk=args.all
        )
    )


async def cmd_audit(client: ControlClient, args: argparse.Namespace) -> Any:
    """What the shop's mall shows against zaiko's targets: read back through the mall's
    stock API, or from a stock file downloaded from the mall (``--file``)."""
    if args.file:
        path = Path(args.file)
        file_format = args.format
        if not file_format:
            shop = await client.request(control.ShopShow(id=0, shop=args.shop))
            formats = capability(shop.shop.mall).import_formats
            file_format = formats[0] if formats else "tempostar"
        try:
            written = datetime.fromtimestamp((await trio.Path(path).stat()).st_mtime, UTC)
        except OSError as exc:
            raise Failure(f"cannot read {path}: {exc.strerror}") from exc
        start = control.ImportStart(
            id=0,
            kind="audit",
            format=file_format,
            encoding=args.encoding,
            shop=args.shop,
            file_name=path.name,
            fix=args.fix,
            # what the file shows is as of when it was written (downloaded or saved)
            as_of=written.isoformat(timespec="milliseconds"),
        )
        return audit_outcome(await upload(client, path, start))
    topics: tuple[control.Topic, ...] = ("jobs", "actors")
    await client.request(control.Subscribe(id=0, topics=topics))
    started = await client.request(control.AuditStart(id=0, shop=args.shop, fix=args.fix))
    job = started.job
    progress = Progress(0, f"reading what {args.shop} shows")
    progress.done("reading…")
    status = await client.request(control.GetStatus(id=0))
    shop = next((s for s in status.shops if s.id == args.shop), None)
    auditor = next((a for a in shop.actors if a.name == "auditor"), None) if shop else None

    def auditor_runs(actor: control.ActorStatus | None) -> None:
        if actor is not None and actor.state != "running" and actor.last_error:
            progress.clear()
            raise Failure(
                f"shop {args.shop}: its auditor is not running ({actor.last_error}); audit "
                f"job {job.id} runs when it is: zaiko jobs show {job.id}"
            )

    def watch(event: control.Event) -> None:
        if isinstance(event, control.ActorChanged) and event.shop == args.shop:
            if event.actor.name == "auditor":
                auditor_runs(event.actor)

    auditor_runs(auditor)
    job = await job_done(client, job, topics, watch)
    progress.clear()
    return audit_outcome((await client.request(control.JobShow(id=0, job=job.id))).job)


def audit_outcome(job: control.Job) -> control.JobReply:
    """The audit's job is the document; an audit that could not read the mall fails."""
    if job.result == "failed":
        first = f": {job.messages[0]}" if job.messages else ""
        raise JobFailed(control.JobReply(id=0, job=job), f"audit job {job.id} failed{first}")
    return control.JobReply(id=0, job=job)


async def cmd_jobs_list(client: ControlClient, args: argparse.Namespace) -> Any:
    return await client.request(control.JobsList(id=0, limit=args.limit))


async def cmd_jobs_show(client: ControlClient, args: argparse.Namespace) -> Any:
    return await client.request(control.JobShow(id=0, job=args.job))


UPLOAD_WINDOW = 4


async def upload(client: ControlClient, path: Path, start: control.ImportStart) -> control.Job:
    """Stream a file to the daemon in chunks (never whole in memory), then apply it."""
    try:
        size = (await trio.Path(path).stat()).st_size
        handle = await trio.open_file(path, "rb")
    except OSError as exc:
        raise Failure(f"cannot read {path}: {exc.strerror}") from exc
    progress = Progress(size, f"uploading {path.name}")
    async with handle:
        started = await client.request(start)
        job = started.job.id
        # a few chunks in flight, so that the upload does not wait a round trip per chunk
        in_flight: dict[int, int] = {}
        seq = 0
        while chunk := await handle.read(control.UPLOAD_CHUNK_BYTES):
            message = control.UploadChunk(id=client.next_id(), job=job, seq=seq, data=chunk)
            await client.send(message)
            in_flight[message.id] = len(chunk)
            seq += 1
            while len(in_flight) >= UPLOAD_WINDOW:
                progress.advance(in_flight.pop((await client.reply_to(in_flight)).id))
        while in_flight:
            progress.advance(in_flight.pop((await client.reply_to(in_flight)).id))
    progress.done("applying…")
    finished: control.JobReply = await client.request(control.ImportFinish(id=0, job=job))
    progress.clear()
    return finished.job


class Progress:
    """A progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, total: int, label: str) -> None:
        self.total = max(total, 1)
        self.label = label
        self.sent = 0
        self.shown = sys.stderr.isatty()

    def advance(self, amount: int) -> None:
        self.sent += amount
        if self.shown:
            filled = int(30 * self.sent / self.total)
            percent = 100 * self.sent // self.total
            sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {percent:3d}%")
            sys.stderr.flush()

    def done(self, text: str) -> None:
        if self.shown:
            sys.stderr.write(f"\r{self.label}: {text}".ljust(70))
            sys.stderr.flush()

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 70 + "\r")
            sys.stderr.flush()


def job_outcome(job: control.Job) -> control.JobReply:
    """The job is the document; a job that did not apply everything fails the command."""
    if job.result == "failed" or job.failure:
        done = "would be applied" if job.dry_run else "applied"
        run = " (dry run)" if job.dry_run else ""
        summary = f"job {job.id}{run}: {job.result}, {job.count} rows, {job.success} {done}, {job.failure} failed"
        first = f": {job.messages[0]}" if job.messages else ""
        raise JobFailed(control.JobReply(id=0, job=job), summary + first)
    return control.JobReply(id=0, job=job)


class JobFailed(Failure):
    def __init__(self, document: control.JobReply, message: str) -> None:
        super().__init__(message)
        self.document = document


async def cmd_import(client: ControlClient, args: argparse.Namespace) -> Any:
    path = Path(args.file)
    start = control.ImportStart(
        id=0,
        kind="stock",
        format=args.format,
        encoding=args.encoding,
        target=args.target,
        mode=args.mode,
        dry_run=args.dry_run,
        all_or_nothing=args.all_or_nothing,
        shop=args.shop,
        file_name=path.name,
        allow_negative=args.allow_negative,
    )
    return job_outcome(await upload(client, path, start))


async def cmd_sku_import(client: ControlClient, args: argparse.Namespace) -> Any:
    path = Path(args.file)
    start = control.ImportStart(
        id=0,
        kind="catalog",
        format=args.format,
        encoding=args.encoding,
        shop=args.shop,
        file_name=path.name,
    )
    return job_outcome(await upload(client, path, start))


async def job_done(
    client: ControlClient,
    job: control.Job,
    topics: tuple[control.Topic, ...],
    watch: Callable[[control.Event], None] = lambda event: None,
) -> control.Job:
    """The job once it is done, from ``job_changed`` events (the session subscribed to
    ``topics``, "jobs" among them); ``watch`` sees every other event."""
    while job.state != "done":
        event = await client.next_event()
        if isinstance(event, control.JobChanged) and event.job.id == job.id:
            job = event.job
        elif isinstance(event, control.Resync):
            # events were dropped: ask for the job itself, then listen again
            await client.request(control.Subscribe(id=0, topics=topics))
            job = (await client.request(control.JobShow(id=0, job=job.id))).job
        else:
            watch(event)
    return job


async def cmd_export(client: ControlClient, args: argparse.Namespace) -> Any:
    output = Path(args.output)
    await client.request(control.Subscribe(id=0, topics=("jobs",)))
    started = await client.request(
        control.ExportStart(id=0, format=args.format, target=args.target, encoding=args.encoding)
    )
    job = await job_done(client, started.job, ("jobs",))
    if job.result != "ok":
        job = (await client.request(control.JobShow(id=0, job=job.id))).job
        raise JobFailed(
            control.JobReply(id=0, job=job),
            f"export job {job.id} failed: {'; '.join(job.messages)}",
        )
    partial = output.with_name(output.name + ".part")
    progress = Progress(job.download_bytes, f"downloading {output.name}")
    try:
        with partial.open("wb") as out:
            offset = 0
            while True:
                chunk = await client.request(control.Download(id=0, job=job.id, offset=offset))
                await trio.to_thread.run_sync(out.write, chunk.data)
                offset += len(chunk.data)
                progress.advance(len(chunk.data))
                if chunk.eof:
                    break
        partial.replace(output)
    except OSError as exc:
        raise Failure(f"cannot write {output}: {exc.strerror}") from exc
    progress.clear()
    return control.JobReply(id=0, job=job)


# --- parser -----------------------------------------------------------------------------


DEFAULT_CONFIG = "conf/zaiko.example.toml"
CONFIG_ENV = "ZAIKO_CONFIG"


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, as with ArgumentDefaultsHelpFormatter,
    except where there is none to tell (None, a flag's False, empty text)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or default is None
            or default is False
            or default == ""
            or default is argparse.SUPPRESS
            or not (action.option_strings or action.nargs in (argparse.OPTIONAL, "*"))
        ):
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    # --json and --config are accepted before and after every (sub)command: argparse lets a
    # subparser's default overwrite what the main parser read, so neither has a default here
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="machine output: one JSON document",
    )
    common.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help=f"the daemon's TOML config (default: ${CONFIG_ENV} if set, else {DEFAULT_CONFIG})",
    )
    parser = argparse.ArgumentParser(
        prog="zaiko",
        description="zaiko inventory-sync daemon and its client",
        parents=[common],
        formatter_class=HelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        subparsers: Any, name: str, handler: Callable[..., Any] | None, help_text: str
    ) -> argparse.ArgumentParser:
        command: argparse.ArgumentParser = subparsers.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=[common],
            formatter_class=HelpFormatter,
        )
        command.set_defaults(handler=handler)
        return command

    def group(name: str, help_text: str, dest: str) -> Any:
        return add(sub, name, None, help_text).add_subparsers(
            dest=dest, required=True, metavar="SUBCOMMAND"
        )

    add(sub, "daemon", None, "run the daemon in the foreground")
    add(sub, "status", cmd_status, "the daemon, its shops and their actors")
    add(sub, "malls", None, "each mall kind and what it supports")
    p = add(
        sub,
        "tui",
        None,
        "the operator's terminal UI (dashboard, stock, jobs, shops, orders, import)",
    )
    p.add_argument(
        "--lang", choices=("ja", "en"), help="labels' language (default: [tui] lang, else ja)"
    )

    sku = group("sku", "products", "sku_command")
    p = add(sku, "add", cmd_sku_add, "register a SKU")
    p.add_argument("code")
    p.add_argument("--name", default="", help="product name (商品名)")
    p.add_argument(
        "--reserve", type=int, default=0, help="units of expected kept back (保留在庫数)"
    )
    p = add(sku, "show", cmd_sku_show, "stock, per-shop quantities and recent journal rows")
    p.add_argument("code")
    p.add_argument("--journal", type=int, default=20, help="how many journal rows")
    p = add(sku, "list", cmd_sku_list, "list SKUs")
    p.add_argument("--prefix", default="", help="only codes that start with this")
    p.add_argument("--name", default="", help="only names that contain this (商品名)")
    p.add_argument("--after", default="", help="continue after this code")
    p.add_argument("--limit", type=int, default=100, help="at most this many SKUs")

    stock = group("stock", "change stock", "stock_command")
    for name, help_text in (
        ("set", "overwrite a value"),
        ("add", "add to a value (negative subtracts)"),
    ):
        p = add(stock, name, cmd_stock, help_text)
        p.add_argument("code")
        values = p.add_mutually_exclusive_group(required=True)
        values.add_argument("--expected", type=int, metavar="N", help="想定在庫数")
        values.add_argument("--actual", type=int, metavar="N", help="実在庫数")
        values.add_argument("--reserve", type=int, metavar="N", help="保留在庫数")
        p.add_argument(
            "--key", default="", help="idempotency key: a retry with the same key changes nothing"
        )
        if name == "set":
            p.add_argument(
                "--if-was",
                type=int,
                metavar="N",
                help="only if the value is still N (a sale since is not overwritten)",
            )

    sets = group("sets", "set products", "sets_command")
    p = add(sets, "add", cmd_sets_add, "define a set product from children")
    p.add_argument("parent")
    p.add_argument(
        "--child", action="append", required=True, metavar="CODE:QTY", help="repeat per child"
    )
    p.add_argument("--name", default="", help="product name (商品名)")

    listings = group("listings", "per-shop listings", "listings_command")
    p = add(listings, "import", cmd_listings_import, "import listing overrides from CSV")
    p.add_argument("file")
    p.add_argument("--shop", required=True, help="the shop the listings belong to")
    p.add_argument("--encoding", default="cp932", help="cp932 (also shift_jis, sjis) or utf-8")

    shops = group("shops", "shops and their settings", "shops_command")
    p = add(shops, "apply", cmd_shops_apply, "create or update shops from a TOML file")
    p.add_argument("file")
    p.add_argument(
        "--force", action="store_true", help="switch reflect on even if linked SKUs never had stock"
    )
    p = add(
        shops,
        "show",
        cmd_shops_show,
        "one shop's settings (those of its mall kind), as 'shops set' takes them, and actors",
    )
    p.add_argument("shop")
    p = add(
        shops,
        "set",
        cmd_shops_set,
        "change settings: KEY=VALUE ... as 'shops show' prints them (true/false, hours 3,15,"
        " trickle.quantity=10; an empty VALUE clears an optional setting)",
    )
    p.add_argument("shop")
    p.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
    p.add_argument(
        "--force", action="store_true", help="switch reflect on even if linked SKUs never had stock"
    )
    p.add_argument(
        "--backlog",
        choices=("take", "skip"),
        help="switching a stopped shop's order_intake on: take the orders that waited, or skip"
        " (move aside) what arrived while it was stopped",
    )

    reflect = group("reflect", "stock reflection to shops (在庫反映)", "reflect_command")
    p = add(
        reflect,
        "now",
        cmd_reflect_now,
        "send a shop the quantities it has not been sent yet, now (not at the next interval)",
    )
    p.add_argument("--shop", required=True)
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would be sent, per SKU with the formula's inputs; send nothing",
    )
    p.add_argument("--limit", type=int, default=1000, help="list at most this many SKUs")
    p.add_argument(
        "--all",
        action="store_true",
        help="every linked SKU, sent or not: a bulk sync (一括更新) now",
    )

    p = add(
        sub,
        "audit",
        cmd_audit,
        "what a shop's mall shows against zaiko's targets, and why they differ",
    )
    p.add_argument("--shop", required=True)
    p.add_argument(
        "--file",
        default="",
        help="a stock file downloaded from the mall (else its stock API is read)",
    )
    p.add_argument(
        "--format", default="", help="the file's format (default: the mall's first import format)"
    )
    p.add_argument("--encoding", default="cp932", help="the file's encoding (default cp932)")
    p.add_argument(
        "--fix",
        action="store_true",
        help="send each drifted SKU its target again (through the outbox)",
    )

    orders = group("orders", "orders taken from shops (引当確認受注一覧)", "orders_command")
    p = add(
        orders,
        "list",
        cmd_orders_list,
        "the allocation list: orders with warning or unmatched lines, or by --status",
    )
    p.add_argument("--shop", default="", help="one shop's orders only")
    p.add_argument(
        "--status",
        choices=(*get_args(control.OrderStatus), "all"),
        help="orders with a line in this status (default: warning and unmatched)",
    )
    p.add_argument("--after", default="", metavar="KEY", help="continue after this order key")
    p.add_argument("--limit", type=int, default=100, help="at most this many orders")
    for name, handler, help_text in (
        ("show", cmd_orders_show, "one order and its lines"),
        ("apply", cmd_orders_apply, "apply an order's warning lines: stock moves"),
        ("dismiss", cmd_orders_dismiss, "dismiss an order's warning and unmatched lines"),
    ):
        p = add(orders, name, handler, help_text)
        p.add_argument("key", metavar="SHOP:ORDER_NO")

    p = add(sub, "import", cmd_import, "stock CSV import (在庫一括更新): waits and prints the job")
    p.add_argument("file")
    p.add_argument(
        "--format", default="tempostar", help="tempostar or a mall stock file (see 'zaiko malls')"
    )
    p.add_argument("--encoding", default="cp932", help="cp932 (also shift_jis, sjis) or utf-8")
    p.add_argument(
        "--target", choices=("expected", "actual"), default="expected", help="the value to change"
    )
    p.add_argument(
        "--mode",
        choices=("overwrite", "add", "per-row"),
        default="overwrite",
        help="per-row: each row's 更新モード column",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="show before → after per row; apply nothing"
    )
    p.add_argument("--all-or-nothing", action="store_true", help="one failed row applies nothing")
    p.add_argument("--shop", default="", help="map mall item ids through this shop's listings")
    p.add_argument(
        "--allow-negative",
        action="store_true",
        help="take 想定在庫数 below 0 (a TEMPOSTAR download's oversold items)",
    )

    p = add(
        sku, "import", cmd_sku_import, "register SKUs from a catalog or a mall product/stock file"
    )
    p.add_argument("file")
    p.add_argument(
        "--format", default="tempostar", help="tempostar catalog (商品コード,商品名) or a mall file"
    )
    p.add_argument(
        "--shop", default="", help="record this shop's listings (required for mall files)"
    )
    p.add_argument("--encoding", default="cp932", help="cp932 (also shift_jis, sjis) or utf-8")

    p = add(sub, "export", cmd_export, "stock download (在庫ダウンロード) to a CSV file")
    p.add_argument("--format", choices=("tempostar",), default="tempostar", help="file format")
    p.add_argument(
        "--target",
        choices=("expected", "both"),
        default="expected",
        help="expected only, or expected and actual",
    )
    p.add_argument("--encoding", default="cp932", help="cp932 or utf-8")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the CSV file to write")

    jobs = group("jobs", "the job log", "jobs_command")
    p = add(jobs, "list", cmd_jobs_list, "recent jobs")
    p.add_argument("--limit", type=int, default=50, help="at most this many jobs")
    p = add(jobs, "show", cmd_jobs_show, "one job with its row messages")
    p.add_argument("job", type=int)
    return parser


def print_document(document: Any, as_json: bool, human: Callable[[Any], str]) -> None:
    if as_json:
        sys.stdout.write(msgspec.json.encode(document).decode() + "\n")
    else:
        sys.stdout.write(human(document))


def run_daemon_command(config: Config) -> int:
    from daemon.startup import StartupFailed, run_daemon_process

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        run_daemon_process(config)
    except StartupFailed as exc:
        print(f"zaiko: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def config_path(args: argparse.Namespace) -> str:
    """--config, else $ZAIKO_CONFIG, else the example config."""
    return getattr(args, "config", None) or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    as_json = getattr(args, "json", False)
    config_file = config_path(args)
    try:
        if args.command == "malls":
            print_document(list(capabilities().values()), as_json, render.malls)
            return 0
        config = load_config(Path(config_file))
        if args.command == "daemon":
            return run_daemon_command(config)
        if args.command == "tui":
            from tui.app import build_app

            app = build_app(config, config_file, args.lang)
            app.run()
            return app.return_code or 0
        handler = args.handler

        async def run() -> Any:
            async with connect(config) as client:
                return await handler(client, args)

        document = trio.run(run)
    except JobFailed as exc:
        print_document(exc.document, as_json, render.for_reply)
        print(f"zaiko: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (ClientError, ConfigError, Failure) as exc:
        message = str(exc)
        if isinstance(exc, DaemonNotRunning):
            message += f" {start_hint(config_file)}"
        return fail(message, as_json)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # the daemon's own failures keep their traceback for the journal; a client's is a bug
        # that still gets one line, with the traceback on request
        if args.command == "daemon" or os.environ.get("ZAIKO_TRACEBACK"):
            raise
        detail = f"{type(exc).__name__}: {exc}".removesuffix(": ")
        return fail(f"unexpected error {detail} (ZAIKO_TRACEBACK=1 shows where)", as_json)
    print_document(document, as_json, render.for_reply)
    return 0


def fail(message: str, as_json: bool) -> int:
    """A one-line error on stderr (and as the JSON document with --json); exit status 1."""
    message = " ".join(message.split())
    if as_json:
        sys.stdout.write(msgspec.json.encode({"type": "error", "message": message}).decode() + "\n")
    print(f"zaiko: {message}", file=sys.stderr)
    return EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
