"""Each API shop's order poll, driven to its end over a real socket against mallsim: pages of
two orders, Amazon's items one page per item, 429s waited out on the rate limiter's clock; the
poll gets exactly the orders mallsim's truth holds for the window."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncssh
import httpx
import pytest

from mallsim.config import parse_config
from mallsim.malls import Mall
from mallsim.sim import Simulator, open_simulator
from protocols.malls import KINDS, capability
from protocols.malls.base import ApiAccount, MallApiError
from tests.malls.order_api import essence
from tests.mallsim.clients import run_order_poll
from tests.mallsim.conftest import SECRET, SELLER, ManualClock, sim_toml

API_KINDS = [kind for kind in KINDS if "api" in capability(kind).intake]


@pytest.fixture
async def paged_sim(
    tmp_path: Path, client_key: asyncssh.SSHKey, rate_clock: ManualClock
) -> AsyncIterator[Simulator]:
    pub = client_key.export_public_key().decode().strip()
    extra = "order_page_size = 2\norder_items_page_size = 1"
    cfg = parse_config(sim_toml(tmp_path, pub, extra=extra), base_dir=tmp_path)
    async with open_simulator(cfg, rate_clock=rate_clock, services=("http",)) as sim:
        yield sim


def account(sim: Simulator, kind: str) -> ApiAccount:
    assert sim.addresses is not None
    return ApiAccount(base_url=sim.addresses.shop_url(kind), secret=SECRET, seller_id=SELLER)


async def admin(client: httpx.AsyncClient, sim: Simulator, what: str, **doc: object) -> str:
    assert sim.addresses is not None
    resp = await client.post(f"{sim.addresses.http_url}/_admin/{what}", json=doc)
    assert resp.status_code == 200, resp.text
    order_no: str = resp.json()["order_no"]
    return order_no


async def place_orders(client: httpx.AsyncClient, sim: Simulator, kind: str) -> list[str]:
    """Six orders: first one of two lines (one line at ヤフオク!), the third waiting where the
    mall has such orders, the fifth of another marketplace at Amazon; the fourth cancelled."""
    a, b = f"{kind.upper()}-A", f"{kind.upper()}-B"
    first = [{"sku": a, "quantity": 1}]
    if kind != "yahoo_auction":
        first.append({"sku": b, "quantity": 2})
    numbers = [await admin(client, sim, "orders", shop=kind, lines=first)]
    waiting = Mall(kind).waiting_state
    for n in range(5):
        extra: dict[str, object] = {}
        if n == 1 and waiting is not None:
            extra["status"] = waiting
        if n == 3 and kind == "amazon":
            extra["foreign"] = True
        line = [{"sku": a, "quantity": 1}]
        numbers.append(await admin(client, sim, "orders", shop=kind, lines=line, **extra))
    await admin(client, sim, "cancel", shop=kind, order_no=numbers[3])
    return numbers


async def poll_window(
    client: httpx.AsyncClient, sim: Simulator, kind: str, clock: ManualClock
) -> tuple[object, int]:
    mall = Mall(kind)
    since = sim.state.epoch - timedelta(hours=1)
    until = sim.state.epoch + timedelta(days=1)
    poll = mall.start_order_poll(account(sim, kind), since, until)
    sent = await run_order_poll(
        client, account(sim, kind).base_url, poll, lambda s: clock.advance(s or 1.0)
    )
    return poll, sent


def truth(sim: Simulator, kind: str) -> tuple[list[tuple[object, ...]], int]:
    since = sim.state.epoch - timedelta(hours=1)
    until = sim.state.epoch + timedelta(days=1)
    by = Mall(kind).mod.ORDER_SEARCH_DATE
    held = sim.state.window_orders(kind, since, until, by)
    mine = [p.order for p in held if not p.foreign]
    return sorted(essence(mine)), sum(p.foreign for p in held)


@pytest.mark.parametrize("kind", API_KINDS)
async def test_poll_gets_exactly_the_truth_of_the_window(
    paged_sim: Simulator, rate_clock: ManualClock, kind: str
) -> None:
    sim = paged_sim
    async with httpx.AsyncClient() as client:
        numbers = await place_orders(client, sim, kind)
        poll, sent = await poll_window(client, sim, kind, rate_clock)
    expected, foreign = truth(sim, kind)
    assert sorted(essence(poll.orders)) == expected  # type: ignore[attr-defined]
    assert poll.ignored == foreign == (1 if kind == "amazon" else 0)  # type: ignore[attr-defined]
    states = {o.order_no: o.status for o in poll.orders}  # type: ignore[attr-defined]
    assert states[numbers[3]] == "cancelled"
    waiting = Mall(kind).waiting_state
    if waiting is not None:
        assert states[numbers[2]] == waiting
    if kind == "amazon":
        assert numbers[4] not in states  # another marketplace's
        assert sent >= 3 + 5  # three getOrders pages, then items one page per item
    else:
        assert sent >= 3  # pages of two
    first = next(o for o in poll.orders if o.order_no == numbers[0])  # type: ignore[attr-defined]
    assert [(ln.line_no, ln.quantity) for ln in first.lines] == (
        [(1, 1)] if kind == "yahoo_auction" else [(1, 1), (2, 2)]
    )
    shop = sim.state.shops[kind]
    if 0 < capability(kind).api_requests_per_s < 2:
        assert shop.throttled > 0  # 1 request a second: the poll waited out 429s


async def test_amazon_other_marketplace_and_a_pending_order_paid_later(
    paged_sim: Simulator, rate_clock: ManualClock
) -> None:
    sim, kind = paged_sim, "amazon"
    async with httpx.AsyncClient() as client:
        numbers = await place_orders(client, sim, kind)
        foreign, pending = numbers[4], numbers[2]
        poll, _ = await poll_window(client, sim, kind, rate_clock)
        assert foreign not in {o.order_no for o in poll.orders}  # type: ignore[attr-defined]
        assert sim.state.shops[kind].items["AMAZON-A"].sold == 5  # the foreign one took none
        await admin(client, sim, "pay", shop=kind, order_no=pending)
        again, _ = await poll_window(client, sim, kind, rate_clock)
    before = {o.order_no: o for o in poll.orders}  # type: ignore[attr-defined]
    after = {o.order_no: o for o in again.orders}  # type: ignore[attr-defined]
    assert (before[pending].status, after[pending].status) == ("pending", "new")
    # the same order read twice: the same line numbers for the same items
    assert all(after[n].lines == before[n].lines for n in before)
    assert sim.state.shops[kind].payments == 1


async def test_faults_fail_the_poll_and_a_new_poll_succeeds(
    paged_sim: Simulator, rate_clock: ManualClock
) -> None:
    sim, kind = paged_sim, "rakuten"
    assert sim.addresses is not None
    faults = sim.addresses.http_url + "/_admin/faults"
    async with httpx.AsyncClient() as client:
        await place_orders(client, sim, kind)
        (await client.post(faults, json={"shop": kind, "error_5xx": True})).raise_for_status()
        with pytest.raises(MallApiError, match=r"^HTTP 500: GE0001 internal server error"):
            await poll_window(client, sim, kind, rate_clock)
        (
            await client.post(faults, json={"shop": kind, "error_5xx": False, "down": True})
        ).raise_for_status()
        with pytest.raises(MallApiError, match=r"^HTTP 503: 503 Service Unavailable$"):
            await poll_window(client, sim, kind, rate_clock)
        (await client.post(faults, json={"shop": kind, "down": False})).raise_for_status()
        poll, _ = await poll_window(client, sim, kind, rate_clock)
    assert sorted(essence(poll.orders)) == truth(sim, kind)[0]  # type: ignore[attr-defined]


async def test_admin_refuses_states_the_mall_has_not(paged_sim: Simulator) -> None:
    sim = paged_sim
    assert sim.addresses is not None
    url = sim.addresses.http_url + "/_admin/orders"
    line = [{"sku": "RAKUTEN-A", "quantity": 1}]
    async with httpx.AsyncClient() as client:
        unpaid = await client.post(url, json={"shop": "rakuten", "lines": line, "status": "unpaid"})
        foreign = await client.post(url, json={"shop": "rakuten", "lines": line, "foreign": True})
        paid = await admin(client, sim, "orders", shop="rakuten", lines=line)
        pay = await client.post(
            sim.addresses.http_url + "/_admin/pay", json={"shop": "rakuten", "order_no": paid}
        )
    assert (unpaid.status_code, foreign.status_code, pay.status_code) == (400, 400, 409)
    assert unpaid.json()["error"] == "rakuten has no unpaid orders to simulate"
    assert foreign.json()["error"] == "rakuten shows no orders of other marketplaces"
