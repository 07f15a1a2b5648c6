"""Ledger throughput: order lines per second through the ledger task, durable (group commit).

Runs the real ledger task (WAL, synchronous=FULL, one transaction per batch) with many
concurrent producers, each recording orders of a few lines, then a raw baseline in the same
process: one ``executemany`` of the same rows into a bare table with the same pragmas.
Prints both and the ratio; the target is ≥ 5,000 order lines/s.

    python bench/ledger.py [--lines 50000] [--producers 64] [--lines-per-order 3]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daemon.actors.ledger import ledger
from daemon.clock import utc_now
from daemon.commands import IncomingOrder, LedgerRequest, TakeOrders, submit
from daemon.events import EventBus
from protocols import control
from protocols.malls.base import MallOrder, OrderLine
from protocols.settings import ShopSettings
from protocols.sku import MAX_QUANTITY

SKUS = 1000


async def through_ledger(
    database: Path, lines: int, producers: int, per_order: int, per_command: int
) -> float:
    bus = EventBus()
    subscriber = bus.subscribe()  # a live subscriber, as the daemon always has
    send, receive = trio.open_memory_channel[LedgerRequest](1024)
    orders = lines // per_order
    async with trio.open_nursery() as nursery:
        await nursery.start(ledger, database, receive, bus, utc_now)
        shop = msgspec.convert(
            {"id": "bench", "mall": "rakuten", "order_intake": "active"}, ShopSettings
        )
        await submit(send, control.ShopsApply(id=1, shops=(shop,)), "bench")
        for n in range(SKUS):
            await submit(send, control.SkuAdd(id=1, code=f"{n:06d}"), "bench")
            stocked = await submit(
                send,
                control.StockSet(id=1, code=f"{n:06d}", field="expected", value=MAX_QUANTITY),
                "bench",
            )
            # stock enough for every order: an oversold line would take another path
            assert not isinstance(stocked, control.Error), stocked

        async def drain_events() -> None:
            async for _ in subscriber.receive:
                pass

        nursery.start_soon(drain_events)
        start = time.perf_counter()

        async def producer(index: int, sender: trio.MemorySendChannel[LedgerRequest]) -> None:
            async with sender:
                mine = list(range(index, orders, producers))
                for first in range(0, len(mine), per_command):
                    batch = []
                    for order in mine[first : first + per_command]:
                        skus = [
                            f"{(order * per_order + line) % SKUS:06d}" for line in range(per_order)
                        ]
                        batch.append(
                            IncomingOrder(
                                MallOrder(
                                    order_no=f"ORD-{order}",
                                    ordered_at="2026-11-26T00:00:00+09:00",
                                    lines=tuple(
                                        OrderLine(line_no=number, item_id=sku, sku=sku, quantity=1)
                                        for number, sku in enumerate(skus, start=1)
                                    ),
                                )
                            )
                        )
                    # an intake batch: one command, one intake job
                    command = TakeOrders(shop="bench", orders=tuple(batch))
                    result = await submit(sender, command, "shop:bench")
                    assert not isinstance(result, control.Error), result

        async with trio.open_nursery() as load:
            for index in range(producers):
                load.start_soon(producer, index, send.clone())
        elapsed = time.perf_counter() - start
        await send.aclose()
    return orders * per_order / elapsed


def raw_baseline(database: Path, lines: int) -> float:
    db = sqlite3.connect(database, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE order_lines (shop TEXT, order_no TEXT, line_no INTEGER, sku TEXT, quantity INTEGER, PRIMARY KEY (shop, order_no, line_no)) WITHOUT ROWID"
    )
    rows = [("bench", f"ORD-{n // 3}", n % 3, f"{n % SKUS:06d}", 1) for n in range(lines)]
    start = time.perf_counter()
    db.execute("BEGIN")
    db.executemany("INSERT INTO order_lines VALUES (?, ?, ?, ?, ?)", rows)
    db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return lines / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=30_000)
    parser.add_argument("--producers", type=int, default=64)
    parser.add_argument("--lines-per-order", type=int, default=3)
    parser.add_argument(
        "--orders-per-command",
        type=int,
        default=1,
        help="orders per intake batch (TakeOrders); 1 is the worst case, one job per order",
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ledger_rates, raw_rates = [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            ledger_rates.append(
                trio.run(
                    through_ledger,
                    Path(tmp) / "ledger.sqlite3",
                    args.lines,
                    args.producers,
                    args.lines_per_order,
                    args.orders_per_command,
                )
            )
            raw_rates.append(raw_baseline(Path(tmp) / "raw.sqlite3", args.lines))
        print(
            f"run {run + 1}: ledger {ledger_rates[-1]:,.0f} lines/s, raw executemany {raw_rates[-1]:,.0f} rows/s"
        )
    ledger_median = statistics.median(ledger_rates)
    raw_median = statistics.median(raw_rates)
    print(
        f"ledger (durable, group commit, {args.producers} producers): median {ledger_median:,.0f} order lines/s"
    )
    print(
        f"raw executemany baseline (one transaction, no domain work): median {raw_median:,.0f} rows/s"
    )
    print(
        f"ratio ledger/raw: {ledger_median / raw_median:.3f}  target ≥ 5,000 lines/s: {'met' if ledger_median >= 5000 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
