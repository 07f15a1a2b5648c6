"""Shops and their settings (SPEC §3.1): apply, change live, journal every change, and the
rules that join a shop's settings to the stock (the activation guard, sets and origin)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from daemon.commands import Backlog
from daemon.ledger import intake, listings, orders, outbox
from daemon.ledger.tx import DomainError, Tx
from protocols import control
from protocols.settings import (
    SettingsError,
    ShopSettings,
    apply_changes,
    shop_warnings,
    validate_shop,
)

GUARD_LIST_MAX = 20
# the settings a shop's targets (and their urgency) follow: a change recomputes them
TARGET_SETTINGS = (
    "mall",
    "distribution_rate",
    "trickle.",
    "reflect_to_origin",
    "listing_mode",
    "urgent_push",
    "min_shown",
    "pace_floor",
    "transport",  # min_shown's default follows it
)

_settings_encoder = msgspec.json.Encoder()
_settings_decoder = msgspec.json.Decoder(ShopSettings)


def all_shops(tx: Tx) -> tuple[ShopSettings, ...]:
    return tuple(
        _settings_decoder.decode(raw)
        for (raw,) in tx.db.execute("SELECT settings FROM shops ORDER BY id")
    )


def get(tx: Tx, shop_id: str) -> ShopSettings:
    """A shop's settings; an unknown shop is refused."""
    found = find(tx, shop_id)
    if found is None:
        raise DomainError("not_found", f"unknown shop {shop_id!r}", "shop")
    return found


def find(tx: Tx, shop_id: str) -> ShopSettings | None:
    found = tx.db.execute("SELECT settings FROM shops WHERE id = ?", (shop_id,)).fetchone()
    return None if found is None else _settings_decoder.decode(found[0])


def unreadable_settings(tx: Tx) -> list[str]:
    """Shops whose stored settings this version cannot read (a setting was renamed or
    removed without a migration rewriting them): checked at start, so that it is said once,
    clearly, instead of failing whatever reads shops later."""
    problems = []
    for shop_id, raw in tx.db.execute("SELECT id, settings FROM shops ORDER BY id"):
        try:
            _settings_decoder.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            problems.append(f"shop {shop_id}: {exc}")
    return problems


def status_of(tx: Tx, shop: ShopSettings) -> control.ShopStatus:
    """The one shop status document (``status``, ``shops show``): modes, warnings, what the
    ledger knows of its intake; the control server adds what its actors report."""
    return control.ShopStatus(
        id=shop.id,
        mall=shop.mall,
        order_intake=shop.order_intake,
        reflect=shop.reflect,
        warnings=shop_warnings(shop),
        intake=orders.intake_status(tx, shop),
        reflection=outbox.reflect_status(tx, shop),
        audit=_audit_status(tx, shop.id),
    )


def _audit_status(tx: Tx, shop: str) -> control.AuditStatus:
    """The shop's last drift audit (``ledger.audit``)."""
    found = tx.db.execute(
        "SELECT job, at, checked, drift, pending, fixed FROM audits WHERE shop = ?", (shop,)
    ).fetchone()
    if found is None:
        return control.AuditStatus()
    job, at, checked, drift, pending, fixed = found
    return control.AuditStatus(
        job=job, at=at, checked=checked, drift=drift, pending=pending, fixed=fixed
    )


def shop_show(tx: Tx, command: control.ShopShow) -> control.ShopReply:
    shop = get(tx, command.shop)
    return control.ShopReply(id=command.id, shop=shop, status=status_of(tx, shop))


