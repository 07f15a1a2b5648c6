"""A full push of N SKUs to 10 shops (file and API malls) of the mall simulator, by the real
daemon: how long the file malls take, how close the API malls come to their rate limits, and
whether the ledger keeps answering meanwhile.

Starts the simulator (``python -m mallsim``: HTTP, SFTP, FTPS on loopback) and the daemon
(``zaiko daemon``), each a process of its own; registers N SKUs with stock (one tempostar
import) and 10 shops, every SKU linked to every shop (listing_mode all), then:

1. the full push: reflection is switched on for all 10 shops at once; each shop's reflector
   sends every SKU (file malls: 楽天市場 and FutureShop by SFTP, Yahoo!ショッピング and
   au PAY マーケット by FTPS, files of 10,000 rows; API malls: 楽天 Inventory API, Yahoo
   setStock, Wow! manager, CARTSTAR, Amazon Listings PATCH, Qoo10, each at its rate limit).
   File malls: the time until the simulator applied all N rows of each. API malls: the items
   the simulator took per second over ``--api-seconds``, against what its rate limit allows
   (requests/s × items per request); the simulator counts the 429s it answered;
2. a bulk sync (``reflect now --all``, from a read-only snapshot) of the file malls again,
   then of Amazon, by JSON_LISTINGS_FEEDs (Feeds API) instead of one PATCH a SKU;
3. all the while, a stock change every 50 ms through the control protocol: its round trip
   p50/p99, against the same measured before any push started (the baseline, same run).

Reference: TEMPOSTAR publishes 2,000 SKUs per 5 minutes, so 100,000 SKUs take 250 minutes.
Targets (SPEC §6): file malls ≤ 10 s in all; API malls ≥ 0.9 of their rate limit, zero 429s.

    python bench/bulk_sync.py [--skus 100000] [--api-seconds 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import asyncssh
import trio
from daemon_process import ROOT, DaemonProcess

sys.path.insert(0, str(ROOT))

from cli.client import ControlClient, connect
from daemon.config import load_config
from protocols import control
from protocols.malls import capability
from protocols.malls.amazon import FEED_MAX_MESSAGES

TEMPOSTAR_SKUS_PER_S = 2000 / 300
FILE_SHOPS = {"rakuten-f": "sftp", "futureshop-f": "sftp", "yahoo-f": "ftps", "wowma-f": "ftps"}
API_SHOPS = ("rakuten-a", "yahoo-a", "wowma_manager-a", "cartstar-a", "amazon-a", "qoo10-a")
FEED_SHOP = "amazon-a"
FEED_SIZE = FEED_MAX_MESSAGES
FEED_PROCESSING_S = 2.0  # the simulator's time to process one feed
PASSWORD = "bench-ftps"
SECRETS = {"rakuten": "svc:lic"}


def kind(shop: str) -> str:
    return shop.rsplit("-", 1)[0]


def sim_config(directory: Path, public_key: str) -> Path:
    shops = []
    for shop in (*FILE_SHOPS, *API_SHOPS):
        shops.append(
            f'[[shops]]\nid = "{shop}"\nmall = "{kind(shop)}"\n'
            f'api_secret = "{SECRETS.get(kind(shop), "token")}"\nseller_id = "seller"\n'
            f'ftp_password = "{PASSWORD}"\nsftp_authorized_key = "{public_key}"\n'
        )
    path = directory / "sim.toml"
    path.write_text(
        f'[sim]\nlisten = "127.0.0.1"\nstate_dir = "{directory / "sim"}"\n'
        f'maildir_root = "{directory / "simmail"}"\nfeed_processing_s = {FEED_PROCESSING_S}\n\n'
        + "\n".join(shops)
    )
    return path


def shops_file(directory: Path, addresses: dict[str, object]) -> Path:
    rows = []
    for shop in FILE_SHOPS:
        scheme = FILE_SHOPS[shop]
        port = addresses["sftp_port"] if scheme == "sftp" else addresses["ftps_port"]
        credential = "sftp.key" if scheme == "sftp" else "ftps.password"
        trust = "sim.known_hosts" if scheme == "sftp" else "sim.pem"
        rows.append(
            f'[[shops]]\nid = "{shop}"\nmall = "{kind(shop)}"\ntransport = "ftp"\n'
            f'ftp_url = "{scheme}://{shop}@127.0.0.1:{port}"\nftp_credential = "{credential}"\n'
            f'known_hosts = "{trust}"\n'
        )
    for shop in API_SHOPS:
        rows.append(
            f'[[shops]]\nid = "{shop}"\nmall = "{kind(shop)}"\ntransport = "api"\n'
            f'api_base_url = "{addresses["http_url"]}/{shop}"\napi_credential = "{kind(shop)}.secret"\n'
            'seller_id = "seller"\n'
        )
    path = directory / "shops.toml"
    path.write_text("\n".join(rows))
    return path


def allowed_items_per_s(shop: str) -> float:
    cap = capability(kind(shop))  # type: ignore[arg-type]
    return cap.api_requests_per_s * cap.api_batch_size


def sim_totals(http: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{http}/_admin/state", timeout=60) as response:
        state: dict[str, object] = json.load(response)
    return state


class Pushes:
    """What each shop's reflector reports it sent (``reflect_changed`` events), with when."""

    def __init__(self) -> None:
        self.pushed: dict[str, int] = {}
        self.last_at: dict[str, float] = {}
        self.changed = trio.Event()

    async def follow(self, client: ControlClient) -> None:
        while True:
            event = await client.next_event()
            if isinstance(event, control.ReflectChanged):
                if event.reflection.pushed != self.pushed.get(event.shop):
                    self.pushed[event.shop] = event.reflection.pushed
                    self.last_at[event.shop] = time.monotonic()
                self.changed.set()
                self.changed = trio.Event()

    async def until(self, wanted: dict[str, int], client: ControlClient) -> None:
        """Until each shop has sent its wanted count (10 minutes at most: then what each
        shop's reflector said last is the error)."""
        with trio.move_on_after(600):
            while any(self.pushed.get(shop, 0) < count for shop, count in wanted.items()):
                await self.changed.wait()
            return
        status = await client.request(control.GetStatus(id=0))
        errors = {s.id: s.reflection.last_error for s in status.shops if s.id in wanted}
        raise SystemExit(f"bulk_sync: not every shop sent its quantities in 10 minutes: {errors}")


