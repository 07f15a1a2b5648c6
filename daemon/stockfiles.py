"""Stock and catalog files on their way in, and stock downloads on their way out.

An upload is appended to a spool file in the daemon's state directory as its chunks arrive;
nothing of it is parsed or held in memory meanwhile, and the ledger is not involved. At
finish a parser thread reads the spool and hands the ledger one batch of rows at a time,
which the ledger applies as they come, all inside the import's one transaction: parsing
(Python) and applying (SQLite, which lets go of the GIL) run on two cores at once. A crash
before the final commit applies nothing; the spool file is removed at the next start.

Downloads read the stock through a read-only connection (a WAL snapshot), so writing a
large file never holds up the ledger either.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import msgspec

from daemon.commands import ImportBatch
from daemon.ledger.jobs import MAX_ROW_ERRORS
from daemon.ledger.snapshots import snapshot, stock_records
from protocols import control, sku, tempostar
from protocols.listings import variation_key
from protocols.malls import capabilities, module
from protocols.malls.base import RowError, StockRow, csv_records

BATCH_ROWS = 20_000
SPOOL_READ_BYTES = 1 << 20
# Notes (how a mall file's SKU codes were made) kept for the job log; the rest are counted.
MAX_NOTES = 100

log = logging.getLogger(__name__)


class ImportRefused(ValueError):
    """The import cannot start: the reason names the option."""


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
    if start.kind == "audit" and not start.shop:
        raise ImportRefused("shop: an audit compares the file with one shop's targets: give --shop")


class ParsedFile:
    """A spooled upload, parsed on a thread of its own while the ledger applies it.

    The ledger iterates: that starts the parser thread, and however the iteration ends, the
    parser is stopped, waited for, and the spool file removed; a file nobody iterates leaves
    no thread behind. A bounded queue lies between the two, so memory stays a few batches.
    Row errors are counted; the first ``MAX_ROW_ERRORS`` are kept for the job log.
    """

    def __init__(
        self,
        spool: Path,
        start: control.ImportStart,
        batch_rows: int = BATCH_ROWS,
        applied: Callable[[int], None] = lambda rows: None,
    ) -> None:
        self.spool = spool
        self.start = start
        self.batch_rows = batch_rows
        self.applied = applied
        self.errors = 0
        self.row_errors: list[RowError] = []
        self.fatal = ""
        self.notes: list[str] = []
        self.more_notes = 0
        self._batches: queue.Queue[ImportBatch | None] = queue.Queue(maxsize=4)
        self._stopping = threading.Event()

    def __iter__(self) -> Iterator[ImportBatch]:
        parser = threading.Thread(target=self._produce, name=f"parse {self.spool.name}")
        parser.start()
        try:
            rows = 0
            while (batch := self._batches.get()) is not None:
                yield batch
                # asked for the next batch: this one is applied (not yet committed)
                rows += batch.row_count
                self.applied(rows)
        finally:
            self._stopping.set()
            # Make room: a parser waiting to put a batch can put it and then sees the flag.
            # After the flag is set it puts at most one more item, which always fits.
            while True:
                try:
                    self._batches.get_nowait()
                except queue.Empty:
                    break
            parser.join()
            self.spool.unlink(missing_ok=True)

    def _produce(self) -> None:
        try:
            with self.spool.open("rb") as file:
                chunks = iter(lambda: file.read(SPOOL_READ_BYTES), b"")
                for batch in _batches(_parse(chunks, self.start, self.add_note), self):
                    if self._stopping.is_set():
                        return
                    self._batches.put(batch)
        except tempostar.LineTooLong as exc:
            self.fatal = str(exc)
        except Exception as exc:
            log.exception("parsing the upload %s failed", self.spool)
            self.fatal = f"reading the file failed: {exc}"
        finally:
            if not self._stopping.is_set():
                self._batches.put(None)

    def note(self, error: RowError) -> None:
        self.errors += 1
        if len(self.row_errors) < MAX_ROW_ERRORS:
            self.row_errors.append(error)

    def add_note(self, text: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append(text)
        else:
            self.more_notes += 1
            self.notes[-1] = f"… and {self.more_notes:,} more notes like these"


def clear_leftovers(downloads: Path, uploads: Path) -> None:
    """At start: files of jobs that never finished (a crash, a kill) are of no use any more."""
    for leftover in [*downloads.glob("*.part"), *uploads.glob("*.upload")]:
        leftover.unlink()


# A stock row (a StockImportRow, or its fields plus item_id and variation from a mall file)
# or a catalog row: ImportBatch says which fields in which order.
ParsedRow = tempostar.StockImportRow | tuple[object, ...]


def _parse(
    chunks: Iterable[bytes], start: control.ImportStart, note: Callable[[str], None]
) -> Iterator[ParsedRow | RowError]:
    if start.format == "tempostar":
        lines = tempostar.split_lines(chunks)
        if start.kind in ("stock", "audit"):
            yield from tempostar.read_stock_csv(
                lines,
                target=start.target,
                mode=start.mode,
                encoding=start.encoding,
                allow_negative=start.allow_negative,
            )
        else:
            for item in tempostar.read_catalog_csv(lines, encoding=start.encoding):
                yield (
                    item
                    if isinstance(item, RowError)
                    else (item.line, item.code, item.name, "", "[]", "")
                )
        return
    yield from _parse_mall_file(chunks, start, note)


def _parse_mall_file(
    chunks: Iterable[bytes], start: control.ImportStart, note: Callable[[str], None]
) -> Iterator[ParsedRow | RowError]:
    """A mall file's rows; ``note`` takes what the job log is to say of how codes were made."""
    mall = module(mall_formats()[start.format])
    seen: dict[str, int] = {}
    negative_allowed = start.allow_negative and start.target == "expected"
    for row in mall.read_stock_file(start.format, csv_records(chunks, start.encoding)):
        if isinstance(row, RowError):
            yield row
            continue
        assert isinstance(row, StockRow)
        # with --shop a stock row reaches the SKU its listing names, whatever the default
        # rule's code: the ledger refuses the row if no listing maps it and no SKU has it
        if row.note:
            note(row.note)
        mapped = start.kind in ("stock", "audit") and bool(start.shop)
        if not mapped and (problem := sku.code_problem(row.sku)):
            yield RowError(
                line=row.line, code=row.sku[:64], field="code", reason=problem + row.code_hint
            )
            continue
        variation = variation_key(row.variation)
        if start.kind == "catalog":
            if row.sku in seen:
                yield RowError(
                    line=row.line,
                    code=row.sku,
                    reason=f"duplicate code: already on line {seen[row.sku]}",
                )
                continue
            seen[row.sku] = row.line
            yield (row.line, row.sku, row.name, row.item_id, variation, row.alt_item_id)
            continue
        if row.quantity is None:
            yield RowError(line=row.line, code=row.sku, reason="this row carries no stock quantity")
            continue
        if row.sku in seen and not mapped:
            yield RowError(
                line=row.line,
                code=row.sku,
                reason=f"duplicate code: already on line {seen[row.sku]}",
            )
            continue
        seen[row.sku] = row.line
        if start.mode == "overwrite" and row.quantity < 0 and not negative_allowed:
            yield RowError(
                line=row.line,
                code=row.sku,
                reason=f"quantity {row.quantity} is below 0 (an import never sets a negative "
                "count; --allow-negative takes 想定在庫数 below 0)",
            )
            continue
        yield (
            row.line,
            row.sku,
            row.quantity,
            None,
            start.mode,
            start.target,
            row.item_id,
            variation,
        )


