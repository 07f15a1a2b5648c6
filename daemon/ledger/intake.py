"""A shop's intake bookkeeping: the order API's cursor, when intake was stopped, and the
operator's choice for the backlog when it was switched on again (SPEC §3.3)."""

from __future__ import annotations

from daemon.commands import Backlog, BacklogHandled, IntakeState, SaveIntakeCursor
from daemon.ledger.tx import DomainError, Tx
from protocols import control
from protocols.malls import capability
from protocols.settings import ShopSettings


def state(tx: Tx, shop: str) -> IntakeState:
    found = tx.db.execute(
        "SELECT cursor, stopped_at, resumed_at, backlog, skipped_from, skipped_until "
        "FROM intake_state WHERE shop = ?",
        (shop,),
    ).fetchone()
    if found is None:
        return IntakeState(shop=shop)
    cursor, stopped_at, resumed_at, backlog, skipped_from, skipped_until = found
    return IntakeState(
        shop=shop,
        cursor=cursor,
        stopped_at=stopped_at,
        resumed_at=resumed_at,
        backlog=backlog,
        skipped_from=skipped_from,
        skipped_until=skipped_until,
    )


def _ensure(tx: Tx, shop: str) -> None:
    tx.db.execute("INSERT INTO intake_state(shop) VALUES (?) ON CONFLICT DO NOTHING", (shop,))


def save_cursor(tx: Tx, command: SaveIntakeCursor) -> IntakeState:
    _ensure(tx, command.shop)
    tx.db.execute(
        "UPDATE intake_state SET cursor = ? WHERE shop = ?", (command.cursor, command.shop)
    )
    return state(tx, command.shop)


def backlog_handled(tx: Tx, command: BacklogHandled) -> IntakeState:
    tx.db.execute("UPDATE intake_state SET backlog = '' WHERE shop = ?", (command.shop,))
    return state(tx, command.shop)


def check_switch(
    tx: Tx,
    before: ShopSettings | None,
    after: ShopSettings,
    choice: control.BacklogChoice,
    waiting: Backlog,
    *,
    asked_by_flag: bool = True,
) -> None:
    """Switching a stopped shop's intake on while orders waited needs the operator's choice:
    take them, or skip what arrived while it was stopped. ``asked_by_flag``: the request can
    carry the choice (``shops set --backlog``); a file applied cannot, so the fix differs."""
    switching_on = (
        before is not None and before.order_intake == "stopped" and after.order_intake != "stopped"
    )
    if not switching_on:
        if choice:
            raise DomainError(
                "invalid",
                "backlog: a choice is only asked when a stopped shop's order_intake is switched on",
                "backlog",
            )
        return
    if choice:
        return
    known = state(tx, after.id)

    def fix(skip: str) -> str:
        if asked_by_flag:
            return f"add --backlog take to take them, or --backlog skip to {skip}"
        return (
            f'keep order_intake = "stopped" in the file and switch it on with '
            f"zaiko shops set {after.id} order_intake={after.order_intake} --backlog take|skip"
        )

    if "mail" in capability(after.mall).intake and waiting.count:
        oldest = f", the oldest from {waiting.oldest}" if waiting.oldest else ""
        raise DomainError(
            "refused",
            f"order_intake: {waiting.count} order mail(s) of shop {after.id} arrived while intake "
            f"was stopped{oldest}; {fix('move them aside')}",
            "order_intake",
        )
    if "api" in capability(after.mall).intake and known.cursor:
        raise DomainError(
            "refused",
            f"order_intake: orders placed at the mall since intake of shop {after.id} stopped "
            f"({known.stopped_at or 'earlier'}) wait there; {fix('start from now')}",
            "order_intake",
        )


def note_switch(
    tx: Tx, before: ShopSettings | None, after: ShopSettings, choice: control.BacklogChoice
) -> None:
    """Record when intake stops, and when it starts again with which backlog choice."""
    if before is None or before.order_intake == after.order_intake:
        return
    _ensure(tx, after.id)
    now = tx.now()
    if after.order_intake == "stopped":
        tx.db.execute(
            "UPDATE intake_state SET stopped_at = ?, backlog = '' WHERE shop = ?", (now, after.id)
        )
    elif before.order_intake == "stopped":
        tx.db.execute(
            "UPDATE intake_state SET resumed_at = ?, backlog = ? WHERE shop = ?",
            (now, choice or "take", after.id),
        )
        if choice == "skip":
            tx.db.execute(
                "UPDATE intake_state SET skipped_from = stopped_at, skipped_until = ? "
                "WHERE shop = ?",
                (now, after.id),
            )