async def probe(client: ControlClient, seconds: float, times: list[float]) -> None:
    """A stock change every 50 ms; each round trip into ``times``."""
    deadline = time.monotonic() + seconds
    value = 0
    while time.monotonic() < deadline:
        value += 1
        started = time.perf_counter()
        await client.request(
            control.StockSet(id=0, code="PROBE", field="expected", value=value % 1000)
        )
        times.append(time.perf_counter() - started)
        await trio.sleep(0.05)


async def finished_bulk_sync(client: ControlClient, shop: str) -> control.Job:
    """The shop's newest bulk_sync job, once it is done."""
    while True:
        reply = await client.request(control.JobsList(id=0, limit=20))
        assert isinstance(reply, control.JobsReply), reply
        job = next((j for j in reply.jobs if j.kind == "bulk_sync" and j.shop == shop), None)
        if job is not None and job.state == "done":
            return job
        await trio.sleep(0.2)  # polled: the jobs topic is not what this bench measures


def p(times: list[float], q: float) -> float:
    return statistics.quantiles(times, n=100)[q - 1] * 1000 if len(times) > 1 else float("nan")


async def run(daemon: DaemonProcess, http: str, skus: int, api_seconds: float) -> None:
    config = load_config(daemon.config_path)
    async with (
        connect(config, "bench") as client,
        connect(config, "events") as events,
        connect(config, "probe") as prober,
    ):
        await prober.request(control.SkuAdd(id=0, code="PROBE"))
        baseline: list[float] = []
        await probe(prober, 5.0, baseline)
        await events.request(control.Subscribe(id=0, topics=("reflect",)))
        pushes = Pushes()
        during: list[float] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pushes.follow, events)
            nursery.start_soon(probe, prober, api_seconds, during)
            switched_on: dict[str, float] = {}
            for shop in (*FILE_SHOPS, *API_SHOPS):
                reply = await client.request(
                    control.ShopSet(id=0, shop=shop, changes={"reflect": "active"})
                )
                assert not isinstance(reply, control.Error), reply
                switched_on[shop] = time.monotonic()
            await pushes.until(dict.fromkeys(FILE_SHOPS, skus), client)
            files = {shop: pushes.last_at[shop] - switched_on[shop] for shop in FILE_SHOPS}
            # the file malls each sent every row from its own start, all four at once
            file_s = max(pushes.last_at[shop] for shop in FILE_SHOPS) - min(
                switched_on[shop] for shop in FILE_SHOPS
            )
            first = min(switched_on.values())
            await trio.sleep(max(0.0, api_seconds - (time.monotonic() - first)))
            # an API mall's rate: what it took over the time it was busy (until its last push)
            api = {
                shop: pushes.pushed.get(shop, 0) / (pushes.last_at[shop] - switched_on[shop])
                for shop in API_SHOPS
                if shop in pushes.last_at
            }
            busy = {shop: pushes.last_at[shop] - switched_on[shop] for shop in api}
            taken = {shop: pushes.pushed[shop] for shop in api}  # before any bulk sync
            # the bulk sync of the file malls, from a snapshot, while the API malls go on
            before = dict(pushes.pushed)
            bulk_started = time.monotonic()
            for shop in FILE_SHOPS:
                await client.request(control.ReflectNow(id=0, shop=shop, bulk=True))
            await pushes.until({shop: before[shop] + skus for shop in FILE_SHOPS}, client)
            bulk_s = max(pushes.last_at[shop] for shop in FILE_SHOPS) - bulk_started
            # Amazon's bulk sync by JSON_LISTINGS_FEED, while its per-SKU PATCHes go on
            feed_started = time.monotonic()
            await client.request(control.ReflectNow(id=0, shop=FEED_SHOP, bulk=True))
            feed_job = await finished_bulk_sync(client, FEED_SHOP)
            feed_s = time.monotonic() - feed_started
            nursery.cancel_scope.cancel()
    state = await trio.to_thread.run_sync(sim_totals, http)
    totals = state["totals"]
    assert isinstance(totals, dict)
    print(f"\n{skus:,} SKUs × {len(FILE_SHOPS) + len(API_SHOPS)} shops")
    print(
        f"file malls (4 shops at once, {skus:,} rows each, SFTP and FTPS): all applied "
        f"{file_s:.1f} s after the first was switched on (target ≤ 10 s); a bulk sync of the "
        f"four again, from a snapshot: {bulk_s:.1f} s"
    )
    for shop, seconds in sorted(files.items()):
        print(f"  {shop:14} {seconds:6.1f} s")
    patch_s = skus / allowed_items_per_s(FEED_SHOP)
    print(
        f"Amazon bulk sync by JSON_LISTINGS_FEED ({-(-skus // FEED_SIZE)} feeds of ≤ "
        f"{FEED_SIZE:,}; the simulator processes a feed in {FEED_PROCESSING_S:.0f} s): "
        f"{feed_s:.1f} s, {feed_job.success:,} taken, {feed_job.failure} refused; one Listings "
        f"PATCH a SKU at the rate limit would take {patch_s / 3600:.1f} h "
        f"(ratio {patch_s / feed_s:,.0f}×)"
    )
    print("API malls: items the mall took per second while busy, against its rate limit's:")
    for shop, rate in api.items():
        allowed = allowed_items_per_s(shop)
        print(
            f"  {shop:16} {rate:8.1f} /s of {allowed:6.0f} /s = {rate / allowed:.2f}"
            f"  ({taken[shop]:,} items in {busy[shop]:.0f} s)"
        )
    shops = state["shops"]
    assert isinstance(shops, dict)
    throttled = {shop: doc["throttled"] for shop, doc in shops.items() if doc["throttled"]}
    print(f"429 answers counted by the simulator: {totals['throttled']} {throttled or ''}")
    print(
        f"stock change round trip: before p50 {p(baseline, 50):.1f} ms p99 {p(baseline, 99):.1f} ms;"
        f" during p50 {p(during, 50):.1f} ms p99 {p(during, 99):.1f} ms"
        f" (ratio p99 {p(during, 99) / p(baseline, 99):.1f})"
    )
    print(f"daemon peak RSS: {daemon.peak_rss_mb():.0f} MB")
    tempostar_min = skus / TEMPOSTAR_SKUS_PER_S / 60
    print(
        f"TEMPOSTAR (2,000 SKUs per 5 minutes): {skus:,} SKUs take {tempostar_min:,.0f} minutes "
        "per shop"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument("--api-seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zaiko-bulk-") as folder:
        directory = Path(folder)
        key = asyncssh.generate_private_key("ssh-ed25519")
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mallsim",
                "--config",
                str(sim_config(directory, key.export_public_key().decode().strip())),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=(directory / "sim.log").open("wb"),
        )
        try:
            assert sim.stdout is not None
            addresses = json.loads(sim.stdout.readline())
            daemon_dir = directory / "daemon"
            daemon_dir.mkdir()
            credentials = daemon_dir / "state" / "credentials"
            credentials.mkdir(parents=True)
            (credentials / "sftp.key").write_bytes(key.export_private_key())
            (credentials / "sim.known_hosts").write_text(
                Path(str(addresses["known_hosts"])).read_text()
            )
            (credentials / "sim.pem").write_text(Path(str(addresses["ftps_cert"])).read_text())
            (credentials / "ftps.password").write_text(PASSWORD)
            for shop in API_SHOPS:
                (credentials / f"{kind(shop)}.secret").write_text(SECRETS.get(kind(shop), "token"))
            daemon = DaemonProcess(daemon_dir, '[mail]\nmaildir_root = "mail"\n')
            try:
                zaiko = daemon.command
                subprocess.run(
                    zaiko("shops", "apply", str(shops_file(directory, addresses))),
                    cwd=ROOT,
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                catalog, stock = directory / "catalog.csv", directory / "stock.csv"
                catalog.write_text(
                    "商品コード,商品名\n" + "".join(f"B{n:07d},品{n}\n" for n in range(args.skus)),
                    encoding="cp932",
                )
                stock.write_text(
                    "商品コード,想定在庫数\n"
                    + "".join(f"B{n:07d},{n % 50 + 1}\n" for n in range(args.skus)),
                    encoding="cp932",
                )
                started = time.monotonic()
                subprocess.run(
                    zaiko("sku", "import", str(catalog)),
                    cwd=ROOT,
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                subprocess.run(
                    zaiko("import", str(stock)), cwd=ROOT, check=True, stdout=subprocess.DEVNULL
                )
                print(
                    f"registered {args.skus:,} SKUs with stock in {time.monotonic() - started:.1f} s"
                )
                started = time.monotonic()
                # every target computed (the ledger does it a batch at a time when idle)
                while not json.loads(
                    subprocess.run(
                        zaiko(
                            "reflect",
                            "now",
                            "--shop",
                            API_SHOPS[-1],
                            "--dry-run",
                            "--limit",
                            "1",
                            "--json",
                        ),
                        cwd=ROOT,
                        check=True,
                        capture_output=True,
                    ).stdout
                )["complete"]:
                    time.sleep(0.2)
                print(
                    f"outbox: {args.skus * 10:,} targets computed in {time.monotonic() - started:.1f} s"
                )
                trio.run(run, daemon, str(addresses["http_url"]), args.skus, args.api_seconds)
            finally:
                daemon.stop()
        finally:
            sim.terminate()
            sim.wait()


if __name__ == "__main__":
    main()
