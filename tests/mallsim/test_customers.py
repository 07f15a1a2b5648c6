"""Customers on trio's MockClock: deterministic orders, mails that parse, the truth adds up."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from mallsim.config import Config, parse_config
from mallsim.malls import Mall
from mallsim.sim import Simulator, open_simulator
from mallsim.state import SimState
from protocols.malls.base import MallOrder
from tests.mallsim.clients import maildir_messages

FIRST = 8  # orders per shop compared between runs

CONFIG = """
[sim]
state_dir = "{tmp}/state"
maildir_root = "{tmp}/maildir"
start_time = "2025-06-01T09:00:00+09:00"

[[merchants]]
id = "m"
stock = {{ "SHARED" = 5, "R-1" = 100, "R-2" = 100, "A-1" = 100, "Q-1" = 100, "Y-1" = 100, "W-1" = 100 }}

# SHARED: three shops each show 5 of the merchant's real 5 → 10 units get oversold.
[[shops]]
id = "y"
mall = "yahoo"
merchant = "m"
customers_per_hour = 60
seed = 11
items = [{{ sku = "SHARED", item_id = "shared" }}, {{ sku = "Y-1", item_id = "y-1" }}]

[[shops]]
id = "w"
mall = "wowma"
merchant = "m"
customers_per_hour = 45
seed = 12
items = [{{ sku = "SHARED", item_id = "shared" }}, {{ sku = "W-1", item_id = "w-1" }}]

# Qoo10: a share of carts waits for payment (unpaid) and is paid later.
[[shops]]
id = "q"
mall = "qoo10"
merchant = "m"
customers_per_hour = 30
pending_fraction = 0.3
pending_after_s = 300
seed = 13
items = [{{ sku = "SHARED", item_id = "shared" }}, {{ sku = "Q-1", item_id = "q-1" }}]

# Cancellations: by mail (rakuten) and through the order API (amazon).
[[shops]]
id = "r"
mall = "rakuten"
merchant = "m"
intake = "mail"
customers_per_hour = 120
max_lines = 2
max_quantity = 3
cancel_fraction = 0.4
cancel_after_s = 300
seed = 14
items = [{{ sku = "R-1", item_id = "r-1" }}, {{ sku = "R-2", item_id = "r-2" }}]

