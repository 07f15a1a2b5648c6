"""The drift audit: what a mall shows, read back (its stock API, or a stock file the operator
downloaded), against each linked SKU's target in the outbox, and why they differ where
zaiko can tell: a push still pending; a quantity changed at the mall since zaiko sent it (an
edit in its admin) or a stock file its batch did not apply; a listing the mall does not
have; a listing zaiko does not know. ``fix`` records what the mall really shows, so that
each drifted SKU is pending again and its reflector sends the target.

An audit is a job of kind ``audit``: the quantities read are kept per job (``audit_seen``)
until it is finished; the shop's last audit is ``audits`` (shown in ``zaiko status``).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from daemon.commands import ApplyImport, CreateJob, FinishJob
from daemon.ledger import jobs, outbox, shops
from daemon.ledger.tx import DomainError, Tx
from protocols import control
from protocols.malls import capability
from protocols.malls.base import RowError
from protocols.settings import ShopSettings

MAX_FINDINGS = 200  # kept in the job's log; the counts cover them all
UNADDRESSABLE = -1  # what was "seen" of an item the mall's stock API cannot name
SeenItem = tuple[str, tuple[str, ...], int | None]  # item id, variation, shown


def check_readable(shop: ShopSettings) -> None:
    """Refused, with what to do instead, when the shop's stock cannot be read back by API."""
    cap = capability(shop.mall)
    if not cap.stock_out:
        raise DomainError(
            "refused", f"shop {shop.id}: {shop.mall} takes no stock from zaiko", "shop"
        )
    if not cap.stock_read:
        raise DomainError(
            "refused",
            f"shop {shop.id}: {shop.mall} has no stock API zaiko reads back; download its "
            f"stock file from the mall and run: zaiko audit --shop {shop.id} --file FILE",
            "shop",
        )
    if not (shop.api_base_url and shop.api_credential):
        raise DomainError(
            "refused",
            f"shop {shop.id}: the audit reads {shop.mall}'s stock API: set api_base_url and "
            f"api_credential (or audit a downloaded stock file with --file FILE)",
            "shop",
        )


def audit_start(tx: Tx, command: control.AuditStart) -> control.JobReply:
    """An audit by the mall's stock API: a job, and the shop's auditor is told."""
    shop = shops.get(tx, command.shop)
    check_readable(shop)
    running = tx.db.execute(
        "SELECT id FROM jobs WHERE kind = 'audit' AND shop = ? AND state = 'running'",
        (shop.id,),
    ).fetchone()
    if running is not None:
        raise DomainError(
            "conflict",
            f"shop {shop.id}: audit job {running[0]} is still running; "
            f"follow it with zaiko jobs show {running[0]}",
            "shop",
        )
    # what jobs cut short left behind
    tx.db.execute(
        "DELETE FROM audit_seen WHERE job NOT IN (SELECT id FROM jobs WHERE state = 'running')"
    )
    job = jobs.create(
        tx, CreateJob(kind="audit", shop=shop.id, detail="fix" if command.fix else "")
    )
    tx.publish(control.AuditRequested(shop=shop.id, job=job.id, fix=command.fix))
    return control.JobReply(id=command.id, job=job)


def running(tx: Tx, shop: str) -> tuple[tuple[int, bool], ...]:
    """The shop's audit jobs still running (job, fix): its auditor (re)starts them."""
    return tuple(
        (job, detail == "fix")
        for job, detail in tx.db.execute(
            "SELECT id, detail FROM jobs WHERE kind = 'audit' AND shop = ? AND state = 'running' "
            "AND detail IN ('', 'fix') ORDER BY id",
            (shop,),
        )
    )


def seen(tx: Tx, job: int, items: Iterable[SeenItem], at: str) -> None:
    """What the mall showed of the items asked at ``at``: a quantity, None (it has no such
    item) or ``UNADDRESSABLE`` (its API cannot name it); the latest of an item wins."""
    tx.db.executemany(
        "INSERT INTO audit_seen(job, item_id, variation, shown, read_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT DO UPDATE SET shown = excluded.shown, read_at = excluded.read_at",
        (
            (job, item_id, msgspec.json.encode(list(variation)).decode(), shown, at)
            for item_id, variation, shown in items
        ),
    )


