"""Stock reflection from the daemon to mallsim over real sockets: every mall kind that takes
stock, by its API (httpx, the mall's rate limit) or its stock files (SFTP with the host key
checked, FTPS with the certificate checked), converges to exactly its target; a mall that is
down catches up when it is back; a host key that does not match sends nothing."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import httpx
import msgspec
import pytest
import trio

from cli.client import ControlClient, connect
from daemon.config import Config, load_config
from mallsim.config import parse_config
from mallsim.sim import Simulator, open_simulator
from protocols import control
from protocols.malls import KINDS, capability
from protocols.settings import ShopSettings
from tests.conftest import running_daemon, write_config
from tests.mallsim.conftest import PASSWORD, SECRET, SELLER, sim_toml

STOCK_KINDS = [kind for kind in KINDS if capability(kind).stock_out]
# the file malls, each by one file transport
FILE_TRANSPORT = {"rakuten": "sftp", "futureshop": "sftp", "yahoo": "ftps", "wowma": "ftps"}


@pytest.fixture
async def sim(tmp_path: Path, client_key: asyncssh.SSHKey) -> AsyncIterator[Simulator]:
    pub = client_key.export_public_key().decode().strip()
    cfg = parse_config(sim_toml(tmp_path / "sim", pub), base_dir=tmp_path)
    async with open_simulator(cfg, rate_clock=time.monotonic) as sim:
        yield sim


def daemon_config(tmp_path: Path, sim: Simulator, client_key: asyncssh.SSHKey) -> Config:
    assert sim.addresses is not None
    config = load_config(write_config(tmp_path))
    credentials = config.state_dir / "credentials"
    credentials.mkdir(parents=True)
    (credentials / "api.secret").write_text(SECRET)
    (credentials / "ftp.password").write_text(PASSWORD)
    (credentials / "sftp.key").write_bytes(client_key.export_private_key())
    (credentials / "sim.known_hosts").write_text(Path(sim.addresses.known_hosts).read_text())
    (credentials / "ftps.pem").write_text(Path(sim.addresses.ftps_cert).read_text())
    (credentials / "other.known_hosts").write_text(
        Path(sim.addresses.known_hosts).read_text().split(" ssh-ed25519 ")[0]
        + " "
        + asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    )
    return config


def shop_settings(sim: Simulator, kind: str, **changes: object) -> ShopSettings:
    assert sim.addresses is not None
    doc: dict[str, object] = {"id": kind, "mall": kind, "reflect": "active"}
    transport = FILE_TRANSPORT.get(kind)
    if transport == "sftp":
        doc |= {
            "transport": "ftp",
            "ftp_url": f"sftp://user-{kind}@127.0.0.1:{sim.addresses.sftp_port}",
            "ftp_credential": "sftp.key",
            "known_hosts": "sim.known_hosts",
        }
    elif transport == "ftps":
        doc |= {
            "transport": "ftp",
            "ftp_url": f"ftps://user-{kind}@127.0.0.1:{sim.addresses.ftps_port}",
            "ftp_credential": "ftp.password",
            "known_hosts": "ftps.pem",
        }
    else:
        doc |= {
            "transport": "api",
            "api_base_url": sim.addresses.shop_url(kind),
            "api_credential": "api.secret",
            "seller_id": SELLER,
        }
    return msgspec.convert(doc | changes, ShopSettings)


def shown(sim: Simulator, kind: str, code: str) -> int:
    return sim.state.shops[kind].items[code].shown


async def converged(
    sim: Simulator, wanted: dict[tuple[str, str], int], client: ControlClient
) -> None:
    """Until every (shop, SKU) shows its wanted quantity; else what differs, and why."""

    def done(state: object) -> bool:
        return all(shown(sim, kind, code) == q for (kind, code), q in wanted.items())

    with trio.move_on_after(30):
        await sim.state.wait_for(done)
        return
    status = await client.request(control.GetStatus(id=0))
    differ = {key: shown(sim, *key) for key, q in wanted.items() if shown(sim, *key) != q}
    raise AssertionError(
        f"{differ} differ; {[(s.id, s.actors, s.reflection) for s in status.shops]}"
    )


async def setup(client: ControlClient, sim: Simulator, kinds: list[str], **changes: object) -> None:
    """Each shop lists its two SKUs (listing_mode explicit); reflection is switched on last,
    so that the reflector's pass at start sends them."""
    shops = [
        shop_settings(sim, kind, listing_mode="explicit", reflect="stopped", **changes)
        for kind in kinds
    ]
    await client.request(control.ShopsApply(id=0, shops=tuple(shops)))
    for kind in kinds:
        rows = []
        for letter, count in (("A", 10), ("B", 7)):
            code = f"{kind.upper()}-{letter}"
            await client.request(control.SkuAdd(id=0, code=code))
            await client.request(control.StockSet(id=0, code=code, field="expected", value=count))
            rows.append(control.ListingRow(code, f"{kind}-item-{letter.lower()}"))
        await client.request(control.ListingsImport(id=0, shop=kind, rows=tuple(rows)))
    for kind in kinds:
        reply = await client.request(
            control.ShopSet(id=0, shop=kind, changes={"reflect": "active"})
        )
        assert not isinstance(reply, control.Error), reply