# Amazon: also Pending orders paid later, and orders of another marketplace (no stock moved).
[[shops]]
id = "a"
mall = "amazon"
merchant = "m"
customers_per_hour = 120
cancel_fraction = 0.4
pending_fraction = 0.3
pending_after_s = 300
foreign_fraction = 0.2
seed = 15
seller_id = "S"
items = [{{ sku = "A-1", item_id = "a-1" }}]
"""


def config(tmp: Path) -> Config:
    return parse_config(CONFIG.format(tmp=tmp), base_dir=tmp)


def settled(s: SimState) -> bool:
    """Enough happened, and every order so far reached its mall (mail written / published)."""
    shops = s.shops
    mails_done = all(
        sh.mails_written + sh.mail_errors == sh.orders_placed + sh.orders_cancelled
        for sh in shops.values()
        if sh.intake == "mail"
    )
    return (
        mails_done
        and all(shops[i].items["SHARED"].shown == 0 for i in ("y", "w", "q"))
        and all(sh.orders_placed >= FIRST for sh in shops.values())
        and shops["r"].orders_cancelled >= 3
        and shops["a"].orders_cancelled >= 3
        and shops["a"].payments >= 2
        and shops["a"].foreign_orders >= 2
        and shops["q"].payments >= 2
    )


async def run_until_settled(tmp: Path) -> tuple[Simulator, dict[str, list[MallOrder]]]:
    async with open_simulator(config(tmp), services=("customers",)) as sim:
        with trio.fail_after(7 * 24 * 3600):  # simulated time: a week would be a bug
            await sim.state.wait_for(settled)
        assert all(sh.mail_errors == 0 for sh in sim.state.shops.values())
        # Read the published orders now: the simulation goes on until the block ends.
        orders = {
            sid: [published.order for published in shop.orders.values()]
            for sid, shop in sim.state.shops.items()
        }
        mails = {sid: maildir_messages(Path(tmp) / "maildir", sid) for sid in ("y", "w", "r")}
        check_truth(sim.state)
    for sid, raws in mails.items():
        check_mails(sim.state, sid, raws)
    return sim, orders


def check_truth(state: SimState) -> None:
    cfg = {s.id: s for s in state.cfg.shops}
    for shop in state.shops.values():
        for item in shop.items.values():
            start = next(i.shown for i in cfg[shop.id].items if i.sku == item.sku)
            initial = start if start is not None else state.cfg.merchants[0].stock[item.sku]
            assert item.shown >= 0
            assert item.shown == initial - item.sold + item.cancelled
    # Another marketplace's orders are published but sold nothing here.
    amazon = state.shops["a"]
    foreign = [p for p in amazon.orders.values() if p.foreign]
    assert len(foreign) == amazon.foreign_orders
    sold_here = sum(
        line.quantity for p in amazon.orders.values() if not p.foreign for line in p.order.lines
    )
    assert sold_here == sum(item.sold for item in amazon.items.values())
    m = state.merchants["m"]
    shared_sold = sum(state.shops[i].items["SHARED"].sold for i in ("y", "w", "q"))
    assert shared_sold == 15  # every shop sold what it showed, no more
    assert m.real["SHARED"] == 5 - 15
    assert m.oversold["SHARED"] == 10
    for sku in ("R-1", "R-2", "A-1", "Q-1", "Y-1", "W-1"):
        sold = sum(sh.items[sku].sold for sh in state.shops.values() if sku in sh.items)
        back = sum(sh.items[sku].cancelled for sh in state.shops.values() if sku in sh.items)
        assert m.real[sku] == 100 - sold + back
        assert m.oversold.get(sku, 0) == 0


def check_mails(state: SimState, shop_id: str, raws: list[bytes]) -> None:
    shop = state.shops[shop_id]
    mall = Mall(shop.kind)
    assert len(raws) >= shop.orders_placed  # more may have come since the snapshot
    published = {p.order.order_no: p.order for p in shop.orders.values()}
    statuses: dict[str, list[str]] = {}
    for raw in raws:
        parsed = mall.parse_order_mail(raw)
        statuses.setdefault(parsed.order_no, []).append(parsed.status)
        sent = published[parsed.order_no]
        assert [(ln.item_id, ln.variation, ln.quantity) for ln in parsed.lines] == [
            (ln.item_id, ln.variation, ln.quantity) for ln in sent.lines
        ]
        assert parsed.ordered_at == sent.ordered_at
    if shop.cfg.cancel_fraction:
        assert sum("cancelled" in s for s in statuses.values()) >= 3
        assert all(s[0] == "new" for s in statuses.values())


async def test_customers_are_deterministic_and_the_truth_adds_up(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    _, first = await run_until_settled(tmp_path / "one")
    _, second = await run_until_settled(tmp_path / "two")
    for sid in first:
        assert first[sid][:FIRST] == second[sid][:FIRST], sid
    # Orders carry the simulated wall clock from start_time on.
    assert first["r"][0].ordered_at.startswith("2025-06-01T")
    amazon = [o.status for o in first["a"]]
    assert "cancelled" in amazon


async def test_no_customers_without_a_rate(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    cfg = config(tmp_path)
    import msgspec

    cfg = msgspec.structs.replace(
        cfg, shops=[msgspec.structs.replace(s, customers_per_hour=0.0) for s in cfg.shops]
    )
    async with open_simulator(cfg, services=("customers",)) as sim:
        await trio.sleep(24 * 3600)  # a simulated day passes on the mock clock
        assert sim.state.snapshot()["totals"]["orders"] == 0
