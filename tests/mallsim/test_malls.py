"""Every mall kind, driven over a real socket: the quantity (or the order) lands in the truth."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncssh
import httpx
import msgspec
import pytest
import trio

from mallsim.config import Config
from mallsim.malls import Mall
from mallsim.sim import Simulator, open_simulator
from mallsim.state import SimState
from protocols.malls import KINDS, capability
from protocols.malls.base import ApiAccount, MallOrder, StockUpdate
from tests.mallsim.clients import ftps_upload, run_order_poll, send, sftp_upload
from tests.mallsim.conftest import PASSWORD, SECRET, SELLER, ManualClock, item_ids

FILE_KINDS = [k for k in KINDS if "ftp" in capability(k).stock_out]
API_STOCK_KINDS = [k for k in KINDS if "api" in capability(k).stock_out]
ORDER_API_KINDS = [k for k in KINDS if "api" in capability(k).intake]
GUARD_S = 20  # a deadlock guard only; every wait below is on the event itself


def needs(kind: str, *functions: str) -> Mall:
    mall = Mall(kind)
    missing = [f for f in functions if not mall.has(f)]
    if missing:
        pytest.skip(f"protocols.malls.{kind} has no {', '.join(missing)} yet")
    return mall


def account(sim: Simulator, kind: str, secret: str = SECRET) -> ApiAccount:
    assert sim.addresses is not None
    return ApiAccount(base_url=sim.addresses.shop_url(kind), secret=secret, seller_id=SELLER)


def received(state: SimState, kind: str) -> tuple[int | None, int | None]:
    items = state.shops[kind].items
    return items[f"{kind.upper()}-A"].last_received, items[f"{kind.upper()}-B"].last_received


def updates_for(kind: str) -> list[StockUpdate]:
    a, b = item_ids(kind)
    return [StockUpdate(a, (), 7), StockUpdate(b, (), 0)]


async def wait_received(sim: Simulator, kind: str, want: tuple[int, int]) -> None:
    with trio.fail_after(GUARD_S):
        await sim.state.wait_for(lambda s: received(s, kind) == want)


@pytest.mark.parametrize("kind", FILE_KINDS)
async def test_sftp_upload_is_applied(
    sim: Simulator, client_key: asyncssh.SSHKey, kind: str
) -> None:
    mall = needs(kind, "write_stock_files", "read_stock_file")
    files = mall.write_stock_files(updates_for(kind))
    assert sim.addresses is not None
    await sftp_upload(sim.addresses, f"user-{kind}", client_key, mall.cap.ftp_dir or "/", files)
    await wait_received(sim, kind, (7, 0))
    shop = sim.state.shops[kind]
    assert shop.items[f"{kind.upper()}-A"].shown == 7
    assert shop.items[f"{kind.upper()}-B"].shown == 0
    with trio.fail_after(GUARD_S):
        await sim.state.wait_for(lambda s: len(s.shops[kind].files) == len(files))
    assert all(f.errors == [] and f.transport == "sftp" for f in shop.files)


@pytest.mark.parametrize("kind", FILE_KINDS)
async def test_ftps_upload_is_applied(sim: Simulator, kind: str) -> None:
    mall = needs(kind, "write_stock_files", "read_stock_file")
    files = mall.write_stock_files(updates_for(kind))
    assert sim.addresses is not None
    await ftps_upload(sim.addresses, f"user-{kind}", PASSWORD, mall.cap.ftp_dir or "/", files)
    await wait_received(sim, kind, (7, 0))
    assert sim.state.shops[kind].items[f"{kind.upper()}-A"].shown == 7


async def test_sftp_upload_renamed_into_place_is_applied(
    sim: Simulator, client_key: asyncssh.SSHKey
) -> None:
    kind = FILE_KINDS[0]
    mall = needs(kind, "write_stock_files", "read_stock_file")
    files = mall.write_stock_files(updates_for(kind))
    assert sim.addresses is not None
    await sftp_upload(
        sim.addresses, f"user-{kind}", client_key, mall.cap.ftp_dir or "/", files, via_rename=True
    )
    await wait_received(sim, kind, (7, 0))
    # The temporary names were uploads too, but not stock files: counted, not applied.
    assert sim.state.shops[kind].files_ignored == len(files)


async def test_file_outside_the_mall_folder_is_not_applied(
    sim: Simulator, client_key: asyncssh.SSHKey
) -> None:
    kind = "rakuten"
    mall = needs(kind, "write_stock_files", "read_stock_file")
    files = mall.write_stock_files(updates_for(kind))
    assert sim.addresses is not None
    await sftp_upload(sim.addresses, f"user-{kind}", client_key, "/", files)
    with trio.fail_after(GUARD_S):
        await sim.state.wait_for(lambda s: s.shops[kind].files_ignored == len(files))
    assert received(sim.state, kind) == (None, None)


@pytest.mark.parametrize("kind", API_STOCK_KINDS)
async def test_stock_api_call_is_applied(
    sim: Simulator, rate_clock: ManualClock, kind: str
) -> None:
    mall = needs(kind, "build_stock_requests", "parse_stock_request", "parse_stock_response")
    requests = mall.build_stock_requests(updates_for(kind), account(sim, kind))
    async with httpx.AsyncClient() as client:
        for req in requests:
            rate_clock.advance(10)  # keep within the mall's rate limit
            resp = await send(client, account(sim, kind).base_url, req)
            mall.mod.parse_stock_response(resp.status_code, resp.content)
    assert received(sim.state, kind) == (7, 0)
    assert sim.state.shops[kind].requests == len(requests)
    assert sim.state.shops[kind].throttled == 0


@pytest.mark.parametrize("kind", API_STOCK_KINDS)
async def test_stock_api_refuses_a_wrong_secret(
    sim: Simulator, rate_clock: ManualClock, kind: str
) -> None:
    mall = needs(kind, "build_stock_requests", "parse_stock_request", "parse_stock_response")
    wrong = account(sim, kind, secret="wrongSecret:wrongKey")
    req = mall.build_stock_requests(updates_for(kind), wrong)[0]
    async with httpx.AsyncClient() as client:
        resp = await send(client, wrong.base_url, req)
    assert resp.status_code == 401
    with pytest.raises(ValueError, match="authentication failed"):
        mall.mod.parse_stock_response(resp.status_code, resp.content)
    assert received(sim.state, kind) == (None, None)
    assert sim.state.shops[kind].auth_rejected == 1


async def fetch_orders(
    client: httpx.AsyncClient,
    mall: Mall,
    acct: ApiAccount,
    since: datetime,
    until: datetime,
    clock: ManualClock,
) -> list[MallOrder]:
    """Every order of the window, by the module's own poll over the socket."""
    poll = mall.start_order_poll(acct, since, until)
    await run_order_poll(client, acct.base_url, poll, lambda s: clock.advance(s or 1.0))
    return poll.orders


