"""Order mails dropped into Maildirs → taken by the real daemon: throughput and latency.

Starts the real daemon (``zaiko daemon``) with three mail shops (楽天市場, Yahoo!ショッピング,
au PAY マーケット) whose intake is active, SKUs with stock and a set product, then, with order
mails rendered by the mall modules beforehand (ISO-2022-JP and UTF-8, a share of them for
the set product):

1. burst: N mails delivered (tmp/ then rename into new/, as an MTA does) while intake is
   stopped, then intake switched on: throughput = N / (last commit − switching on);
2. steady: mails at a steady rate; latency per mail = the ledger's commit (the
   ``order_changed`` event, published right after COMMIT) − its arrival in new/; p50/p99;
3. the same while a 100,000-row stock import is uploaded, parsed and applied.

Targets (SPEC §6): ≥ 1,000 orders/s sustained; arrival → commit p99 ≤ 100 ms, and ≤ 500 ms
while a 100,000-row import is applied.

    python bench/intake.py [--orders 10000] [--rate 200] [--seconds 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio
from daemon_process import ROOT, DaemonProcess

sys.path.insert(0, str(ROOT))

from cli.client import connect
from daemon.config import load_config
from mallsim.maildir import deliver
from protocols import control
from protocols.malls import module
from protocols.malls.base import MallOrder, OrderLine

SHOPS = {"r1": "rakuten", "y1": "yahoo", "w1": "wowma"}
SKUS = 500


def sku(kind: str, n: int) -> str:
    joined: str = module(kind).join_sku(f"{kind}-{n:04d}", ())
    return joined


def render(shop: str, number: int) -> tuple[str, bytes]:
    kind = SHOPS[shop]
    order_no = f"{shop}-{number:07d}"
    items = [(f"{kind}-{number % SKUS:04d}", 1), (f"{kind}-{(number * 7) % SKUS:04d}", 2)]
    lines = [
        OrderLine(
            line_no=n, item_id=item, sku=module(kind).join_sku(item, ()), quantity=q, name="①の品"
        )
        for n, (item, q) in enumerate(items, start=1)
    ]
    if number % 10 == 0:  # a tenth sell the set product
        lines.append(OrderLine(line_no=3, item_id="SET-1", sku="SET-1", quantity=1, name="セット"))
    order = MallOrder(order_no=order_no, ordered_at="2026-11-30T09:00:00+09:00", lines=tuple(lines))
    return f"{shop}:{order_no}", module(kind).render_order_mail(order, "ベンチ店")


class Daemon(DaemonProcess):
    """The daemon with order mail intake, and its configuration as it reads it."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, '[mail]\nmaildir_root = "mail"\n')
        self.config = load_config(self.config_path)

    def cli(self, *args: str) -> None:
        subprocess.run(self.command(*args), cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def prepare(daemon: Daemon, directory: Path) -> None:
    catalog = directory / "catalog.csv"
    stock = directory / "stock.csv"
    codes = [sku(kind, n) for kind in SHOPS.values() for n in range(SKUS)] + ["C1", "C2"]
    catalog.write_bytes(
        ("商品コード,商品名\r\n" + "".join(f"{c},品\r\n" for c in codes)).encode("cp932")
    )
    stock.write_bytes(
        ("商品コード,想定在庫数\r\n" + "".join(f"{c},1000000\r\n" for c in codes)).encode("cp932")
    )
    daemon.cli("sku", "import", str(catalog))
    daemon.cli("import", str(stock))
    daemon.cli("sets", "add", "SET-1", "--child", "C1:1", "--child", "C2:2")
    shops = directory / "shops.toml"
    shops.write_text(
        "".join(
            f'[[shops]]\nid = "{shop}"\nmall = "{kind}"\norder_intake = "stopped"\n'
            for shop, kind in SHOPS.items()
        )
    )
    daemon.cli("shops", "apply", str(shops))


class Observer:
    """Commit times of orders, from the daemon's ``order_changed`` events."""

    def __init__(self) -> None:
        self.committed: dict[str, float] = {}
        self.changed = trio.Event()

    async def run(self, daemon: Daemon, *, task_status: trio.TaskStatus[None]) -> None:
        async with connect(daemon.config, "bench") as client:
            await client.request(control.Subscribe(id=0, topics=("orders",)))
            task_status.started()
            while True:
                event = await client.next_event()
                if isinstance(event, control.OrderChanged):
                    self.committed.setdefault(event.order.key, time.time())
                    self.changed.set()
                    self.changed = trio.Event()
                elif isinstance(event, control.Resync):
                    raise SystemExit("the bench read events too slowly: results incomplete")

    async def until(self, keys: set[str]) -> None:
        with trio.fail_after(300):
            while not keys <= self.committed.keys():
                await self.changed.wait()


async def deliver_steady(
    root: Path, mails: list[tuple[str, str, bytes]], rate: float
) -> dict[str, float]:
    """Deliver mails at ``rate`` a second; their arrival times (wall clock)."""
    arrived: dict[str, float] = {}
    start = trio.current_time()
    for index, (shop, key, raw) in enumerate(mails):
        await trio.sleep_until(start + index / rate)
        arrived[key] = time.time()
        deliver(root / shop, raw, when=arrived[key])
    return arrived


def latencies(arrived: dict[str, float], committed: dict[str, float]) -> tuple[float, float]:
    values = sorted((committed[key] - at) * 1000 for key, at in arrived.items())
    return statistics.median(values), values[min(len(values) - 1, int(len(values) * 0.99))]


async def bench(args: argparse.Namespace, daemon: Daemon, directory: Path) -> None:
    root = daemon.config.maildir_root
    shops = list(SHOPS)
    total = args.orders + 2 * int(args.rate * args.seconds)
    print(f"rendering {total:,} order mails ...", flush=True)
    mails = []
    for number in range(total):
        shop = shops[number % len(shops)]
        key, raw = render(shop, number)
        mails.append((shop, key, raw))
    burst, steady, during = (
        mails[: args.orders],
        mails[args.orders : args.orders + (total - args.orders) // 2],
        mails[args.orders + (total - args.orders) // 2 :],
    )
    observer = Observer()
    async with trio.open_nursery() as nursery:
        await nursery.start(observer.run, daemon)

        # 1. burst
        # 1. burst: the mails wait while intake is stopped, then intake is switched on (the
        # delivery itself, a file write and rename each, is not what is measured)
        def deliver_all() -> None:
            for shop, _, raw in burst:
                deliver(root / shop, raw, when=time.time())

        await trio.to_thread.run_sync(deliver_all)
        first = time.time()
        for shop in SHOPS:
            await trio.to_thread.run_sync(
                daemon.cli, "shops", "set", shop, "order_intake=active", "--backlog", "take"
            )
        await observer.until({key for _, key, _ in burst})
        last = max(observer.committed[key] for _, key, _ in burst)
        rate = len(burst) / (last - first)
        print(
            f"burst: {len(burst):,} waiting mails taken {last - first:.2f}s after intake was "
            f"switched on: {rate:,.0f} orders/s  target ≥ 1,000: {'met' if rate >= 1000 else 'NOT met'}"
        )
        # 2. steady, alone
        arrived = await deliver_steady(root, steady, args.rate)
        await observer.until(set(arrived))
        p50, p99 = latencies(arrived, observer.committed)
        print(
            f"steady {args.rate:.0f}/s alone: arrival → commit p50 {p50:.0f} ms, p99 {p99:.0f} ms"
            f"  target p99 ≤ 100 ms: {'met' if p99 <= 100 else 'NOT met'}"
        )
        # 3. steady, during a 100,000-row import
        stock = directory / "big.csv"
        codes = [sku(kind, n) for kind in SHOPS.values() for n in range(SKUS)]
        rows = [f"{codes[n % len(codes)]}-x{n},1\r\n" for n in range(100_000)]
        catalog = directory / "big-catalog.csv"
        catalog.write_bytes(
            ("商品コード,商品名\r\n" + "".join(f"{r.split(',')[0]},品\r\n" for r in rows)).encode(
                "cp932"
            )
        )
        stock.write_bytes(("商品コード,想定在庫数\r\n" + "".join(rows)).encode("cp932"))
        daemon.cli("sku", "import", str(catalog))
        import_done = trio.Event()
        import_window: list[float] = []

        async def big_import() -> None:
            import_window.append(time.time())
            await trio.run_process(
                daemon.command("import", str(stock)), cwd=ROOT, stdout=subprocess.DEVNULL
            )
            import_window.append(time.time())
            import_done.set()

        nursery.start_soon(big_import)
        arrived = await deliver_steady(root, during, args.rate)
        await import_done.wait()
        await observer.until(set(arrived))
        start, end = import_window
        in_window = {k: t for k, t in arrived.items() if start <= t <= end}
        p50, p99 = latencies(arrived, observer.committed)
        w50, w99 = latencies(in_window, observer.committed) if in_window else (0.0, 0.0)
        print(
            f"steady {args.rate:.0f}/s with a 100,000-row import ({end - start:.1f}s): "
            f"all p50 {p50:.0f} ms, p99 {p99:.0f} ms; the {len(in_window)} mails that arrived "
            f"during the import: p50 {w50:.0f} ms, p99 {w99:.0f} ms"
            f"  target p99 ≤ 500 ms: {'met' if w99 <= 500 else 'NOT met'}"
        )
        nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000, help="mails of the burst")
    parser.add_argument("--rate", type=float, default=200.0, help="mails a second, steady")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each steady run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        daemon = Daemon(directory)
        try:
            prepare(daemon, directory)
            trio.run(bench, args, daemon, directory)
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
