"""The drift audit in the ledger: what the mall showed against each linked SKU's target, and
why they differ (a pending push, a change at the mall, a file not applied, a listing the
mall lacks, one zaiko does not know); --fix makes each drifted SKU pending against what the
mall really shows; the shop's status carries the last audit."""

from __future__ import annotations

from daemon.commands import AuditDone, AuditSeen, PendingPushes, PushesSent
from protocols import control
from tests.ledger.harness import LedgerHarness, mall_order, shop_settings

NOW = "2026-12-01T00:00:00.000+00:00"
API = {"api_base_url": "http://127.0.0.1:9/r1", "api_credential": "r1.secret"}


def setup(ledger: LedgerHarness, **changes: object) -> None:
    shop = shop_settings(id="r1", order_intake="active", reflect="active", **API, **changes)
    ledger.ok(control.ShopsApply(id=1, shops=(shop,), force=True))
    for code, count in (("A", 10), ("B", 5), ("C", 3), ("D", 8)):
        ledger.add(code, count)
    pushes = ledger.ok(PendingPushes(shop="r1")).items
    ledger.ok(PushesSent(shop="r1", items=pushes, at=NOW))


READ = "2026-12-01T00:05:00.000+00:00"  # after every push of these tests


def audit(
    ledger: LedgerHarness, shown: dict[str, int], *, fix: bool = False, at: str = READ
) -> control.Job:
    started = ledger.ok(control.AuditStart(id=1, shop="r1", fix=fix))
    job = started.job.id
    asked = ("A", "B", "C", "D")
    rows = tuple((code, (), shown.get(code)) for code in asked)
    ledger.ok(AuditSeen(job=job, items=rows, at=at))
    return ledger.ok(AuditDone(shop="r1", job=job, fix=fix))


def test_each_difference_is_explained_and_counted(ledger: LedgerHarness) -> None:
    setup(ledger)
    ledger.ok(control.StockSet(id=1, code="D", field="expected", value=2))  # pending: 2
    job = audit(ledger, {"A": 10, "B": 99, "D": 8})  # C is not at the mall
    text = "\n".join(str(m) for m in job.messages)
    assert job.messages[0].startswith(
        "4 linked SKU(s) checked: 2 drift (1 changed at the mall or not applied, "
        "1 missing at the mall, 0 unknown to zaiko), 1 push(es) pending"
    )
    assert (
        "B B: the mall shows 99, zaiko's target is 5 and it believed the mall showed 5: "
        "changed at the mall since zaiko sent 5" in text
    )
    assert "C: the mall has no listing C" in text
    assert "D D: the mall shows 8, zaiko's target is 2: a push is pending" in text
    assert "A" not in {line.split(" ")[0] for line in text.splitlines()[1:]}
    (status,) = ledger.ok(control.GetStatus(id=1)).shops
    assert (status.audit.job, status.audit.checked, status.audit.drift) == (job.id, 4, 2)
    assert status.audit.pending == 1 and status.audit.fixed == 0


def test_fix_sends_the_target_against_what_the_mall_shows(ledger: LedgerHarness) -> None:
    setup(ledger)
    before = audit(ledger, {"A": 10, "B": 99, "C": 0, "D": 8}, fix=True)
    assert "2 correction(s) queued" in str(before.messages[0])
    # B shows more than it should: at once; C shows less: with the next pass
    urgent = ledger.ok(PendingPushes(shop="r1", urgent_only=True)).items
    assert [(i.sku, i.quantity) for i in urgent] == [("B", 5)]
    pushes = ledger.ok(PendingPushes(shop="r1")).items
    assert [(i.sku, i.quantity) for i in pushes] == [("B", 5), ("C", 3)]
    ledger.ok(PushesSent(shop="r1", items=pushes, at=NOW))
    after = audit(ledger, {"A": 10, "B": 5, "C": 3, "D": 8})
    assert str(after.messages[0]).startswith("4 linked SKU(s) checked: 0 drift")
    assert after.failure == 0


def test_a_file_mall_says_its_batch_did_not_apply_the_file(ledger: LedgerHarness) -> None:
    setup(
        ledger,
        transport="ftp",
        ftp_url="sftp://u@127.0.0.1:22/ritem/batch",
        ftp_credential="k",
        known_hosts="kh",
    )
    job = audit(ledger, {"A": 10, "B": 5, "C": 3, "D": 1})
    assert "the file sent at" in str(job.messages[1])
    assert "was not applied by the mall's batch" in str(job.messages[1])


def test_a_mall_that_cannot_be_read_fails_the_job_and_says_why(ledger: LedgerHarness) -> None:
    setup(ledger)
    started = ledger.ok(control.AuditStart(id=1, shop="r1"))
    again = ledger.one(control.AuditStart(id=1, shop="r1"))
    assert isinstance(again, control.Error) and "still running" in again.message
    job = ledger.ok(AuditDone(shop="r1", job=started.job.id, error="HTTP 503: down"))
    assert job.result == "failed" and job.messages == ("not audited: HTTP 503: down",)


def test_a_mall_without_a_stock_api_is_told_to_use_a_file(ledger: LedgerHarness) -> None:
    wowma = shop_settings(id="w1", mall="wowma")
    ledger.ok(control.ShopsApply(id=1, shops=(wowma,)))
    refused = ledger.one(control.AuditStart(id=1, shop="w1"))
    assert isinstance(refused, control.Error)
    assert "zaiko audit --shop w1 --file FILE" in refused.message


def test_an_item_read_before_its_last_push_is_no_drift(ledger: LedgerHarness) -> None:
    """A long audit (Amazon: one SKU a call) reads B, then B is sent a new quantity: what was
    read is older than what the mall was sent since."""
    setup(ledger)
    job = audit(ledger, {"A": 10, "B": 99, "C": 3, "D": 8}, at="2026-11-30T23:00:00.000+00:00")
    assert str(job.messages[0]).startswith("4 linked SKU(s) checked: 0 drift")


def test_fix_leaves_a_pending_push_to_correct_its_row(ledger: LedgerHarness) -> None:
    setup(ledger)
    ledger.ok(control.StockSet(id=1, code="D", field="expected", value=2))  # pending: 2
    job = audit(ledger, {"A": 10, "B": 5, "C": 3, "D": 8}, fix=True)
    assert "0 correction(s) queued" in str(job.messages[0])
    pushes = ledger.ok(PendingPushes(shop="r1")).items
    assert [(i.sku, i.quantity) for i in pushes] == [("D", 2)]


def test_a_fixed_row_counts_a_later_sale_once(ledger: LedgerHarness) -> None:
    """The read (00:05) already shows a sale placed before it: only later sales count."""
    setup(ledger, reflect_to_origin=False)
    audit(ledger, {"A": 6, "B": 5, "C": 3, "D": 8}, fix=True)  # A edited to 6 at the mall
    early = mall_order("1", ("A", 1))  # placed 2026-11-26: before the read
    ledger.take("r1", early)
    a = next(q for q in ledger.detail("A").shops if q.shop == "r1")
    assert a.shown == 6  # not 5: the read showed the mall after that sale
