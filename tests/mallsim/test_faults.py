"""Rate limits, fault switches and credentials, over the real sockets."""

from __future__ import annotations

import ftplib
from pathlib import Path

import asyncssh
import httpx
import pytest
import trio

from mallsim.config import Config
from mallsim.sim import Simulator
from protocols.malls.base import ApiAccount, StockUpdate
from tests.mallsim.clients import ftps_login, ftps_upload, send, sftp_upload
from tests.mallsim.conftest import PASSWORD, ManualClock, item_ids
from tests.mallsim.test_malls import account, needs


def stock_request(sim: Simulator, kind: str, qty: int = 5, acct: ApiAccount | None = None):  # type: ignore[no-untyped-def]
    mall = needs(kind, "build_stock_requests", "parse_stock_request", "parse_stock_response")
    (req,) = mall.build_stock_requests(
        [StockUpdate(item_ids(kind)[0], (), qty)], acct or account(sim, kind)
    )
    return mall, req


async def set_faults(client: httpx.AsyncClient, sim: Simulator, **switches: object) -> None:
    assert sim.addresses is not None
    resp = await client.post(sim.addresses.http_url + "/_admin/faults", json=switches)
    assert resp.status_code == 200, resp.text


async def test_rate_limit_answers_429_in_the_mall_shape(
    sim: Simulator, rate_clock: ManualClock
) -> None:
    kind = "rakuten"  # 1 request per second
    mall, req = stock_request(sim, kind)
    base = account(sim, kind).base_url
    async with httpx.AsyncClient() as client:
        first = await send(client, base, req)
        second = await send(client, base, req)  # same instant on the limiter's clock
        assert first.status_code < 300
        assert second.status_code == 429
        assert second.headers["retry-after"] == "1"
        with pytest.raises(ValueError, match="too many requests"):
            mall.mod.parse_stock_response(second.status_code, second.content)
        rate_clock.advance(1.0)
        third = await send(client, base, req)
        assert third.status_code < 300
        state = (await client.get(sim.addresses.http_url + "/_admin/state")).json()  # type: ignore[union-attr]
    shop = state["shops"][kind]
    assert (shop["requests"], shop["throttled"]) == (3, 1)
    assert state["totals"]["throttled"] == 1


async def test_rate_limit_is_per_shop(sim: Simulator) -> None:
    _, req_r = stock_request(sim, "rakuten")
    _, req_y = stock_request(sim, "yahoo")
    async with httpx.AsyncClient() as client:
        assert (await send(client, account(sim, "rakuten").base_url, req_r)).status_code < 300
        assert (await send(client, account(sim, "yahoo").base_url, req_y)).status_code < 300


async def test_http_fault_switches(sim: Simulator, rate_clock: ManualClock) -> None:
    kind = "cartstar"
    mall, req = stock_request(sim, kind, qty=4)
    base = account(sim, kind).base_url
    async with httpx.AsyncClient() as client:
        await set_faults(client, sim, shop=kind, down=True)
        assert (await send(client, base, req)).status_code == 503

        await set_faults(client, sim, shop=kind, down=False, error_5xx=True)
        rate_clock.advance(10)
        resp = await send(client, base, req)
        assert resp.status_code == 500
        with pytest.raises(ValueError, match="simulated"):
            mall.mod.parse_stock_response(resp.status_code, resp.content)

        await set_faults(client, sim, shop=kind, error_5xx=False, reject_auth=True)
        rate_clock.advance(10)
        assert (await send(client, base, req)).status_code == 401

        await set_faults(client, sim, shop=kind, reject_auth=False, slow_s=0.2)
        rate_clock.advance(10)
        start = trio.current_time()
        resp = await send(client, base, req)
        assert resp.status_code < 300
        assert trio.current_time() - start >= 0.2
    assert sim.state.shops[kind].items[f"{kind.upper()}-A"].last_received == 4


async def test_faults_endpoint_refuses_bad_input(sim: Simulator) -> None:
    assert sim.addresses is not None
    url = sim.addresses.http_url + "/_admin/faults"
    async with httpx.AsyncClient() as client:
        assert (await client.post(url, json={"shop": "nope", "down": True})).status_code == 404
        bad = await client.post(url, json={"shop": "rakuten", "dwon": True})
        assert bad.status_code == 400
        assert "dwon" in bad.json()["error"]
        assert (await client.post(url, json={"shop": "rakuten", "slow_s": -1})).status_code == 400


