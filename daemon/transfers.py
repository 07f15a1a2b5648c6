"""A control session's transfers: imports whose file is uploaded in chunks, and downloads.

An upload belongs to the connection that opened it: its chunks are appended to a spool file
in ``state_dir/uploads`` (the ledger is not involved), and at ``import_finish`` the ledger
parses and applies the spool in one transaction. A download is a job of its own that
outlives the connection: the file is written from a read-only snapshot, then fetched in
chunks by any connection.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path
from typing import BinaryIO

import msgspec
import trio

from daemon.commands import (
    ApplyImport,
    CreateJob,
    FinishJob,
    LedgerRequest,
    LedgerUnavailable,
    call,
)
from daemon.notify import sd_status
from daemon.stockfiles import ImportRefused, ParsedFile, check_import, write_download
from daemon.wiring import StatePaths
from protocols import control, tempostar

log = logging.getLogger(__name__)

MAX_OPEN_UPLOADS = 4  # each open upload holds a file open


class Upload:
    """An import whose file is still arriving on this connection, appended to its spool file."""

    def __init__(
        self,
        job: int,
        start: control.ImportStart,
        spool: Path,
        file: BinaryIO,
        slot: object,
    ) -> None:
        self.job = job
        self.start = start
        self.spool = spool
        self.file = file
        self.slot = slot
        self.started_at = trio.current_time()
        self.next_seq = 0
        self.received = 0


class Transfers:
    """One connection's imports and downloads (uploads belong to the connection that opened them)."""

    def __init__(
        self,
        ledger: trio.MemorySendChannel[LedgerRequest],
        paths: StatePaths,
        background: trio.Nursery,
        upload_slots: trio.CapacityLimiter,
    ) -> None:
        self.ledger = ledger
        self.paths = paths
        self.background = background
        self.upload_slots = upload_slots
        self.uploads: dict[int, Upload] = {}

    async def handle(self, request: control.Request, actor: str) -> control.ServerMessage:
        try:
            match request:
                case control.ImportStart():
                    return await self.start_import(request, actor)
                case control.UploadChunk():
                    return await self.receive_chunk(request, actor)
                case control.ImportFinish():
                    return await self.finish_import(request, actor)
                case control.ExportStart():
                    return await self.start_export(request, actor)
                case control.Download():
                    return await self.download(request, actor)
        except LedgerUnavailable as exc:
            return control.Error(id=request.id, code="unavailable", message=str(exc))
        raise AssertionError(f"not a job request: {request}")

    async def start_import(self, start: control.ImportStart, actor: str) -> control.ServerMessage:
        try:
            check_import(start)
        except ImportRefused as exc:
            field = str(exc).partition(": ")[0]
            return control.Error(id=start.id, code="invalid", message=str(exc), field=field)
        slot = object()
        try:
            self.upload_slots.acquire_on_behalf_of_nowait(slot)
        except trio.WouldBlock:
            return control.Error(
                id=start.id,
                code="unavailable",
                message=f"{MAX_OPEN_UPLOADS} imports are already being uploaded; try again when one finished",
            )
        try:
            job = await call(
                self.ledger,
                CreateJob(
                    kind=kind_of(start),
                    shop=start.shop,
                    detail=detail_of(start),
                    dry_run=start.dry_run,
                ),
                actor,
                control.Job,
            )
            if isinstance(job, control.Error):
                self.upload_slots.release_on_behalf_of(slot)
                return msgspec.structs.replace(job, id=start.id)
            spool = self.paths.uploads / f"job-{job.id}.upload"
            try:
                file = await trio.to_thread.run_sync(spool.open, "wb")
            except OSError as exc:
                self.upload_slots.release_on_behalf_of(slot)
                return await self._refuse_upload(start.id, job.id, spool, exc, actor)
        except BaseException:
            self.upload_slots.release_on_behalf_of(slot)
            raise
        self.uploads[job.id] = Upload(job.id, start, spool, file, slot)
        return control.JobReply(id=start.id, job=job)

    async def _refuse_upload(
        self, request_id: int, job: int, spool: Path, exc: OSError, actor: str
    ) -> control.ServerMessage:
        """The spool file cannot be written (disk full, say): the job fails, nothing applied."""
        message = f"the daemon cannot store the upload: {exc.strerror or exc}; nothing was applied"
        log.error("import job %d: %s", job, message)
        with contextlib.suppress(OSError):
            await trio.Path(spool).unlink(missing_ok=True)
        await finish_job(
            self.ledger, FinishJob(job=job, result="failed", messages=(message,)), actor
        )
        return control.Error(id=request_id, code="unavailable", message=message, field="job")

    async def _drop_upload(self, upload: Upload) -> None:
        """Close and remove an upload's spool file and free its slot, whatever fails."""
        try:
            with contextlib.suppress(OSError):
                await trio.to_thread.run_sync(upload.file.close)
            with contextlib.suppress(OSError):
                await trio.Path(upload.spool).unlink(missing_ok=True)
        finally:
            self.upload_slots.release_on_behalf_of(upload.slot)

    async def receive_chunk(self, chunk: control.UploadChunk, actor: str) -> control.ServerMessage:
        upload = self.uploads.get(chunk.job)
        if upload is None:
            return _no_open_upload(chunk.id, chunk.job)
        if chunk.seq > upload.next_seq:
            return control.Error(
                id=chunk.id,
                code="invalid",
                message=f"chunk {chunk.seq} arrived before chunk {upload.next_seq}",
                field="seq",
            )
        if chunk.seq == upload.next_seq:
            try:
                await trio.to_thread.run_sync(upload.file.write, chunk.data)
            except OSError as exc:
                del self.uploads[chunk.job]
                await self._drop_upload(upload)
                return await self._refuse_upload(chunk.id, upload.job, upload.spool, exc, actor)
            upload.next_seq += 1
            upload.received += len(chunk.data)
        # an earlier seq is a re-sent chunk: acknowledged again, not appended again
        return control.ChunkAck(
            id=chunk.id, job=chunk.job, seq=chunk.seq, received_bytes=upload.received
        )

    async def finish_import(
        self, finish: control.ImportFinish, actor: str
    ) -> control.ServerMessage:
        upload = self.uploads.pop(finish.job, None)
        if upload is None:
            return _no_open_upload(finish.id, finish.job)
        try:
            await trio.to_thread.run_sync(upload.file.close)
        except OSError as exc:
            return await self._refuse_upload(finish.id, upload.job, upload.spool, exc, actor)
        finally:
            self.upload_slots.release_on_behalf_of(upload.slot)
        uploaded_at = trio.current_time()
        # the ledger parses the spool file while it applies it, and removes it
        source = ParsedFile(
            upload.spool,
            upload.start,
            applied=lambda rows: sd_status(
                f"import job {upload.job}: {rows:,} rows checked (dry run)"
                if upload.start.dry_run
                else f"import job {upload.job}: {rows:,} rows applied, not yet committed"
            ),
        )
        try:
            result = await call(
                self.ledger,
                ApplyImport(job=upload.job, start=upload.start, source=source),
                actor,
                control.Job,
            )
        except LedgerUnavailable:
            await trio.Path(upload.spool).unlink(missing_ok=True)
            raise
        finally:
            sd_status("ready")
        # the ledger removes the spool once it read it; it may have refused it unread
        await trio.Path(upload.spool).unlink(missing_ok=True)
        if isinstance(result, control.Error):
            result = await call(
                self.ledger,
                FinishJob(job=upload.job, result="failed", messages=(result.message,)),
                actor,
                control.Job,
            )
        log.info(
            "import job %d: %d bytes uploaded in %.2fs, then parsed and applied in %.2fs",
            upload.job,
            upload.received,
            uploaded_at - upload.started_at,
            trio.current_time() - uploaded_at,
        )
        if isinstance(result, control.Error):
            return msgspec.structs.replace(result, id=finish.id)
        return control.JobReply(id=finish.id, job=result)

    async def abandon_uploads(self, actor: str) -> None:
        for upload in self.uploads.values():
            await self._drop_upload(upload)
            try:
                await finish_job(
                    self.ledger,
                    FinishJob(
                        job=upload.job,
                        result="failed",
                        messages=(
                            "upload abandoned: the connection closed before the file was"
                            " complete; nothing was applied",
                        ),
                    ),
                    actor,
                )
            except LedgerUnavailable:
                pass  # the next start marks it interrupted
        self.uploads.clear()

    async def start_export(self, start: control.ExportStart, actor: str) -> control.ServerMessage:
        try:
            tempostar.stock_codec(start.encoding)
        except ValueError as exc:
            return control.Error(id=start.id, code="invalid", message=str(exc), field="encoding")
        job = await call(
            self.ledger,
            CreateJob(kind="export", detail=f"{start.format} {start.target} {start.encoding}"),
            actor,
            control.Job,
        )
        if isinstance(job, control.Error):
            return msgspec.structs.replace(job, id=start.id)
        # the export outlives this connection: it gets a ledger channel of its own
        self.background.start_soon(self._export, job.id, start, actor, self.ledger.clone())
        return control.JobReply(id=start.id, job=job)

    async def _export(
        self,
        job: int,
        start: control.ExportStart,
        actor: str,
        ledger: trio.MemorySendChannel[LedgerRequest],
    ) -> None:
        path = self.download_path(job)
        async with ledger:
            await self._write_export(job, path, start, actor, ledger)

    async def _write_export(
        self,
        job: int,
        path: Path,
        start: control.ExportStart,
        actor: str,
        ledger: trio.MemorySendChannel[LedgerRequest],
    ) -> None:
        try:
            try:
                count = await trio.to_thread.run_sync(
                    write_download, self.paths.database, path, start.target, start.encoding
                )
            except (tempostar.UnencodableCode, OSError, sqlite3.Error) as exc:
                await finish_job(
                    ledger, FinishJob(job=job, result="failed", messages=(str(exc),)), actor
                )
                return
            size = (await trio.Path(path).stat()).st_size
            await finish_job(
                ledger,
                FinishJob(job=job, result="ok", count=count, success=count, download_bytes=size),
                actor,
            )
        except LedgerUnavailable:
            log.info("export job %d left unfinished: the daemon is stopping", job)

    def download_path(self, job: int) -> Path:
        return self.paths.downloads / f"job-{job}.csv"

    async def download(self, request: control.Download, actor: str) -> control.ServerMessage:
        job = await call(
            self.ledger, control.JobShow(id=request.id, job=request.job), actor, control.JobReply
        )
        if isinstance(job, control.Error):
            return job
        if job.job.kind != "export" or job.job.state != "done" or job.job.result != "ok":
            return control.Error(
                id=request.id,
                code="refused",
                message=f"job {request.job} is not a finished download (kind {job.job.kind}, state {job.job.state})",
                field="job",
            )
        if request.offset > job.job.download_bytes:
            return control.Error(
                id=request.id,
                code="invalid",
                message=f"offset {request.offset} is beyond the file's {job.job.download_bytes} bytes",
                field="offset",
            )
        length = min(request.length, control.UPLOAD_CHUNK_BYTES)
        try:
            async with await trio.open_file(self.download_path(request.job), "rb") as handle:
                await handle.seek(request.offset)
                data = await handle.read(length)
        except OSError as exc:
            return control.Error(
                id=request.id,
                code="not_found",
                message=f"the file of job {request.job} is gone: {exc.strerror}",
                field="job",
            )
        eof = request.offset + len(data) >= job.job.download_bytes
        return control.DownloadChunk(
            id=request.id, job=request.job, offset=request.offset, data=data, eof=eof
        )


