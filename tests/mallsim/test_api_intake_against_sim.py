"""The daemon's API intake against mallsim over real sockets: customers order at an API shop
of every API-intake mall (Amazon, Qoo10, Wow! manager, ヤフオク!), with pages, Amazon's items
one page per item, a waiting order paid later, an order of another marketplace, a
cancellation; every order is taken once and each SKU ends at its start value minus what the
mall's truth says was sold."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncssh
import httpx
import msgspec
import pytest
import trio

from cli.client import ControlClient, connect
from daemon.config import load_config
from mallsim.config import parse_config
from mallsim.malls import Mall
from mallsim.sim import Simulator, open_simulator
from protocols import control
from protocols.malls import KINDS, capability
from protocols.settings import ShopSettings
from tests.conftest import running_daemon, write_config
from tests.mallsim.conftest import SECRET, SELLER, sim_toml

# the malls whose orders come by API only (楽天's shops take order mails)
API_KINDS = [kind for kind in KINDS if capability(kind).intake == ("api",)]
OPTIONS = {
    "amazon": ("take_pending", "take_cancellations"),
    "qoo10": ("take_unpaid", "take_cancellations"),
}


@pytest.fixture
async def paged_sim(tmp_path: Path, client_key: asyncssh.SSHKey) -> AsyncIterator[Simulator]:
    pub = client_key.export_public_key().decode().strip()
    extra = "order_page_size = 2\norder_items_page_size = 1"
    cfg = parse_config(sim_toml(tmp_path / "sim", pub, extra=extra), base_dir=tmp_path)
    # the mall's rate limit on a real clock: the daemon's token bucket keeps within it
    async with open_simulator(cfg, rate_clock=time.monotonic, services=("http",)) as sim:
        yield sim


async def admin(client: httpx.AsyncClient, sim: Simulator, what: str, **doc: object) -> str:
    assert sim.addresses is not None
    resp = await client.post(f"{sim.addresses.http_url}/_admin/{what}", json=doc)
    assert resp.status_code == 200, resp.text
    order_no: str = resp.json()["order_no"]
    return order_no


async def until_taken(
    client: ControlClient,
    wanted: dict[str, str],
    seen: dict[str, str],
    expected_sold: dict[str, int],
) -> None:
    """Wait until every order is in the status wanted (``seen`` follows the events); then
    each SKU is at its start value minus what was sold."""
    with trio.fail_after(60):
        while any(seen.get(key) != status for key, status in wanted.items()):
            event = await client.next_event()
            if isinstance(event, control.OrderChanged):
                seen[event.order.key] = event.order.status
    for code, sold in expected_sold.items():
        level = (await client.request(control.SkuShow(id=0, code=code))).sku.stock
        assert level.expected == 100 - sold, (code, sold)


async def test_every_api_mall_s_orders_are_taken_once(paged_sim: Simulator, tmp_path: Path) -> None:
    sim = paged_sim
    assert sim.addresses is not None
    config_path = write_config(tmp_path)
    config_path.write_text(
        config_path.read_text()
        + "[intake]\napi_poll_s = 0.5\napi_settle_s = 0.0\napi_overlap_s = 600.0\n"
    )
    config = load_config(config_path)
    credentials = config.state_dir / "credentials"
    credentials.mkdir(parents=True)
    for kind in API_KINDS:
        (credentials / f"{kind}.secret").write_text(SECRET)
    # the daemon's wall clock is the simulator's (its orders are dated from its epoch);
    # a function safe on any thread: the ledger reads it on its worker thread
    base_wall, base = sim.state.wall(trio.current_time()), time.monotonic()

    def wall() -> object:
        return base_wall + timedelta(seconds=time.monotonic() - base)

    async with (
        running_daemon(config, wall_clock=wall),
        connect(config, "test") as client,
        httpx.AsyncClient() as http,
    ):
        shops = tuple(
            msgspec.convert(
                {
                    "id": kind,
                    "mall": kind,
                    "order_intake": "active",
                    "api_base_url": sim.addresses.shop_url(kind),
                    "api_credential": f"{kind}.secret",
                    "seller_id": SELLER,
                    **dict.fromkeys(OPTIONS.get(kind, ()), True),
                },
                ShopSettings,
            )
            for kind in API_KINDS
        )
        await client.request(control.ShopsApply(id=0, shops=shops))
        for kind in API_KINDS:
            rows = []
            for letter in "AB":
                code = f"{kind.upper()}-{letter}"
                await client.request(control.SkuAdd(id=0, code=code))
                await client.request(control.StockSet(id=0, code=code, field="expected", value=100))
                rows.append(control.ListingRow(code, f"{kind}-item-{letter.lower()}"))
            await client.request(control.ListingsImport(id=0, shop=kind, rows=tuple(rows)))
        await client.request(control.Subscribe(id=0, topics=("orders",)))
        expected_sold: dict[str, int] = {}
        wanted: dict[str, str] = {}  # order key → the status it ends in
        to_cancel: list[tuple[str, str]] = []
        for kind in API_KINDS:
            a, b = f"{kind.upper()}-A", f"{kind.upper()}-B"
            for n in range(3):  # several pages (page size 2)
                lines: list[dict[str, object]] = [{"sku": a, "quantity": 1}]
                if n == 0 and kind != "yahoo_auction":
                    lines.append({"sku": b, "quantity": 1})
                number = await admin(http, sim, "orders", shop=kind, lines=lines)
                wanted[f"{kind}:{number}"] = "allocated"
                for line in lines:
                    code = str(line["sku"])
                    expected_sold[code] = expected_sold.get(code, 0) + int(str(line["quantity"]))
            waiting_state = Mall(kind).waiting_state
            if waiting_state is not None:  # taken while waiting, then paid
                number = await admin(
                    http,
                    sim,
                    "orders",
                    shop=kind,
                    lines=[{"sku": a, "quantity": 1}],
                    status=waiting_state,
                )
                wanted[f"{kind}:{number}"] = "pending"
                expected_sold[a] = expected_sold.get(a, 0) + 1
            if kind == "amazon":  # another marketplace's order: not this shop's
                await admin(
                    http, sim, "orders", shop=kind, lines=[{"sku": a, "quantity": 1}], foreign=True
                )
            if kind in ("amazon", "qoo10"):  # taken, then cancelled (below): given back
                number = await admin(
                    http, sim, "orders", shop=kind, lines=[{"sku": a, "quantity": 1}]
                )
                wanted[f"{kind}:{number}"] = "allocated"
                expected_sold[a] = expected_sold.get(a, 0) + 1
                to_cancel.append((kind, number))
        seen: dict[str, str] = {}
        await until_taken(client, wanted, seen, expected_sold)
        # the waiting orders get paid (their lines stay taken once, now allocated), and some
        # orders already taken are cancelled (their units come back)
        for key, status in wanted.items():
            if status == "pending":
                kind, number = key.split(":", 1)
                await admin(http, sim, "pay", shop=kind, order_no=number)
                wanted[key] = "allocated"
        for kind, number in to_cancel:
            await admin(http, sim, "cancel", shop=kind, order_no=number)
            wanted[f"{kind}:{number}"] = "cancelled"
            expected_sold[f"{kind.upper()}-A"] -= 1
        await until_taken(client, wanted, seen, expected_sold)
        status = await client.request(control.GetStatus(id=0))
        amazon = next(shop for shop in status.shops if shop.id == "amazon")
        assert amazon.intake.ignored >= 1  # the other marketplace's order
        assert all(shop.intake.last_error == "" for shop in status.shops)
        assert sum(shop.throttled for shop in sim.state.shops.values()) == 0