async def test_every_stock_mall_converges_by_api_and_by_file(
    sim: Simulator, tmp_path: Path, client_key: asyncssh.SSHKey
) -> None:
    config = daemon_config(tmp_path, sim, client_key)
    async with running_daemon(config), connect(config, "test") as client:
        # every unit shown (min_shown 1): the last one is what the drop below leaves
        await setup(client, sim, STOCK_KINDS, distribution_rate=50, min_shown=1)
        # the pass at start: half of each (rate 50)
        await converged(
            sim,
            {(k, f"{k.upper()}-{x}"): n for k in STOCK_KINDS for x, n in (("A", 5), ("B", 3))},
            client,
        )
        # a drop is urgent: it goes out at once, not at the next interval
        for kind in STOCK_KINDS:
            await client.request(
                control.StockSet(id=0, code=f"{kind.upper()}-A", field="expected", value=2)
            )
        await converged(sim, {(k, f"{k.upper()}-A"): 1 for k in STOCK_KINDS}, client)
        # a rise waits for the interval (5 minutes), unless the operator asks for it now
        for kind in STOCK_KINDS:
            await client.request(
                control.StockSet(id=0, code=f"{kind.upper()}-B", field="expected", value=20)
            )
            sending = await client.request(control.ReflectNow(id=0, shop=kind))
            assert isinstance(sending, control.ReflectReply) and sending.pending == 1, sending
            assert sending.rows[0].target == 10 and sending.rows[0].shown == 3
        await converged(sim, {(k, f"{k.upper()}-B"): 10 for k in STOCK_KINDS}, client)
        # the last acknowledgements may follow the mall's answer by a moment
        await client.request(control.Subscribe(id=0, topics=("reflect",)))
        with trio.fail_after(10):
            while any(
                shop.reflection.pending
                for shop in (await client.request(control.GetStatus(id=0))).shops
            ):
                await client.next_event()
        status = await client.request(control.GetStatus(id=0))
        for shop in status.shops:
            assert shop.reflection.pending == 0, shop
            assert shop.reflection.last_error == "" and shop.reflection.last_push, shop
            assert shop.reflection.pushed >= 4, shop
        files = sum(len(sim.state.shops[k].files) for k in FILE_TRANSPORT)
        assert files >= 3 * len(FILE_TRANSPORT)
        assert sum(shop.throttled for shop in sim.state.shops.values()) == 0


