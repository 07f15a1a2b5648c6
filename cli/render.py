"""Human output of the CLI: aligned tables that count East Asian wide characters as two."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

from protocols import control
from protocols.malls import capability
from protocols.malls.base import Capability
from protocols.settings import (
    ShopSettings,
    default_note,
    mall_settings,
    setting_text,
    setting_value,
)


def width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(width(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(cell + " " * (widths[i] - width(cell)) for i, cell in enumerate(row)).rstrip()
        for row in cells
    ]
    return "\n".join(lines) + "\n"


def malls(caps: Sequence[Capability]) -> str:
    text = table(
        [
            "kind",
            "name",
            "orders in",
            "stock out",
            "audit by",
            "options",
            "batch",
            "req/s",
            "import formats",
        ],
        [
            (
                c.kind,
                c.name_ja,
                ",".join(c.intake) or "-",
                ",".join(c.stock_out) or "- (intake only)",
                ("api," if c.stock_read else "") + "file" if c.stock_out else "-",
                ",".join(c.options) or "-",
                c.api_batch_size or "-",
                c.api_requests_per_s or "-",
                ",".join(c.import_formats) or "-",
            )
            for c in caps
        ],
    )
    return (
        text
        + "import formats also include tempostar (商品コード,想定在庫数,保留在庫数,更新モード,更新対象)\n"
    )


def stock_line(level: control.StockLevel) -> str:
    if level.is_set:
        return f"{level.code}: set product, can make {level.expected}\n"
    registered = "" if level.registered else "  (stock never registered)"
    return (
        f"{level.code}: expected {level.expected}  actual {level.actual}  "
        f"reserve {level.reserve}{registered}\n"
    )


def sku_detail(sku: control.SkuDetail) -> str:
    out = [f"{sku.code}  {sku.name}\n".replace("  \n", "\n"), stock_line(sku.stock)]
    if sku.children:
        out.append("children: " + ", ".join(f"{c.code}×{c.qty}" for c in sku.children) + "\n")
    if sku.parents:
        out.append("in sets: " + ", ".join(sku.parents) + "\n")
    if sku.shops:
        out.append(
            "\n"
            + table(
                ["shop", "linked", "quantity", "floor", "sent", "shows", "item id"],
                [
                    (
                        q.shop,
                        "yes" if q.linked else "no",
                        f"{q.target}{' (pending)' if q.pending else ''}",
                        q.floor,
                        "-" if q.pushed is None else f"{q.pushed} at {q.pushed_at}",
                        "-" if q.shown is None else q.shown,
                        " ".join((q.item_id, *q.variation)).strip(),
                    )
                    for q in sku.shops
                ],
            )
        )
    if sku.journal:
        out.append(
            "\n"
            + table(
                ["at", "field", "delta", "before", "after", "reason", "ref", "actor"],
                [
                    (j.at, j.field, f"{j.delta:+d}", j.before, j.after, j.reason, j.ref, j.actor)
                    for j in sku.journal
                ],
            )
        )
    return "".join(out)


def job_rows(jobs: Sequence[control.Job]) -> str:
    if not jobs:
        return "no jobs yet\n"
    return table(
        ["id", "kind", "shop", "state", "started", "ended", "result", "count", "ok", "failed"],
        [
            (
                j.id,
                j.kind,
                j.shop or "-",
                j.state,
                j.started_at,
                j.ended_at or "-",
                j.result or "-",
                j.count,
                j.success,
                j.failure,
            )
            for j in jobs
        ],
    )


def status(reply: control.StatusReply) -> str:
    out = [
        f"zaiko {reply.version}, up since {reply.started_at}\n",
        f"database {reply.database}: {reply.skus} SKUs, {reply.oversells} oversell events\n",
    ]
    if not reply.shops:
        out.append("no shops: add them with 'zaiko shops apply FILE.toml'\n")
        return "".join(out)
    rows = []
    for shop in reply.shops:
        actors = (
            ", ".join(
                f"{a.name} {a.state}"
                + (f" ({a.restarts} restarts: {a.last_error})" if a.restarts else "")
                for a in shop.actors
            )
            or "no actors"
        )
        rows.append((shop.id, shop.mall, shop.order_intake, shop.reflect, actors))
    out.append("\n" + table(["shop", "mall", "intake", "reflect", "actors"], rows))
    intake_rows = [
        (
            shop.id,
            shop.intake.last_intake or "-",
            shop.intake.taken_today,
            shop.intake.warnings,
            shop.intake.unmatched,
            f"{shop.intake.backlog} (since {shop.intake.backlog_oldest})"
            if shop.intake.backlog
            else 0,
            shop.intake.quarantined,
            shop.intake.last_error or "-",
        )
        for shop in reply.shops
        if capability(shop.mall).intake
    ]
    if intake_rows:
        out.append(
            "\n"
            + table(
                [
                    "shop",
                    "last order taken",
                    "today",
                    "warnings",
                    "unmatched",
                    "backlog",
                    "quarantined",
                    "last error",
                ],
                intake_rows,
            )
        )
    reflect_rows = [
        (
            shop.id,
            shop.reflection.last_push or "-",
            f"{shop.reflection.pending} ({shop.reflection.urgent} urgent)"
            if shop.reflection.urgent
            else shop.reflection.pending,
            shop.reflection.next_run or "-",
            shop.reflection.next_bulk_sync or "-",
            f"{shop.audit.drift} of {shop.audit.checked}" if shop.audit.job else "-",
            shop.reflection.last_error or "-",
        )
        for shop in reply.shops
        if capability(shop.mall).stock_out
    ]
    if reflect_rows:
        out.append(
            "\n"
            + table(
                [
                    "shop",
                    "last push",
                    "pending",
                    "next run",
                    "next bulk sync",
                    "drift (audit)",
                    "last error",
                ],
                reflect_rows,
            )
        )
    for shop in reply.shops:
        out.extend(f"warning: {w}\n" for w in shop.warnings)
    return "".join(out)


def reflect(reply: control.ReflectReply) -> str:
    if not reply.pending:
        return f"shop {reply.shop}: nothing to send, every linked SKU shows its quantity\n"
    head = (
        f"shop {reply.shop}: sending {reply.pending} quantities now\n"
        if reply.sending
        else f"shop {reply.shop}: {reply.pending} quantities would be sent (dry run: nothing sent)\n"
    )
    rows = [
        (
            r.sku,
            " ".join((r.item_id, *r.variation)),
            "-" if r.shown is None else r.shown,
            r.target,
            r.expected,
            r.reserve,
            f"{r.rate}%",
            r.floor,
            "-" if r.trickle_quantity is None else f"{r.trickle_quantity} (at {r.refill_at})",
            "urgent" if r.urgent else "",
        )
        for r in reply.rows
    ]
    if not reply.complete:
        head += "(targets of a large change are still being computed: more may follow)\n"
    more = len(reply.rows) < reply.pending
    tail = f"… and {reply.pending - len(reply.rows)} more (--limit)\n" if more else ""
    return (
        head
        + "\n"
        + table(
            [
                "sku",
                "mall item",
                "shows",
                "→ send",
                "expected",
                "reserve",
                "rate",
                "floor",
                "trickle",
                "",
            ],
            rows,
        )
        + tail
    )


def order_rows(orders: Sequence[control.OrderDoc]) -> str:
    if not orders:
        return "no orders waiting\n"
    return table(
        ["order", "status", "mall", "ordered", "lines"],
        [
            (
                o.key,
                o.status,
                o.mall_state,
                o.ordered_at,
                ", ".join(
                    f"{line.sku or line.item_id}×{line.quantity} {line.status}" for line in o.lines
                ),
            )
            for o in orders
        ],
    )


def order_detail(order: control.OrderDoc) -> str:
    head = (
        f"order {order.key}: {order.status} (at the mall: {order.mall_state}), ordered "
        f"{order.ordered_at}, taken {order.received_at}\n\n"
    )
    return head + table(
        ["line", "mall item", "sku", "qty", "status", "name"],
        [
            (
                line.line_no,
                " ".join((line.item_id, *line.variation)),
                line.sku or "-",
                line.quantity,
                line.status,
                line.name,
            )
            for line in order.lines
        ],
    )


def shop_settings(shop: ShopSettings, shop_status: control.ShopStatus | None = None) -> str:
    """One shop's settings, one ``KEY = VALUE`` line each, in the syntax ``zaiko shops set ID
    KEY=VALUE`` reads back unchanged (``true``/``false``, hours ``3,15``, ``trickle.quantity =
    10``): an operator copies a line as one argument, ``zaiko shops set ID 'KEY = VALUE'``
    (spaces around ``=`` are dropped).

    Only the settings the shop's mall kind has are listed (``mall_settings``: no ftp settings
    for an API-only mall, no stock-out settings for intake-only ヤフオク!, each mall option only
    where the mall offers it); ``--json`` keeps the whole settings document.

    An empty value (an optional setting not set such as ``ftp_url``, an empty ``name``, no
    ``bulk_sync_hours``) is printed commented out, ``# ftp_url =``: the key can still be found
    and copied, and uncommented the line sets the same empty value. Every other line that is
    not a setting (the heading, actors, warnings) starts with ``#`` too.
    """
    cap = capability(shop.mall)
    lines = [
        f"# shop {shop.id}: {cap.name_ja} ({shop.mall}); change with: zaiko shops set {shop.id} KEY=VALUE"
    ]
    for key in mall_settings(shop.mall):
        text = setting_text(setting_value(shop, key))
        lines.append(f"{key} = {text}" if text else f"# {key} =")
        if not text and (note := default_note(shop, key)):
            lines.append(f"#   empty {key} = {note}")
    if shop_status is not None:
        if shop_status.actors:
            lines.append(
                "# actors: " + ", ".join(f"{a.name} {a.state}" for a in shop_status.actors)
            )
        lines.extend(f"# warning: {w}" for w in shop_status.warnings)
    return "\n".join(lines) + "\n"


def for_reply(reply: Any) -> str:
    match reply:
        case control.StatusReply():
            return status(reply)
        case control.SkuReply():
            return sku_detail(reply.sku)
        case control.StockReply():
            note = " (already applied with this key: nothing changed)" if reply.replayed else ""
            return stock_line(reply.stock).rstrip("\n") + note + "\n"
        case control.SkuListReply():
            text = table(
                ["code", "name", "expected", "actual", "reserve", "set"],
                [
                    (s.code, s.name, s.expected, s.actual, s.reserve, "set" if s.is_set else "")
                    for s in reply.skus
                ],
            )
            if reply.next_after is not None:
                text += f"more: --after {reply.next_after}\n"
            return text
        case control.ListingsReply():
            return f"{reply.imported} listing rows imported\n"
        case control.ShopsReply():
            text = "".join(f"shop {s.id} ({s.mall}) applied\n" for s in reply.shops)
            return text + "".join(f"warning: {w}\n" for w in reply.warnings)
        case control.ShopReply():
            return shop_settings(reply.shop, reply.status)
        case control.OrdersReply():
            text = order_rows(reply.orders)
            if reply.next_after is not None:
                text += f"more: --after {reply.next_after}\n"
            return text
        case control.OrderReply():
            return order_detail(reply.order)
        case control.ReflectReply():
            return reflect(reply)
        case control.JobsReply():
            return job_rows(reply.jobs)
        case control.JobReply():
            job = reply.job
            text = job_rows([job])
            if job.detail:
                text += f"  {job.detail}\n"
            if job.dry_run:
                text += "  dry run: nothing was changed; the counts say what the import would do\n"
            return text + "".join(f"  {m}\n" for m in job.messages)
    return f"{reply}\n"
