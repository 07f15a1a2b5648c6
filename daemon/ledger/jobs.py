"""The job log (スケジュール一覧): every import, download, bulk sync and intake batch is a job
with its counts and per-row messages."""

from __future__ import annotations

import msgspec

from daemon.commands import CreateJob, FinishJob
from daemon.ledger import shops
from daemon.ledger.tx import DomainError, Tx
from protocols import control
from protocols.malls.base import RowError

# row errors a job keeps with their fields (the rest are counted), and all the lines it keeps
# (row errors and a dry run's before → after lines)
MAX_ROW_ERRORS = 10_000
MAX_JOB_MESSAGES = 120_000
JOBS_LIST_MAX = 1000
INTERRUPTED = "interrupted: the daemon stopped before this job finished; nothing of it was applied"


def jobs_list(tx: Tx, command: control.JobsList) -> control.JobsReply:
    rows = tx.db.execute(
        "SELECT id FROM jobs ORDER BY id DESC LIMIT ?", (max(1, min(command.limit, JOBS_LIST_MAX)),)
    ).fetchall()
    return control.JobsReply(
        id=command.id, jobs=tuple(get(tx, job_id, with_messages=False) for (job_id,) in rows)
    )


def get(tx: Tx, job_id: int, *, with_messages: bool = True) -> control.Job:
    found = tx.db.execute(
        "SELECT id, kind, shop, state, started_at, ended_at, result, count, success, failure, "
        "detail, download_bytes, dry_run FROM jobs WHERE id = ?",
        (job_id,),
    ).fetchone()
    if found is None:
        raise DomainError("not_found", f"unknown job {job_id}", "job")
    messages: list[str] = []
    errors: list[RowError] = []
    if with_messages:
        for message, line, code, field, reason in tx.db.execute(
            "SELECT message, line, code, field, reason FROM job_messages WHERE job = ? "
            "ORDER BY seq",
            (job_id,),
        ):
            messages.append(message)
            if line is not None:
                errors.append(RowError(line=line, code=code, field=field, reason=reason))
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
        dry_run,
    ) = found
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
        messages=tuple(messages),
        detail=detail,
        download_bytes=download_bytes,
        errors=tuple(errors),
        dry_run=bool(dry_run),
    )


def create(tx: Tx, command: CreateJob) -> control.Job:
    if command.shop:
        shops.get(tx, command.shop)  # an unknown shop is refused before any upload
    cursor = tx.db.execute(
        "INSERT INTO jobs(kind, shop, state, started_at, detail, dry_run) "
        "VALUES (?, ?, 'running', ?, ?, ?)",
        (command.kind, command.shop, tx.now(), command.detail, command.dry_run),
    )
    job = get(tx, cursor.lastrowid or 0)
    tx.publish(control.JobChanged(job=job))
    return job


def finish(tx: Tx, command: FinishJob) -> control.Job:
    updated = tx.db.execute(
        "UPDATE jobs SET state = 'done', ended_at = ?, result = ?, count = ?, success = ?, "
        "failure = ?, download_bytes = ? WHERE id = ? AND state = 'running'",
        (
            tx.now(),
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
    _write_messages(tx, command.job, command.messages)
    tx.publish(control.JobChanged(job=get(tx, command.job, with_messages=False)))
    return get(tx, command.job)


def record(tx: Tx, kind: str, shop: str, outcome: FinishJob) -> control.Job:
    """A job that starts and ends within one command (an intake batch): one row, done at
    once, one event; the job as it was stored, without reading it back."""
    now = tx.now()
    job_id = (
        tx.db.execute(
            "INSERT INTO jobs(kind, shop, state, started_at, ended_at, result, count, success, "
            "failure) VALUES (?, ?, 'done', ?, ?, ?, ?, ?, ?)",
            (kind, shop, now, now, outcome.result, outcome.count, outcome.success, outcome.failure),
        ).lastrowid
        or 0
    )
    messages = _write_messages(tx, job_id, outcome.messages)
    job = control.Job(
        id=job_id,
        kind=kind,
        shop=shop,
        state="done",
        started_at=now,
        ended_at=now,
        result=outcome.result,
        count=outcome.count,
        success=outcome.success,
        failure=outcome.failure,
    )
    tx.publish(control.JobChanged(job=job))
    return msgspec.structs.replace(
        job,
        messages=tuple(m if isinstance(m, str) else m.message() for m in messages),
        errors=tuple(m for m in messages if isinstance(m, RowError)),
    )


def _write_messages(tx: Tx, job: int, given: tuple[str | RowError, ...]) -> list[str | RowError]:
    """A job's lines (at most MAX_JOB_MESSAGES, then how many more); the lines written."""
    messages = list(given[:MAX_JOB_MESSAGES])
    if len(given) > MAX_JOB_MESSAGES:
        messages.append(f"… and {len(given) - MAX_JOB_MESSAGES} more messages")
    tx.db.executemany(
        "INSERT INTO job_messages(job, seq, message, line, code, field, reason) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (job, seq, message, None, None, None, None)
            if isinstance(message, str)
            else (
                job,
                seq,
                message.message(),
                message.line,
                message.code,
                message.field,
                message.reason,
            )
            for seq, message in enumerate(messages)
        ],
    )
    return messages


def fail_interrupted(tx: Tx) -> None:
    """At start: a job still running was cut off by a crash or a kill; nothing of it was
    applied (an import is one transaction)."""
    running = [job for (job,) in tx.db.execute("SELECT id FROM jobs WHERE state = 'running'")]
    for job in running:
        finish(tx, FinishJob(job=job, result="failed", messages=(INTERRUPTED,)))
