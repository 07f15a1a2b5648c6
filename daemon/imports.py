"""Stock and catalog files on their way in, and stock downloads on their way out.

An upload is spooled to ``state_dir/uploads`` as it arrives. At finish a worker thread parses
it with the format's codec and stages the rows in ``staging.sqlite3``, a scratch database with
its own connection (no fsync: it can always be rebuilt from the spool). Only then does the
ledger apply the staged rows, in one transaction of set-based SQL, so the ledger is never
busy while a file is uploaded or parsed, and a crash before that commit applies nothing.

Downloads read the stock through a read-only connection (a WAL snapshot), so writing a
large file never holds up the ledger either.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec

from protocols import control, tempostar
from protocols.malls import capabilities, module
from protocols.malls.base import RowError, StockRow, decoded_lines

STAGE_BATCH = 20_000
MAX_JOB_MESSAGES = 10_000


class ImportRefused(ValueError):
    """The import cannot start: the reason names the option."""


class StageSummary(msgspec.Struct, frozen=True):
    table: str
    rows: int
    errors: int
    fatal: str = ""


def mall_formats() -> dict[str, str]:
    """Importable mall file formats → mall kind, from every mall's capability record."""
    return {fmt: kind for kind, cap in capabilities().items() for fmt in cap.import_formats}


def check_import(start: control.ImportStart) -> None:
    """Refuse options that cannot work, before any byte is uploaded."""
    formats = mall_formats()
    if start.format != "tempostar" and start.format not in formats:
        known = ", ".join(["tempostar", *sorted(formats)])
        raise ImportRefused(f"format: unknown format {start.format!r} (known: {known})")
    try:
        tempostar.stock_codec(start.encoding)
    except ValueError as exc:
        raise ImportRefused(f"encoding: {exc}") from exc
    if start.mode == "per-row" and (start.kind != "stock" or start.format != "tempostar"):
        raise ImportRefused(
            "mode: per-row reads 更新モード/更新対象 from each row; only the tempostar stock format has them"
        )
    if start.kind == "catalog" and start.format != "tempostar" and not start.shop:
        raise ImportRefused("shop: a mall product file records that shop's listings: give --shop")


def table_name(job: int, kind: control.ImportKind) -> str:
    return f"{kind}_{job}"


