"""The drift audit against mallsim and the daemon over real sockets: drift the simulator
creates (someone edits a quantity in the mall's admin; the mall's batch drops a stock file)
is found by reading the mall's stock API back, explained, fixed with --fix, and the next
audit is clean."""

from __future__ import annotations

from pathlib import Path

import asyncssh
import httpx
import msgspec
import trio

from cli.client import ControlClient, connect
from mallsim.sim import Simulator
from protocols import control
from protocols.settings import ShopSettings
from tests.conftest import running_daemon
from tests.mallsim.test_reflect_against_sim import converged, daemon_config, shop_settings
from tests.mallsim.test_reflect_against_sim import sim as sim  # the fixture


async def audited(client: ControlClient, shop: str, *, fix: bool = False) -> control.Job:
    await client.request(control.Subscribe(id=0, topics=("jobs",)))
    started = await client.request(control.AuditStart(id=0, shop=shop, fix=fix))
    assert isinstance(started, control.JobReply), started
    with trio.fail_after(30):
        while True:
            event = await client.next_event()
            if isinstance(event, control.JobChanged) and event.job.id == started.job.id:
                if event.job.state == "done":
                    break
    shown = await client.request(control.JobShow(id=0, job=started.job.id))
    return shown.job


async def acknowledged(client: ControlClient, shop: str) -> None:
    """Until the shop's reflector has nothing pending (its pushes acknowledged)."""
    await client.request(control.Subscribe(id=0, topics=("reflect", "outbox")))
    with trio.fail_after(30):
        while True:
            status = await client.request(control.GetStatus(id=0))
            if not next(s for s in status.shops if s.id == shop).reflection.pending:
                return
            await client.next_event()


async def test_drift_is_found_explained_and_fixed(
    sim: Simulator, tmp_path: Path, client_key: asyncssh.SSHKey
) -> None:
    assert sim.addresses is not None
    config = daemon_config(tmp_path, sim, client_key)
    seller = sim.state.shops["amazon"].cfg.seller_id
    shops: list[ShopSettings] = [
        # stock by SFTP files; its Inventory API is read back for the audit
        shop_settings(
            sim,
            "rakuten",
            listing_mode="explicit",
            api_base_url=sim.addresses.shop_url("rakuten"),
            api_credential="api.secret",
        ),
        shop_settings(sim, "amazon", listing_mode="explicit", seller_id=seller),
    ]
    async with (
        running_daemon(config),
        connect(config, "test") as client,
        httpx.AsyncClient(base_url=sim.addresses.http_url) as http,
    ):
        stopped = tuple(msgspec.structs.replace(s, reflect="stopped") for s in shops)
        assert not isinstance(
            await client.request(control.ShopsApply(id=0, shops=stopped)), control.Error
        )
        for kind in ("rakuten", "amazon"):
            rows = []
            for letter, count in (("A", 10), ("B", 7)):
                code = f"{kind.upper()}-{letter}"
                await client.request(control.SkuAdd(id=0, code=code))
                await client.request(
                    control.StockSet(id=0, code=code, field="expected", value=count)
                )
                rows.append(control.ListingRow(code, f"{kind}-item-{letter.lower()}"))
            await client.request(control.ListingsImport(id=0, shop=kind, rows=tuple(rows)))
            await client.request(control.ShopSet(id=0, shop=kind, changes={"reflect": "active"}))
        wanted = {("rakuten", "RAKUTEN-A"): 10, ("rakuten", "RAKUTEN-B"): 7}
        wanted |= {("amazon", "AMAZON-A"): 10, ("amazon", "AMAZON-B"): 7}
        await converged(sim, wanted, client)
        for kind in ("rakuten", "amazon"):
            await acknowledged(client, kind)
        clean = await audited(client, "amazon")
        assert str(clean.messages[0]).startswith("2 linked SKU(s) checked: 0 drift")

        # someone sets 99 in Seller Central; Rakuten's batch drops zaiko's next file
        edit = {"shop": "amazon", "sku": "AMAZON-A", "shown": 99}
        assert (await http.post("/_admin/edit", json=edit)).status_code == 200
        await http.post("/_admin/faults", json={"shop": "rakuten", "drop_files": True})
        await client.request(control.StockSet(id=0, code="RAKUTEN-B", field="expected", value=4))
        await sim.state.wait_for(
            lambda _: any(
                "drop_files" in " ".join(f.errors) for f in sim.state.shops["rakuten"].files
            )
        )
        await acknowledged(client, "rakuten")

        amazon = await audited(client, "amazon")
        text = "\n".join(str(m) for m in amazon.messages)
        assert "1 drift" in text and "AMAZON-A amazon-item-a: the mall shows 99" in text
        assert "changed at the mall since zaiko sent 10" in text
        rakuten = await audited(client, "rakuten")
        text = "\n".join(str(m) for m in rakuten.messages)
        assert "RAKUTEN-B rakuten-item-b: the mall shows 7, zaiko's target is 4" in text
        assert "was not applied by the mall's batch" in text
        status = await client.request(control.GetStatus(id=0))
        assert {s.id: s.audit.drift for s in status.shops} == {"rakuten": 1, "amazon": 1}

        # --fix: the corrections go out (the mall's batch works again), the next audit is clean
        await http.post("/_admin/faults", json={"shop": "rakuten", "drop_files": False})
        for kind in ("rakuten", "amazon"):
            fixed = await audited(client, kind, fix=True)
            assert "1 correction(s) queued" in str(fixed.messages[0])
        await converged(sim, {("amazon", "AMAZON-A"): 10, ("rakuten", "RAKUTEN-B"): 4}, client)
        for kind in ("rakuten", "amazon"):
            await acknowledged(client, kind)
            again = await audited(client, kind)
            assert str(again.messages[0]).startswith("2 linked SKU(s) checked: 0 drift"), again
        status = await client.request(control.GetStatus(id=0))
        assert {s.id: s.audit.drift for s in status.shops} == {"rakuten": 0, "amazon": 0}
        assert sum(shop.throttled for shop in sim.state.shops.values()) == 0
