"""A file sent to the daemon as an import, the CLI's way (``cli.main.upload``) on the TUI's
asyncio link: ``import_start``, then ``upload_chunk`` frames (a few in flight, each
``chunk_ack`` counted as sent), read from the disk on a thread so the screen stays live;
``import_finish`` is the caller's, which shows that it waits for the daemon to apply.
Also what a finished import job says, read back into rows: a dry run's before → after."""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from cli.client import ClientError
from cli.main import UPLOAD_WINDOW
from protocols import control
from tui.link import Link


class FileUnreadable(ClientError):
    """The operator's file could not be read; the reason names it."""


async def send_file(
    link: Link, path: Path, start: control.ImportStart, sent: Callable[[int], None]
) -> int:
    """Open the import and send ``path`` chunk by chunk; ``sent`` is told each chunk's size
    once the daemon acknowledged it. The import's job id, to be finished."""
    try:
        handle = await asyncio.to_thread(path.open, "rb")
    except OSError as exc:
        raise FileUnreadable(f"cannot read {path}: {exc.strerror}") from exc
    in_flight: deque[tuple[asyncio.Task[Any], int]] = deque()
    try:
        started: control.JobReply = await link.request(start)
        job = started.job.id
        seq = 0
        while chunk := await asyncio.to_thread(handle.read, control.UPLOAD_CHUNK_BYTES):
            # Each task queues its frame at its first step, and tasks first run in the order
            # they were made: the chunks leave in order, as the daemon requires.
            frame = control.UploadChunk(id=0, job=job, seq=seq, data=chunk)
            in_flight.append((asyncio.create_task(link.request(frame)), len(chunk)))
            seq += 1
            if len(in_flight) >= UPLOAD_WINDOW:
                await _acknowledged(in_flight, sent)
        while in_flight:
            await _acknowledged(in_flight, sent)
        return job
    except OSError as exc:
        raise FileUnreadable(f"cannot read {path}: {exc.strerror}") from exc
    finally:
        for task, _ in in_flight:
            task.cancel()
        await asyncio.gather(*(task for task, _ in in_flight), return_exceptions=True)
        handle.close()


async def _acknowledged(
    in_flight: deque[tuple[asyncio.Task[Any], int]], sent: Callable[[int], None]
) -> None:
    task, size = in_flight[0]
    await task
    in_flight.popleft()
    sent(size)


class Change(NamedTuple):
    """One row of a dry run: what the import would set, from what."""

    line: int
    code: str
    field: str  # "expected" or "actual"
    before: int
    after: int
    reserve: tuple[int, int] | None = None  # 保留在庫数 before and after, when it would change


# the daemon's dry-run line (daemon/ledger/imports.py): "line 3 expected 5 → 8" and,
# when the file also sets 保留在庫数, ", reserve 0 → 2"
DRY_RUN_LINE = re.compile(
    r"line (\d+) \[(.*)\] (expected|actual) (-?\d+) → (-?\d+)(?:, reserve (-?\d+) → (-?\d+))?"
)


def read_job(job: control.Job) -> tuple[list[Change], list[str]]:
    """A finished import job's messages as the dry run's changes, and the other lines that
    are neither those nor row errors (``job.errors`` has those): notes, refusals, counts of
    what was left out."""
    row_errors = {error.message() for error in job.errors}
    changes: list[Change] = []
    notes: list[str] = []
    for message in job.messages:
        if message in row_errors:
            continue
        found = DRY_RUN_LINE.fullmatch(message) if job.dry_run else None
        if found is None:
            notes.append(message)
            continue
        line, code, field, before, after, reserve_before, reserve_after = found.groups()
        reserve = None
        if reserve_before is not None and reserve_after is not None:
            reserve = (int(reserve_before), int(reserve_after))
        changes.append(Change(int(line), code, field, int(before), int(after), reserve))
    return changes, notes