def from_file(tx: Tx, command: ApplyImport) -> control.Job:
    """A stock file downloaded from the mall (``zaiko audit --file``), batch by batch as it
    is parsed: a row with the mall's item id is that item; a row with only a code (a
    TEMPOSTAR file) is the item that SKU is sent to."""
    start = command.start
    shop = shops.get(tx, start.shop)
    for batch in command.source:
        tx.db.execute(
            "INSERT INTO audit_seen(job, item_id, variation, shown, read_at) "
            "SELECT ?, CASE WHEN coalesce(r.value->>6, '') != '' THEN r.value->>6 "
            "ELSE coalesce(l.item_id, r.value->>1) END, "
            "CASE WHEN coalesce(r.value->>6, '') != '' THEN coalesce(r.value->>7, '[]') "
            "ELSE coalesce(l.variation, '[]') END, r.value->>2, "
            # as of when the file was written (else its upload): a push since is no drift
            "coalesce(nullif(?, ''), (SELECT started_at FROM jobs WHERE id = ?)) "
            "FROM json_each(?) r LEFT JOIN listings l ON l.shop = ? AND l.sku = r.value->>1 "
            "WHERE true ON CONFLICT DO UPDATE SET shown = excluded.shown",
            (command.job, start.as_of, command.job, batch.rows, shop.id),
        )
    source = command.source
    if source.fatal:
        return finish(tx, shop.id, command.job, fix=False, whole_list=True, error=source.fatal)
    notes: list[str | RowError] = list(source.row_errors)
    if source.errors > len(notes):
        notes.append(f"… and {source.errors - len(notes):,} more rows that did not read")
    return finish(tx, shop.id, command.job, fix=start.fix, whole_list=True, notes=tuple(notes))