def shops_apply(
    tx: Tx, command: control.ShopsApply, backlogs: Mapping[str, Backlog] | None = None
) -> control.ShopsReply:
    """Create or update shops; ``backlogs``: what waits at each stopped shop (its intake
    actor counts it), for switching intake on."""
    warnings: list[str] = []
    for shop in command.shops:
        before = find(tx, shop.id)
        if before is not None and before.mall != shop.mall:
            raise DomainError(
                "refused",
                f"shop {shop.id} is a {before.mall} shop; its mall cannot change to {shop.mall}",
                "mall",
            )
        try:
            check_rules(tx, shop, before, command.force)
            waiting = (backlogs or {}).get(shop.id, Backlog())
            intake.check_switch(tx, before, shop, "", waiting, asked_by_flag=False)
        except DomainError as exc:
            raise DomainError(exc.code, f"shop {shop.id}: {exc}", exc.field, exc.details) from exc
        save(tx, shop, before)
        intake.note_switch(tx, before, shop, "")
        warnings += shop_warnings(shop)
    return control.ShopsReply(id=command.id, shops=command.shops, warnings=tuple(warnings))


def shop_set(tx: Tx, command: control.ShopSet, backlog: Backlog | None = None) -> control.ShopReply:
    """Change settings live; ``backlog``: what waits at the shop if its intake is stopped."""
    before = get(tx, command.shop)
    try:
        shop = apply_changes(before, command.changes)
    except SettingsError as exc:
        raise DomainError("invalid", str(exc), exc.field) from exc
    check_rules(tx, shop, before, command.force)
    intake.check_switch(tx, before, shop, command.backlog, backlog or Backlog())
    save(tx, shop, before)
    intake.note_switch(tx, before, shop, command.backlog)
    return control.ShopReply(id=command.id, shop=shop, status=status_of(tx, shop))


def check_rules(tx: Tx, shop: ShopSettings, before: ShopSettings | None, force: bool) -> None:
    try:
        validate_shop(shop)
    except SettingsError as exc:
        raise DomainError("invalid", str(exc), exc.field) from exc
    if not shop.reflect_to_origin and listings.has_linked_sets(tx, shop):
        raise DomainError(
            "refused",
            "reflect_to_origin: must be true while set products are linked to this shop: the "
            "shop's own count would drift (seed: セット商品を登録している場合は「注文のあった"
            "ショップに在庫反映を行う」)",
            "reflect_to_origin",
        )
    switching_on = shop.reflect == "active" and (before is None or before.reflect != "active")
    if switching_on and not force:
        never = listings.linked_unregistered(tx, shop, GUARD_LIST_MAX)
        if never:
            count = listings.count_linked_unregistered(tx, shop)
            raise DomainError(
                "refused",
                f"reflect: {count} linked SKU(s) of shop {shop.id} never had stock registered;"
                " switching reflect on would push 0 for them. Register their stock first, or"
                f" push 0 anyway with --force (zaiko shops set {shop.id} reflect=active --force)"
                + (f"; the first {len(never)} are listed" if count > len(never) else ""),
                "reflect",
                details=never,
            )


def save(tx: Tx, shop: ShopSettings, before: ShopSettings | None) -> None:
    """Store a shop's settings and journal each changed setting (``shop_journal``)."""
    now = tx.now()
    tx.db.execute(
        "INSERT INTO shops(id, mall, settings, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT(id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
        (shop.id, shop.mall, _settings_encoder.encode(shop).decode(), now, now),
    )
    old: dict[str, Any] = _flat(msgspec.to_builtins(before)) if before else {}
    new = _flat(msgspec.to_builtins(shop))
    changed = [
        (key, old.get(key), new.get(key))
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]
    tx.db.executemany(
        "INSERT INTO shop_journal(at, shop, setting, before, after, actor) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (now, shop.id, key, _json_or_none(a), _json_or_none(b), tx.actor)
            for key, a, b in changed
        ],
    )
    if changed:
        tx.publish(control.ShopChanged(shop=shop))
    if before is None or any(key.startswith(TARGET_SETTINGS) for key, _, _ in changed):
        outbox.mark_shop(tx, shop.id)
    if any(key == "order_intake" for key, _, _ in changed):
        # how late a sale reaches zaiko (the slowest intake) is in every shop's pace floor
        outbox.mark_paced(tx)


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _json_or_none(value: object) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()