@pytest.mark.parametrize("kind", ORDER_API_KINDS)
async def test_order_api_serves_orders_and_cancellations(
    sim: Simulator, rate_clock: ManualClock, kind: str
) -> None:
    mall = needs(kind, "start_order_poll", "read_order_call", "render_order_answer")
    acct = account(sim, kind)
    since = sim.state.epoch - timedelta(days=1)
    until = sim.state.epoch + timedelta(days=1)
    assert sim.addresses is not None
    admin = sim.addresses.http_url + "/_admin"
    sku = f"{kind.upper()}-A"
    async with httpx.AsyncClient() as client:
        assert await fetch_orders(client, mall, acct, since, until, rate_clock) == []
        placed = await client.post(
            admin + "/orders", json={"shop": kind, "lines": [{"sku": sku, "quantity": 2}]}
        )
        assert placed.status_code == 200, placed.text
        order_no = placed.json()["order_no"]
        orders = await fetch_orders(client, mall, acct, since, until, rate_clock)
        assert [o.order_no for o in orders] == [order_no]
        (line,) = orders[0].lines
        assert (line.item_id, line.quantity) == (item_ids(kind)[0], 2)
        assert orders[0].status == "new"
        assert sim.state.shops[kind].items[sku].shown == 8
        assert sim.state.merchants["m1"].real[sku] == 8

        # Only the window's orders (some malls search by whole days: the poll cuts them).
        assert (
            await fetch_orders(client, mall, acct, until, until + timedelta(days=1), rate_clock)
            == []
        )

        cancelled = await client.post(admin + "/cancel", json={"shop": kind, "order_no": order_no})
        assert cancelled.status_code == 200, cancelled.text
        orders = await fetch_orders(client, mall, acct, since, until, rate_clock)
        assert [(o.order_no, o.status) for o in orders] == [(order_no, "cancelled")]
        assert sim.state.shops[kind].items[sku].shown == 10
        assert sim.state.merchants["m1"].real[sku] == 10


async def test_every_kind_is_driven_by_a_socket_test() -> None:
    covered = set(FILE_KINDS) | set(API_STOCK_KINDS) | set(ORDER_API_KINDS)
    assert covered == set(KINDS)


@pytest.mark.parametrize("kind", ["amazon", "colorme"])
async def test_ids_quoted_into_the_path_arrive_intact(
    sim_config: Config, rate_clock: ManualClock, kind: str
) -> None:
    """Modules percent-encode ids into the path (a seller SKU may hold '/', spaces, kana)."""
    mall = needs(kind, "build_stock_requests", "parse_stock_request", "parse_stock_response")
    odd = "TS/01 赤%"
    shops = [
        msgspec.structs.replace(
            s, items=[msgspec.structs.replace(s.items[0], item_id=odd), s.items[1]]
        )
        if s.id == kind
        else s
        for s in sim_config.shops
    ]
    cfg = msgspec.structs.replace(sim_config, shops=shops)
    async with open_simulator(cfg, rate_clock=rate_clock, services=("http",)) as sim:
        (req,) = mall.build_stock_requests([StockUpdate(odd, (), 9)], account(sim, kind))
        async with httpx.AsyncClient() as client:
            resp = await send(client, account(sim, kind).base_url, req)
        mall.mod.parse_stock_response(resp.status_code, resp.content)
        assert sim.state.shops[kind].items[f"{kind.upper()}-A"].last_received == 9


async def test_bad_rows_are_reported_and_good_rows_applied(
    sim: Simulator, client_key: asyncssh.SSHKey
) -> None:
    kind = "yahoo"
    mall = needs(kind, "write_stock_files", "read_stock_file")
    ((name, data),) = mall.write_stock_files(updates_for(kind)).items()
    assert data.count(b'"7"') == 1
    assert sim.addresses is not None
    await sftp_upload(
        sim.addresses, f"user-{kind}", client_key, "/", {name: data.replace(b'"7"', b'"x"')}
    )
    with trio.fail_after(GUARD_S):
        await sim.state.wait_for(lambda s: len(s.shops[kind].files) == 1)
    (result,) = sim.state.shops[kind].files
    assert (result.rows, result.applied, result.unknown) == (2, 1, 0)
    assert len(result.errors) == 1 and "line 2" in result.errors[0]
    assert received(sim.state, kind) == (None, 0)
