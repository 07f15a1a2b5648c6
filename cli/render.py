"""Human output of the CLI: aligned tables that count East Asian wide characters as two."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

import msgspec

from protocols import control
from protocols.malls.base import Capability
from protocols.settings import ShopSettings


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
        ["kind", "name", "orders in", "stock out", "options", "batch", "req/s", "import formats"],
        [
            (
                c.kind,
                c.name_ja,
                ",".join(c.intake) or "-",
                ",".join(c.stock_out) or "- (intake only)",
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
                ["shop", "linked", "quantity", "item id"],
                [
                    (
                        q.shop,
                        "yes" if q.linked else "no",
                        q.target,
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
    for shop in reply.shops:
        out.extend(f"warning: {w}\n" for w in shop.warnings)
    return "".join(out)


def shop_settings(shop: ShopSettings) -> str:
    flat = msgspec.to_builtins(shop)
    lines: list[str] = []
    for key, value in flat.items():
        if isinstance(value, dict):
            lines.extend(f"{key}.{k} = {v}" for k, v in value.items())
        elif value not in (None, "", [], ()):
            lines.append(f"{key} = {value}")
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
            text = shop_settings(reply.shop)
            if reply.status and reply.status.actors:
                text += (
                    "actors: "
                    + ", ".join(f"{a.name} {a.state}" for a in reply.status.actors)
                    + "\n"
                )
            return text
        case control.JobsReply():
            return job_rows(reply.jobs)
        case control.JobReply():
            job = reply.job
            text = job_rows([job])
            if job.detail:
                text += f"  {job.detail}\n"
            if "dry-run" in job.detail:
                text += "  dry run: nothing was applied\n"
            return text + "".join(f"  {m}\n" for m in job.messages)
    return f"{reply}\n"