async def test_sftp_faults_and_credentials(
    sim: Simulator, client_key: asyncssh.SSHKey, tmp_path: Path
) -> None:
    kind = "yahoo"
    mall = needs(kind, "write_stock_files")
    files = mall.write_stock_files([StockUpdate(item_ids(kind)[0], (), 3)])
    assert sim.addresses is not None
    addr = sim.addresses
    user = f"user-{kind}"

    # The daemon verifies the host key: a known_hosts without it refuses to connect.
    other = asyncssh.generate_private_key("ssh-ed25519")
    bogus = tmp_path / "bogus_known_hosts"
    bogus.write_text(f"[{addr.host}]:{addr.sftp_port} {other.export_public_key().decode()}")
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        await sftp_upload(
            type(addr)(**{**addr.__dict__, "known_hosts": str(bogus)}), user, client_key, "/", files
        )
    with pytest.raises(asyncssh.PermissionDenied):
        await sftp_upload(addr, user, other, "/", files)  # a key the shop does not know

    async with httpx.AsyncClient() as client:
        await set_faults(client, sim, shop=kind, reject_auth=True)
        with pytest.raises(asyncssh.PermissionDenied):
            await sftp_upload(addr, user, client_key, "/", files)
        await set_faults(client, sim, shop=kind, reject_auth=False, down=True)
        with pytest.raises((asyncssh.DisconnectError, ConnectionError)):
            await sftp_upload(addr, user, client_key, "/", files)
        await set_faults(client, sim, shop=kind, down=False, error_5xx=True)
        with pytest.raises(asyncssh.SFTPFailure):
            await sftp_upload(addr, user, client_key, "/", files)
        await set_faults(client, sim, shop=kind, error_5xx=False)
    await sftp_upload(addr, user, client_key, "/", files)
    with trio.fail_after(20):
        await sim.state.wait_for(
            lambda s: s.shops[kind].items[f"{kind.upper()}-A"].last_received == 3
        )


async def test_ftps_faults_and_credentials(sim: Simulator) -> None:
    kind = "futureshop"
    mall = needs(kind, "write_stock_files")
    files = mall.write_stock_files([StockUpdate(item_ids(kind)[0], (), 6)])
    folder = mall.cap.ftp_dir or "/"
    assert sim.addresses is not None
    addr = sim.addresses
    user = f"user-{kind}"
    with pytest.raises(ftplib.error_perm, match="530"):
        await ftps_login(addr, user, "wrong password")
    async with httpx.AsyncClient() as client:
        await set_faults(client, sim, shop=kind, reject_auth=True)
        with pytest.raises(ftplib.error_perm, match="530"):
            await ftps_login(addr, user, PASSWORD)
        await set_faults(client, sim, shop=kind, reject_auth=False, down=True)
        with pytest.raises(ftplib.error_temp, match="421"):
            await ftps_login(addr, user, PASSWORD)
        await set_faults(client, sim, shop=kind, down=False, error_5xx=True)
        with pytest.raises(ftplib.error_temp, match="451"):
            await ftps_upload(addr, user, PASSWORD, folder, files)
        await set_faults(client, sim, shop=kind, error_5xx=False)
    await ftps_upload(addr, user, PASSWORD, folder, files)
    with trio.fail_after(20):
        await sim.state.wait_for(
            lambda s: s.shops[kind].items[f"{kind.upper()}-A"].last_received == 6
        )


async def test_faults_from_config(sim_config: Config, rate_clock: ManualClock) -> None:
    import msgspec

    from mallsim.config import Faults
    from mallsim.sim import open_simulator

    shops = [
        msgspec.structs.replace(s, faults=Faults(down=True)) if s.id == "cartstar" else s
        for s in sim_config.shops
    ]
    cfg = msgspec.structs.replace(sim_config, shops=shops)
    async with open_simulator(cfg, rate_clock=rate_clock, services=("http",)) as sim:
        _, req = stock_request(sim, "cartstar")
        async with httpx.AsyncClient() as client:
            assert (await send(client, account(sim, "cartstar").base_url, req)).status_code == 503
            state = (await client.get(sim.addresses.http_url + "/_admin/state")).json()  # type: ignore[union-attr]
    assert state["shops"]["cartstar"]["faults"]["down"] is True


async def test_stops_cleanly_with_clients_connected(sim_config, rate_clock: ManualClock) -> None:  # type: ignore[no-untyped-def]
    import threading

    from mallsim.sim import open_simulator
    from tests.mallsim.clients import _ftps

    before = set(threading.enumerate())
    with trio.fail_after(20):
        async with open_simulator(sim_config, rate_clock=rate_clock) as sim:
            addr = sim.addresses
            assert addr is not None
            ssh = await trio.open_tcp_stream(addr.host, addr.sftp_port)
            await ssh.send_all(b"SSH-2.0-test\r\n")  # a handshake left half done
            ftp = await trio.to_thread.run_sync(_ftps, addr, "user-yahoo", PASSWORD)
            client = httpx.AsyncClient()
            assert (await client.get(addr.http_url + "/_admin/health")).status_code == 200
        # Stopped: the server threads are gone although the clients never hung up.
        await client.aclose()
        ftp.close()
        await ssh.aclose()
    # Only trio's idle worker-thread cache may remain.
    left = {t.name for t in set(threading.enumerate()) - before if t.is_alive()}
    assert {name for name in left if not name.startswith("Trio thread")} == set()
