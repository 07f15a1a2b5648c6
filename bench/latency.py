"""A sale → the new quantity received by a simulated API mall: latency through the real
daemon, on the urgent path and with the interval only.

Starts the daemon (``zaiko daemon``) with one mail shop where customers buy (楽天市場: its
order mails are delivered into its Maildir, as an MTA does) and three API shops that sell
the same SKUs, each a simulated mall served by this bench (hypercorn on trio, reading the
calls with the mall module's own ``parse_stock_request``, stamping when each quantity
arrives):

- ``amazon-u``: Amazon (one Listings PATCH per SKU, 5 calls/s), urgent push on (default);
- ``yahoo-u``: Yahoo!ショッピング (setStock, 1,000 SKUs per call, 1 call/s), urgent push on;
- ``yahoo-i``: Yahoo!ショッピング with urgent push off: the 5-minute interval only, as
  TEMPOSTAR sends (for comparison).

N orders of one unit each arrive at ``--rate`` a second. A sale's latency at a shop is the
first time the shop receives a quantity at or below the one that sale left (a later push
carries it too: latest value wins) minus the mail's arrival in new/. Printed: p50/p99 per
shop. Target (SPEC §6): p99 ≤ 1 s on the urgent path.

    python bench/latency.py [--orders 1000] [--rate 3] [--interval-min 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import hypercorn.config
import hypercorn.trio
import trio
from daemon_process import ROOT, DaemonProcess

sys.path.insert(0, str(ROOT))

from cli.client import connect
from daemon.config import load_config
from mallsim.maildir import deliver
from protocols import control
from protocols.malls import module, rakuten
from protocols.malls.base import HttpRequest, MallOrder, OrderLine

SKUS = 200
START = 50_000
API_SHOPS = {"amazon-u": "amazon", "yahoo-u": "yahoo", "yahoo-i": "yahoo"}


def code(n: int) -> str:
    return f"L{n:05d}"


class Mall:
    """Every API shop's stock calls: when each SKU's quantities arrived."""

    def __init__(self) -> None:
        # (shop, sku) → [(arrival, quantity)]
        self.received: dict[tuple[str, str], list[tuple[float, int]]] = {}
        self.calls = 0
        self.changed = trio.Event()

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        shop, _, rest = scope["path"].lstrip("/").partition("/")
        request = HttpRequest(
            method=scope["method"],
            path="/" + rest,
            query=tuple(urllib.parse.parse_qsl(scope["query_string"].decode())),
            headers=tuple((k.decode(), v.decode()) for k, v in scope["headers"]),
            body=body,
        )
        now = time.time()
        mall = module(API_SHOPS[shop])
        self.calls += 1
        updates = mall.parse_stock_request(request)
        for update in updates:
            self.received.setdefault((shop, update.item_id), []).append((now, update.quantity))
        self.changed.set()
        self.changed = trio.Event()
        answer: bytes = mall.render_stock_response(updates)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": answer})

    def first_at_or_below(self, shop: str, sku: str, quantity: int) -> float | None:
        for at, received in self.received.get((shop, sku), ()):
            if received <= quantity:
                return at
        return None


def order_mail(number: int, sku: str) -> bytes:
    order = MallOrder(
        order_no=f"100000-20261130-{number:010d}",
        ordered_at="2026-11-30T09:00:00+09:00",
        lines=(OrderLine(line_no=1, item_id=sku, sku=sku, quantity=1, name="ベンチの品"),),
    )
    raw: bytes = rakuten.render_order_mail(order, "ベンチ店")
    return raw


def zaiko(daemon: DaemonProcess, *args: str) -> None:
    subprocess.run(daemon.command(*args), cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def prepare(daemon: DaemonProcess, directory: Path, port: int, interval_min: int) -> None:
    credentials = directory / "state" / "credentials"
    credentials.mkdir(parents=True, exist_ok=True)
    (credentials / "token").write_text("token")
    catalog = directory / "catalog.csv"
    catalog.write_bytes(
        ("商品コード,商品名\r\n" + "".join(f"{code(n)},品\r\n" for n in range(SKUS))).encode()
    )
    stock = directory / "stock.csv"
    stock.write_bytes(
        (
            "商品コード,想定在庫数\r\n" + "".join(f"{code(n)},{START}\r\n" for n in range(SKUS))
        ).encode()
    )
    zaiko(daemon, "sku", "import", str(catalog), "--encoding", "utf-8")
    zaiko(daemon, "import", str(stock), "--encoding", "utf-8")
    shops = ['[[shops]]\nid = "r1"\nmall = "rakuten"\norder_intake = "active"\n']
    for shop, kind in API_SHOPS.items():
        shops.append(
            f'[[shops]]\nid = "{shop}"\nmall = "{kind}"\ntransport = "api"\n'
            f'api_base_url = "http://127.0.0.1:{port}/{shop}"\napi_credential = "token"\n'
            f'seller_id = "seller"\nreflect = "active"\nsend_interval_min = {interval_min}\n'
            f"urgent_push = {'false' if shop.endswith('-i') else 'true'}\n"
        )
    path = directory / "shops.toml"
    path.write_text("\n".join(shops))
    zaiko(daemon, "shops", "apply", str(path))


async def serve(
    mall: Mall, config: hypercorn.config.Config, *, task_status: trio.TaskStatus[int]
) -> None:
    class Started:
        def started(self, binds: list[str] | None = None) -> None:
            task_status.started(int((binds or [""])[0].rsplit(":", 1)[1]))

    await hypercorn.trio.serve(mall, config, task_status=Started())  # type: ignore[arg-type]


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else float("nan")


async def run(args: argparse.Namespace, directory: Path) -> None:
    mall = Mall()
    config = hypercorn.config.Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve, mall, config)
        daemon_dir = directory / "daemon"
        daemon_dir.mkdir()
        daemon = DaemonProcess(daemon_dir, '[mail]\nmaildir_root = "mail"\n')
        try:
            await trio.to_thread.run_sync(prepare, daemon, daemon_dir, port, args.interval_min)
            # the pass at start sent every SKU its quantity: sales are measured from there
            with trio.fail_after(120):
                while any(
                    mall.first_at_or_below(shop, code(n), START) is None
                    for shop in API_SHOPS
                    for n in range(SKUS)
                ):
                    await mall.changed.wait()
            maildir = load_config(daemon.config_path).maildir_root / "r1"
            sold: dict[str, int] = {}
            sales: list[tuple[float, str, int]] = []  # arrival, sku, quantity it left
            started = trio.current_time()
            for number in range(args.orders):
                await trio.sleep_until(started + number / args.rate)
                sku = code((number * 37) % SKUS)
                sold[sku] = sold.get(sku, 0) + 1
                raw = order_mail(number, sku)
                arrived = time.time()
                deliver(maildir, raw, when=arrived)
                sales.append((arrived, sku, START - sold[sku]))
            # until every shop received every sale (the interval shop: its next pass)
            wait_s = args.interval_min * 60 + 120
            with trio.move_on_after(wait_s):
                while any(
                    mall.first_at_or_below(shop, sku, left) is None
                    for shop in API_SHOPS
                    for _, sku, left in sales
                ):
                    await mall.changed.wait()
            print(f"\n{args.orders:,} orders at {args.rate:g}/s, one unit each, on {SKUS} SKUs")
            for shop in API_SHOPS:
                waited = [
                    at - arrived
                    for arrived, sku, left in sales
                    if (at := mall.first_at_or_below(shop, sku, left)) is not None
                ]
                missing = len(sales) - len(waited)
                path = "interval only" if shop.endswith("-i") else "urgent push"
                print(
                    f"{shop:9} ({API_SHOPS[shop]}, {path}): p50 {p(waited, 50) * 1000:8.0f} ms"
                    f"  p99 {p(waited, 99) * 1000:8.0f} ms  max {max(waited) * 1000:8.0f} ms"
                    + (f"  ({missing} sales never arrived)" if missing else "")
                )
            print(f"stock calls received: {mall.calls:,}")
            async with connect(load_config(daemon.config_path), "bench") as client:
                status = await client.request(control.GetStatus(id=0))
                errors = {
                    s.id: s.reflection.last_error for s in status.shops if s.reflection.last_error
                }
                if errors:
                    print(f"reflector errors: {errors}")
        finally:
            daemon.stop()
            nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=3.0, help="orders a second")
    parser.add_argument("--interval-min", type=int, default=5, help="send_interval_min")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zaiko-latency-") as folder:
        trio.run(run, args, Path(folder))


if __name__ == "__main__":
    main()
