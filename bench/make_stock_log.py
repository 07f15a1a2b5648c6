"""Write a TEMPOSTAR 在庫変動ログ (stock change history CSV) of a simulated day, to replay with
``bench/oversell.py --replay`` when no real log is at hand.

The day's buyers are ``oversell.simulated_day``'s (same seed, same parameters), sold as
TEMPOSTAR recorded them: a sale while its count covers it, and now and then one beyond it
(a mall that still showed stock: 変動後 below 0). Around them, as the merchant's day goes: goods
received for some sold-out SKUs (WEB画面, +), a stocktake correction at 10:00 (在庫CSV取込, ±)
and a few orders given back (受注修正, +). cp932; SKU codes as TEMPOSTAR builds them
(商品基本コード + 属性1コード + 属性2コード); names with characters only cp932 has.

    python bench/make_stock_log.py FILE [--seed 1] [--skus 300] [--orders 3000]
        [--quoting all|minimal] [--line-end crlf|cr|lf]

``--quoting all`` quotes every non-empty field and leaves empty ones bare (newer files);
``minimal`` quotes only where CSV needs it (older files).
"""

from __future__ import annotations

import argparse
import csv
import heapq
import io
import random
import sys
from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))

from oversell import Params, Sale, simulated_day

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocols.tempostar import (
    LOG_CSV_IMPORT,
    LOG_ORDER_FIX,
    LOG_SALE,
    LOG_WEB_EDIT,
    STOCK_LOG_HEADER,
)

Quoting = Literal["all", "minimal"]
LINE_ENDS = {"crlf": "\r\n", "cr": "\r", "lf": "\n"}
COLOURS = (("X11", "ブラック"), ("X12", "ホワイト"))
SIZES = (("Y14", "M"), ("Y15", "L"))
NAMES = ("綿Tシャツ①", "髙島屋コラボ靴下", "㈱ベンチ製トート", "ウール手袋～冬", "麻シャツ②")
OVERSELL_CHANCE = 0.03  # a sale beyond the count: a mall still showed stock
RESTOCK_CHANCE = 0.3  # a sold-out SKU gets goods in, 30–120 minutes later
CANCEL_CHANCE = 0.02  # a sale given back 10–60 minutes later
STOCKTAKE_HOUR = 10
STOCKTAKE_SHARE = 0.05


def log_code(number: int) -> tuple[str, str, str, str, str, str, str]:
    """SKU number → (商品基本コード, 商品コード, 商品名, 属性1名, 属性2名, 属性1コード,
    属性2コード): four variants (2 colours × 2 sizes) per item."""
    base = str(7_987_000 + number // 4)
    colour_code, colour = COLOURS[number % 4 // 2]
    size_code, size = SIZES[number % 2]
    name = NAMES[number // 4 % len(NAMES)]
    return base, base + colour_code + size_code, name, colour, size, colour_code, size_code


def stock_log_rows(params: Params) -> list[list[str]]:
    """The log's rows of the simulated day, in time order (strings, as written)."""
    rng = random.Random(params.seed + 1)  # not the buyers' stream: they stay the same
    day = simulated_day(params)
    codes = {code: log_code(number) for number, code in enumerate(day.stock)}
    count = dict(day.stock)
    rows: list[list[str]] = []

    def row(at: float, reason: str, sku: str, delta: int, user: str, store: str = "") -> None:
        base, code, name, attr1, attr2, attr1_code, attr2_code = codes[sku]
        before = count[sku]
        count[sku] = before + delta
        when = day.start + timedelta(seconds=at)
        rows.append(
            [
                when.strftime("%Y/%m/%d %H:%M:%S"),
                reason,
                base,
                code,
                name,
                attr1,
                attr2,
                attr1_code,
                attr2_code,
                store,
                "0",
                str(before),
                str(count[sku]),
                str(delta),
                user,
            ]
        )

    # (time, order, what): the buyers, the stocktake, and what they lead to
    pending: list[tuple[float, int, tuple[str, str, int]]] = []
    order = 0

    def later(at: float, what: tuple[str, str, int]) -> None:
        nonlocal order
        order += 1
        heapq.heappush(pending, (at, order, what))

    stocktake = (STOCKTAKE_HOUR - params.from_hour) * 3600.0
    if 0 <= stocktake < params.hours * 3600:
        counted = max(1, round(len(day.stock) * STOCKTAKE_SHARE))
        for sku in rng.sample(sorted(day.stock), counted):
            later(stocktake + rng.uniform(0, 60), ("stocktake", sku, 0))
    for event in day.events:
        assert isinstance(event, Sale)
        later(event.at, ("buyer", event.sku, event.units))
    while pending:
        at, _, (what, sku, units) = heapq.heappop(pending)
        if what == "buyer":
            if count[sku] < units and rng.random() >= OVERSELL_CHANCE:
                continue  # every mall showed too few: no sale
            row(at, LOG_SALE, sku, -units, "")
            if rng.random() < CANCEL_CHANCE:
                later(at + rng.uniform(600, 3600), ("cancel", sku, units))
            if count[sku] <= 0 and rng.random() < RESTOCK_CHANCE:
                later(at + rng.uniform(1800, 7200), ("restock", sku, rng.randint(3, 12)))
        elif what == "cancel":
            row(at, LOG_ORDER_FIX, sku, units, "tanaka", "デフォルト倉庫")
        elif what == "restock":
            row(at, LOG_WEB_EDIT, sku, units, "tanaka")
        else:
            counted = max(0, count[sku] + rng.choice((-2, -1, 1, 2)))
            if counted != count[sku]:
                row(at, LOG_CSV_IMPORT, sku, counted - count[sku], "yamada")
    return rows


def encode_stock_log(
    rows: Iterable[Sequence[str]], *, quoting: Quoting = "all", line_end: str = "\r\n"
) -> bytes:
    """The log file's bytes (cp932): ``all`` quotes every non-empty field and leaves empty
    ones bare; ``minimal`` quotes only where CSV needs it."""
    out = io.StringIO()
    if quoting == "minimal":
        writer = csv.writer(out, lineterminator=line_end)
        writer.writerow(STOCK_LOG_HEADER)
        writer.writerows(rows)
    else:
        for fields in (STOCK_LOG_HEADER, *rows):
            out.write(
                ",".join('"' + f.replace('"', '""') + '"' if f else "" for f in fields) + line_end
            )
    return out.getvalue().encode("cp932")


def main() -> None:
    defaults = Params()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--skus", type=int, default=300)
    parser.add_argument("--orders", type=int, default=3000, help="buyers over the day")
    parser.add_argument("--from-hour", type=int, default=defaults.from_hour)
    parser.add_argument("--hours", type=int, default=defaults.hours)
    parser.add_argument("--quoting", choices=("all", "minimal"), default="all")
    parser.add_argument("--line-end", choices=tuple(LINE_ENDS), default="crlf")
    args = parser.parse_args()
    params = Params(
        seed=args.seed,
        skus=args.skus,
        orders=args.orders,
        from_hour=args.from_hour,
        hours=args.hours,
    )
    rows = stock_log_rows(params)
    args.file.write_bytes(
        encode_stock_log(rows, quoting=args.quoting, line_end=LINE_ENDS[args.line_end])
    )
    reasons: dict[str, int] = {}
    for fields in rows:
        reasons[fields[1]] = reasons.get(fields[1], 0) + 1
    print(
        f"{args.file}: {len(rows):,} rows ("
        + ", ".join(f"{reason} {count:,}" for reason, count in reasons.items())
        + f"), cp932, quoting {args.quoting}, line end {args.line_end}"
    )


if __name__ == "__main__":
    main()