def kind_of(start: control.ImportStart) -> str:
    return {"stock": "import", "catalog": "sku-import", "audit": "audit"}[start.kind]


def detail_of(start: control.ImportStart) -> str:
    """The job log's one-line description of an import's options."""
    return " ".join(
        part
        for part in (
            start.format,
            start.encoding,
            start.target if start.kind == "stock" else "",
            start.mode if start.kind == "stock" else "",
            "dry-run" if start.dry_run else "",
            "file fix" if start.kind == "audit" and start.fix else "",
            "file" if start.kind == "audit" and not start.fix else "",
            "all-or-nothing" if start.all_or_nothing else "",
            start.file_name,
        )
        if part
    )


async def finish_job(
    ledger: trio.MemorySendChannel[LedgerRequest], finish: FinishJob, actor: str
) -> None:
    """Record a job's end; a refusal (the job already ended) is logged, not raised: the
    connection or export that asks has nothing left to undo."""
    result = await call(ledger, finish, actor, control.Job)
    if isinstance(result, control.Error):
        log.warning("job %d not finished as %s: %s", finish.job, finish.result, result.message)


def _no_open_upload(request_id: int, job: int) -> control.Error:
    return control.Error(
        id=request_id,
        code="not_found",
        message=f"no open upload for job {job} on this connection",
        field="job",
    )