def finish(
    tx: Tx,
    shop_id: str,
    job: int,
    *,
    fix: bool,
    whole_list: bool,
    error: str = "",
    notes: tuple[str | RowError, ...] = (),
) -> control.Job:
    """Compare what was seen with the targets, say why each differs, queue the corrections
    (``fix``), record the shop's last audit and finish the job. ``whole_list``: what was
    seen is everything the mall has (a file), so an item nobody links is a listing zaiko
    does not know."""
    if error:
        tx.db.execute("DELETE FROM audit_seen WHERE job = ?", (job,))
        return jobs.finish(
            tx, FinishJob(job=job, result="failed", messages=(f"not audited: {error}",))
        )
    shop = shops.get(tx, shop_id)
    # the targets of what changed so far (a large import's, over the next batches)
    behind = outbox.refresh(tx)
    by_file = shop.transport == "ftp"
    findings: list[str] = []
    drifted: list[tuple[int, str, str]] = []
    counts = {"changed": 0, "missing": 0, "unknown": 0, "pending": 0, "unread": 0}
    checked = 0
    for (
        sku,
        item_id,
        variation,
        target,
        pushed,
        sold,
        pushed_at,
        pending,
        shown,
        read_at,
        sent_since,
    ) in tx.db.execute(
        "SELECT o.sku, coalesce(l.item_id, o.sku), coalesce(l.variation, '[]'), o.target, "
        "o.pushed, o.sold, o.pushed_at, o.pending, s.shown, s.read_at, "
        "julianday(o.pushed_at) > julianday(s.read_at) FROM outbox o "
        "LEFT JOIN listings l ON l.shop = o.shop AND l.sku = o.sku "
        "LEFT JOIN audit_seen s ON s.job = ? AND s.item_id = coalesce(l.item_id, o.sku) "
        "AND s.variation = coalesce(l.variation, '[]') WHERE o.shop = ? ORDER BY o.sku",
        (job, shop.id),
    ):
        where = _item(item_id, variation)
        if read_at is None and not whole_list:
            counts["unread"] += 1  # linked while the audit read the others
            continue
        checked += 1
        if shown == UNADDRESSABLE:
            counts["unread"] += 1
            findings.append(
                f"{sku} {where}: the mall's stock API cannot name this listing; audit it from "
                f"a downloaded stock file (zaiko audit --shop {shop.id} --file FILE)"
            )
            continue
        if shown is None:
            counts["missing"] += 1
            findings.append(
                f"{sku}: the mall has no listing {where}: correct the listing "
                f"(zaiko listings import --shop {shop.id}) or list the item at the mall"
            )
            continue
        if shown == target or (sent_since and not pending):
            continue  # as it should be, or read before a push that followed
        if pending:
            # its own push corrects it: nothing for --fix to do
            counts["pending"] += 1
            findings.append(
                f"{sku} {where}: the mall shows {shown}, zaiko's target is {target}: "
                "a push is pending"
            )
            continue
        counts["changed"] += 1
        believed = (pushed or 0) - sold
        how = (
            f"the file sent at {pushed_at} was not applied by the mall's batch, or the "
            "quantity was changed at the mall since"
            if by_file
            else f"changed at the mall since zaiko sent {pushed} at {pushed_at} (an edit "
            "in its admin?)"
        )
        findings.append(
            f"{sku} {where}: the mall shows {shown}, zaiko's target is {target} and it "
            f"believed the mall showed {believed}: {how}"
        )
        drifted.append((shown, read_at, sku))
    if whole_list:
        # the file's items that no linked SKU is sent to: one pass against an index of them
        tx.db.execute("DROP TABLE IF EXISTS temp.audit_linked")
        tx.db.execute(
            "CREATE TEMP TABLE audit_linked (item_id TEXT, variation TEXT, "
            "PRIMARY KEY (item_id, variation)) WITHOUT ROWID"
        )
        tx.db.execute(
            "INSERT OR IGNORE INTO temp.audit_linked SELECT coalesce(l.item_id, o.sku), "
            "coalesce(l.variation, '[]') FROM outbox o LEFT JOIN listings l "
            "ON l.shop = o.shop AND l.sku = o.sku WHERE o.shop = ?",
            (shop.id,),
        )
        for item_id, variation, shown in tx.db.execute(
            "SELECT s.item_id, s.variation, s.shown FROM audit_seen s "
            "LEFT JOIN temp.audit_linked k ON k.item_id = s.item_id "
            "AND k.variation = s.variation WHERE s.job = ? AND k.item_id IS NULL "
            "ORDER BY s.item_id, s.variation",
            (job,),
        ):
            counts["unknown"] += 1
            findings.append(
                f"{_item(item_id, variation)}: a listing zaiko does not know (the mall shows "
                f"{shown}): link it to a SKU (zaiko listings import --shop {shop.id}) or "
                "leave it to the mall"
            )
        tx.db.execute("DROP TABLE temp.audit_linked")
    tx.db.execute("DELETE FROM audit_seen WHERE job = ?", (job,))
    if fix and drifted:
        # what the mall showed when it was read: each is pending against it, urgent when it
        # shows more (a sale placed after the read still counts it down)
        tx.db.executemany(
            "UPDATE outbox SET pushed = ?, pushed_at = ?, sold = 0, uncertain = 0, "
            "version = version + 1 WHERE shop = ? AND sku = ?",
            ((shown, read_at, shop.id, sku) for shown, read_at, sku in drifted),
        )
        outbox.mark(tx, [sku for _, _, sku in drifted])
    drift = counts["changed"] + counts["missing"] + counts["unknown"]
    fixed = len(drifted) if fix else 0
    summary = (
        f"{checked} linked SKU(s) checked: {drift} drift ({counts['changed']} changed at the "
        f"mall or not applied, {counts['missing']} missing at the mall, {counts['unknown']} "
        f"unknown to zaiko), {counts['pending']} push(es) pending"
        + (f"; {fixed} correction(s) queued" if fix else "")
        + (f"; {counts['unread']} not read" if counts["unread"] else "")
        + (
            "; the targets of a large change are still being computed: audit again for "
            "exact figures"
            if behind
            else ""
        )
    )
    kept = findings[:MAX_FINDINGS]
    if len(findings) > MAX_FINDINGS:
        kept.append(f"… and {len(findings) - MAX_FINDINGS} more")
    tx.db.execute(
        "INSERT INTO audits(shop, job, at, checked, drift, pending, fixed) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(shop) DO UPDATE SET job = excluded.job, "
        "at = excluded.at, checked = excluded.checked, drift = excluded.drift, "
        "pending = excluded.pending, fixed = excluded.fixed",
        (shop.id, job, tx.now(), checked, drift, counts["pending"], fixed),
    )
    done = jobs.finish(
        tx,
        FinishJob(
            job=job,
            result="ok",
            # drift fails an item; a pending push corrects its own
            count=checked + counts["unknown"],
            success=checked - counts["changed"] - counts["missing"],
            failure=drift,
            messages=(summary, *kept, *notes),
        ),
    )
    return done


def _item(item_id: str, variation: str) -> str:
    axes = msgspec.json.decode(variation)
    return "/".join((item_id, *axes)) if axes else item_id