async def test_a_mall_that_is_down_catches_up_when_back(
    sim: Simulator, tmp_path: Path, client_key: asyncssh.SSHKey
) -> None:
    assert sim.addresses is not None
    config = daemon_config(tmp_path, sim, client_key)
    async with (
        running_daemon(config),
        connect(config, "test") as client,
        httpx.AsyncClient() as http,
    ):
        await setup(
            client,
            sim,
            ["rakuten"],
            transport="api",
            api_base_url=sim.addresses.shop_url("rakuten"),
            api_credential="api.secret",
        )
        await converged(sim, {("rakuten", "RAKUTEN-A"): 10}, client)
        await http.post(
            f"{sim.addresses.http_url}/_admin/faults", json={"shop": "rakuten", "down": True}
        )
        await client.request(control.StockSet(id=0, code="RAKUTEN-A", field="expected", value=4))
        await client.request(control.Subscribe(id=0, topics=("reflect",)))
        with trio.fail_after(30):
            while True:
                event = await client.next_event()
                if isinstance(event, control.ReflectChanged) and event.reflection.last_error:
                    break
        assert "503" in event.reflection.last_error
        assert shown(sim, "rakuten", "RAKUTEN-A") == 10
        await http.post(
            f"{sim.addresses.http_url}/_admin/faults", json={"shop": "rakuten", "down": False}
        )
        await converged(sim, {("rakuten", "RAKUTEN-A"): 4}, client)


async def test_a_host_key_that_does_not_match_sends_nothing(
    sim: Simulator, tmp_path: Path, client_key: asyncssh.SSHKey
) -> None:
    config = daemon_config(tmp_path, sim, client_key)
    async with running_daemon(config), connect(config, "test") as client:
        await client.request(control.Subscribe(id=0, topics=("reflect",)))
        await setup(client, sim, ["rakuten"], known_hosts="other.known_hosts")
        with trio.fail_after(30):
            while True:
                event = await client.next_event()
                if isinstance(event, control.ReflectChanged) and event.reflection.last_error:
                    break
        error = event.reflection.last_error
        assert "host key is not the one in known_hosts" in error and "nothing was sent" in error
        assert not sim.state.shops["rakuten"].files and shown(sim, "rakuten", "RAKUTEN-A") == 10


async def test_amazon_bulk_sync_goes_by_feed_not_by_one_call_a_sku(
    sim: Simulator, tmp_path: Path, client_key: asyncssh.SSHKey
) -> None:
    """createFeedDocument, the upload to its pre-signed URL (query kept), createFeed, getFeed
    until DONE, the report: the mall shows every target again, by one feed."""
    config = daemon_config(tmp_path, sim, client_key)
    amazon = sim.state.shops["amazon"]
    async with running_daemon(config), connect(config, "test") as client:
        await setup(client, sim, ["amazon"])
        await converged(sim, {("amazon", "AMAZON-A"): 10, ("amazon", "AMAZON-B"): 7}, client)
        # someone edits the quantities in Seller Central; zaiko believes they show its targets
        amazon.items["AMAZON-A"].shown = 0
        amazon.items["AMAZON-B"].shown = 99
        calls_before, updates_before = amazon.requests, amazon.stock_updates
        await client.request(control.Subscribe(id=0, topics=("jobs",)))
        reply = await client.request(control.ReflectNow(id=0, shop="amazon", bulk=True))
        assert isinstance(reply, control.ReflectReply), reply
        await converged(sim, {("amazon", "AMAZON-A"): 10, ("amazon", "AMAZON-B"): 7}, client)
        with trio.fail_after(30):
            while True:
                event = await client.next_event()
                if (
                    isinstance(event, control.JobChanged)
                    and event.job.kind == "bulk_sync"
                    and event.job.result in ("ok", "failed")
                ):
                    break
        assert (event.job.result, event.job.success, event.job.failure) == ("ok", 2, 0)
        assert amazon.feeds_processed == 1 and amazon.stock_updates == updates_before + 2
        # createFeedDocument, createFeed, getFeed polls, getFeedDocument: no PATCH per SKU
        assert amazon.bad_requests == 0 and amazon.throttled == 0
        assert amazon.requests - calls_before <= 8