def open_staging(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    return db


def stage(spool: Path, staging: Path, job: int, start: control.ImportStart) -> StageSummary:
    """Parse the spooled file and stage its rows and row errors (runs on a worker thread)."""
    table = table_name(job, start.kind)
    db = open_staging(staging)
    try:
        db.execute(f"DROP TABLE IF EXISTS {table}")
        db.execute(f"DROP TABLE IF EXISTS {table}_errors")
        if start.kind == "stock":
            db.execute(
                f"CREATE TABLE {table} (line INTEGER PRIMARY KEY, code TEXT NOT NULL, "
                "value INTEGER NOT NULL, reserve INTEGER, is_add INTEGER NOT NULL, "
                "is_actual INTEGER NOT NULL, item_id TEXT NOT NULL DEFAULT '', "
                "variation TEXT NOT NULL DEFAULT '[]')"
            )
        else:
            db.execute(
                f"CREATE TABLE {table} (line INTEGER PRIMARY KEY, code TEXT NOT NULL, "
                "name TEXT NOT NULL, item_id TEXT NOT NULL DEFAULT '', "
                "variation TEXT NOT NULL DEFAULT '[]')"
            )
        db.execute(f"CREATE TABLE {table}_errors (line INTEGER NOT NULL, message TEXT NOT NULL)")
        rows = errors = 0
        with spool.open("rb") as handle:
            try:
                parsed = _parse(handle, start)
                db.execute("BEGIN")
                for batch in _batches(parsed):
                    good = [r for r in batch if not isinstance(r, RowError)]
                    bad = [(r.line, r.message()) for r in batch if isinstance(r, RowError)]
                    if good:
                        placeholders = ", ".join("?" * len(good[0]))
                        db.executemany(f"INSERT INTO {table} VALUES ({placeholders})", good)
                    if bad:
                        db.executemany(f"INSERT INTO {table}_errors VALUES (?, ?)", bad)
                    rows += len(good)
                    errors += len(bad)
                db.execute("COMMIT")
            except tempostar.LineTooLong as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                return StageSummary(table=table, rows=0, errors=0, fatal=str(exc))
        return StageSummary(table=table, rows=rows, errors=errors)
    finally:
        db.close()


def drop_staged(staging: Path, table: str) -> None:
    db = open_staging(staging)
    try:
        db.execute(f"DROP TABLE IF EXISTS {table}")
        db.execute(f"DROP TABLE IF EXISTS {table}_errors")
    finally:
        db.close()


def clear_staging(staging: Path, uploads: Path) -> None:
    """At start: what an interrupted daemon left half-done is of no use any more."""
    staging.unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        staging.with_name(staging.name + suffix).unlink(missing_ok=True)
    if uploads.exists():
        for leftover in uploads.iterdir():
            leftover.unlink()


StagedRow = tuple[object, ...]


def _parse(handle: BinaryIO, start: control.ImportStart) -> Iterator[StagedRow | RowError]:
    if start.format == "tempostar":
        if start.kind == "stock":
            for row in tempostar.read_stock_csv(
                handle, target=start.target, mode=start.mode, encoding=start.encoding
            ):
                if isinstance(row, RowError):
                    yield row
                else:
                    yield (
                        row.line,
                        row.code,
                        row.value,
                        row.reserve,
                        int(row.mode == "add"),
                        int(row.target == "actual"),
                        "",
                        "[]",
                    )
        else:
            for item in tempostar.read_catalog_csv(handle, encoding=start.encoding):
                yield (
                    item
                    if isinstance(item, RowError)
                    else (item.line, item.code, item.name, "", "[]")
                )
        return
    yield from _parse_mall_file(handle, start)


def _parse_mall_file(
    handle: BinaryIO, start: control.ImportStart
) -> Iterator[StagedRow | RowError]:
    mall = module(mall_formats()[start.format])
    lines = decoded_lines(
        tempostar.split_lines(iter(lambda: handle.read(1 << 16), b"")), start.encoding
    )
    seen: dict[str, int] = {}
    for row in mall.read_stock_file(start.format, lines):
        if isinstance(row, RowError):
            yield row
            continue
        assert isinstance(row, StockRow)
        variation = msgspec.json.encode(row.variation).decode()
        if start.kind == "catalog":
            if row.sku in seen:
                yield RowError(
                    line=row.line,
                    code=row.sku,
                    reason=f"duplicate code: already on line {seen[row.sku]}",
                )
                continue
            seen[row.sku] = row.line
            yield (row.line, row.sku, row.name, row.item_id, variation)
            continue
        if row.quantity is None:
            yield RowError(line=row.line, code=row.sku, reason="this row carries no stock quantity")
            continue
        if row.sku in seen:
            yield RowError(
                line=row.line,
                code=row.sku,
                reason=f"duplicate code: already on line {seen[row.sku]}",
            )
            continue
        seen[row.sku] = row.line
        if start.mode == "overwrite" and row.quantity < 0:
            yield RowError(
                line=row.line, code=row.sku, reason=f"quantity {row.quantity} is below 0"
            )
            continue
        yield (
            row.line,
            row.sku,
            row.quantity,
            None,
            int(start.mode == "add"),
            int(start.target == "actual"),
            row.item_id,
            variation,
        )


def _batches(rows: Iterable[StagedRow | RowError]) -> Iterator[list[StagedRow | RowError]]:
    batch: list[StagedRow | RowError] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= STAGE_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def write_download(database: Path, path: Path, target: control.ExportTarget, encoding: str) -> int:
    """Write the stock download from a read-only snapshot; returns the number of SKUs."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    count = 0
    try:
        db.execute("BEGIN")  # one snapshot for the whole file
        records = db.execute(
            "SELECT s.sku, s.expected, s.reserve, CASE WHEN s.actual != 0 THEN s.actual END "
            "FROM stock s ORDER BY s.sku"
        )

        def counted() -> Iterator[tempostar.StockRecord]:
            nonlocal count
            for record in records:
                count += 1
                yield record

        partial = path.with_name(path.name + ".part")
        with partial.open("wb") as out:
            for chunk in tempostar.write_stock_csv(counted(), target=target, encoding=encoding):
                out.write(chunk)
        partial.replace(path)
    finally:
        db.close()
    return count
