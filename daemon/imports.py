"""Stock and catalog files on their way in, and stock downloads on their way out.

An upload is parsed while it arrives: chunks go to a parser thread, and each batch of parsed
rows goes to the ledger, which keeps it in a TEMP table of its own connection (never
written to the database file). At finish the ledger applies the staged rows in one
transaction of set-based SQL. Upload, parsing and staging overlap, the ledger serves other
requests in between, nothing is held whole in memory, and a crash before the final commit
applies nothing (TEMP tables die with the connection).

Downloads read the stock through a read-only connection (a WAL snapshot), so writing a
large file never holds up the ledger either.
"""

from __future__ import annotations

import queue
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path

import msgspec
import trio

from daemon.store import MAX_JOB_MESSAGES
from protocols import control, tempostar
from protocols.malls import capabilities, module
from protocols.malls.base import RowError, StockRow, decoded_lines

STAGE_BATCH = 20_000


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


class ImportPipeline:
    """One upload's way from chunks to staged rows.

    ``feed`` hands chunks to a parser thread (bounded queue: a fast client waits for the
    parser); the parser sends batches of valid rows back to trio, where ``run`` passes them
    to the ledger as ``StageRows``. Row errors are counted; the first ``MAX_JOB_MESSAGES``
    are kept for the job log.
    """

    def __init__(
        self,
        job: int,
        start: control.ImportStart,
        started_at: float,
        parser_threads: trio.CapacityLimiter,
    ) -> None:
        self.job = job
        self.start = start
        self.started_at = started_at
        self.parser_threads = parser_threads
        self.chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self.errors = 0
        self.messages: list[tuple[int, str]] = []
        self.fatal = ""
        self.staged = 0
        self.done = trio.Event()
        self._closed = False

    async def feed(self, chunk: bytes) -> None:
        await trio.to_thread.run_sync(self.chunks.put, chunk, abandon_on_cancel=True)

    async def close(self) -> None:
        """No more chunks (at finish, and when the upload is abandoned)."""
        if not self._closed:
            self._closed = True
            await trio.to_thread.run_sync(self.chunks.put, None, abandon_on_cancel=True)

    async def run(
        self,
        stage_rows: Callable[[list[tuple[object, ...]]], Awaitable[None]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        batches_send, batches_receive = trio.open_memory_channel[list[tuple[object, ...]]](2)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._run_parser, batches_send)
                task_status.started()
                async with batches_receive:
                    async for batch in batches_receive:
                        if self.fatal:
                            continue  # keep draining so that the parser can finish
                        try:
                            await stage_rows(batch)
                        except Exception as exc:
                            self.fatal = f"staging failed: {exc}"
                            continue
                        self.staged += len(batch)
        finally:
            self.done.set()

    async def _run_parser(self, batches: trio.MemorySendChannel[list[tuple[object, ...]]]) -> None:
        async with batches:
            await trio.to_thread.run_sync(
                self._parse,
                trio.lowlevel.current_trio_token(),
                batches,
                limiter=self.parser_threads,
            )

    def _parse(
        self,
        token: trio.lowlevel.TrioToken,
        batches: trio.MemorySendChannel[list[tuple[object, ...]]],
    ) -> None:
        ended = False

        def chunks() -> Iterator[bytes]:
            nonlocal ended
            yield from iter(self.chunks.get, None)
            ended = True

        try:
            for batch in _batches(_parse(tempostar.split_lines(chunks()), self.start)):
                good: list[tuple[object, ...]] = []
                for row in batch:
                    if isinstance(row, RowError):
                        self.errors += 1
                        if len(self.messages) < MAX_JOB_MESSAGES:
                            self.messages.append((row.line, row.message()))
                    else:
                        good.append(row)
                if good:
                    trio.from_thread.run(batches.send, good, trio_token=token)
        except tempostar.LineTooLong as exc:
            self.fatal = str(exc)
        except (trio.BrokenResourceError, trio.RunFinishedError, trio.Cancelled):
            # the daemon is stopping: the job shows "interrupted" after the restart
            self.fatal = "interrupted: the daemon stopped while the file was read"
        finally:
            if not ended:
                # parsing stopped early: read and drop the rest so that a waiting feeder goes on
                for _ in iter(self.chunks.get, None):
                    pass


def clear_partial_downloads(downloads: Path) -> None:
    """At start: downloads of jobs that never finished are of no use any more."""
    for leftover in downloads.glob("*.part"):
        leftover.unlink()


StagedRow = tuple[object, ...]


def _parse(lines: Iterable[bytes], start: control.ImportStart) -> Iterator[StagedRow | RowError]:
    if start.format == "tempostar":
        if start.kind == "stock":
            for row in tempostar.read_stock_csv(
                lines, target=start.target, mode=start.mode, encoding=start.encoding
            ):
                # (line, code, value, reserve, mode, target): the staged columns, in C
                yield row if isinstance(row, RowError) else msgspec.structs.astuple(row)
        else:
            for item in tempostar.read_catalog_csv(lines, encoding=start.encoding):
                yield (
                    item
                    if isinstance(item, RowError)
                    else (item.line, item.code, item.name, "", "[]")
                )
        return
    yield from _parse_mall_file(lines, start)


def _parse_mall_file(
    raw_lines: Iterable[bytes], start: control.ImportStart
) -> Iterator[StagedRow | RowError]:
    mall = module(mall_formats()[start.format])
    lines = decoded_lines(raw_lines, start.encoding)
    seen: dict[str, int] = {}
    for row in mall.read_stock_file(start.format, lines):
        if isinstance(row, RowError):
            yield row
            continue
        assert isinstance(row, StockRow)
        if problem := tempostar.code_problem(row.sku):
            yield RowError(line=row.line, code=row.sku[:64], field="code", reason=problem)
            continue
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
            start.mode,
            start.target,
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