def _batches(rows: Iterable[ParsedRow | RowError], parsed: ParsedFile) -> Iterator[ImportBatch]:
    start = parsed.start
    # with --shop, lines are checked for reaching one SKU twice, which needs each row's line
    may_be_uniform = (
        start.kind == "stock"
        and start.format == "tempostar"
        and start.mode != "per-row"
        and not start.shop
    )
    batch: list[ParsedRow] = []
    for row in rows:
        if isinstance(row, RowError):
            parsed.note(row)
            continue
        batch.append(row)
        if len(batch) >= parsed.batch_rows:
            yield _batch(batch, may_be_uniform)
            batch = []
    if batch:
        yield _batch(batch, may_be_uniform)


_json = msgspec.json.Encoder()


def _batch(rows: list[ParsedRow], may_be_uniform: bool) -> ImportBatch:
    if may_be_uniform:
        stock_rows: list[tempostar.StockImportRow] = rows  # type: ignore[assignment]
        first, last = stock_rows[0].line, stock_rows[-1].line
        if last - first == len(rows) - 1 and all(row.reserve is None for row in stock_rows):
            # the common file: {code: value}, which SQLite reads without re-parsing each row
            values = {row.code: row.value for row in stock_rows}
            return ImportBatch(
                rows=_json.encode(values).decode(),
                row_count=len(rows),
                uniform=True,
                first_line=first,
            )
    return ImportBatch(rows=_json.encode(rows).decode(), row_count=len(rows))


def write_download(database: Path, path: Path, target: control.ExportTarget, encoding: str) -> int:
    """Write the stock download from a read-only snapshot; returns the number of SKUs."""
    count = 0
    with snapshot(database) as db:

        def counted() -> Iterator[tempostar.StockRecord]:
            nonlocal count
            for record in stock_records(db):
                count += 1
                yield record

        partial = path.with_name(path.name + ".part")
        with partial.open("wb") as out:
            for chunk in tempostar.write_stock_csv(counted(), target=target, encoding=encoding):
                out.write(chunk)
        partial.replace(path)
    return count
