"""The control websocket against the daemon running in this process, over real sockets."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import msgspec
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket

from cli.client import RequestFailed, connect
from daemon.config import Config, load_config
from protocols import control
from tests.conftest import ROOT, running_daemon, write_config


@pytest.mark.parametrize(
    "first_frame",
    [
        control.encoder.encode(control.Hello(token="wrong")).decode(),
        control.encoder.encode(control.Ping(id=1)).decode(),
        "not json",
    ],
)
async def test_anything_but_a_hello_with_the_token_gets_4401(
    config: Config, first_frame: str
) -> None:
    async with running_daemon(config) as address:
        async with open_websocket(address[0], address[1], "/", use_ssl=False) as ws:
            await ws.send_message(first_frame)
            error = control.server_decoder.decode(await ws.get_message())
            assert isinstance(error, control.Error) and error.code == "unauthorized"
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            assert closed.value.reason.code == 4401


async def test_silent_client_is_closed_with_4401(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, hello_timeout_s=0.2))
    async with running_daemon(config) as address:
        async with open_websocket(address[0], address[1], "/", use_ssl=False) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await ws.get_message()
            assert closed.value.reason.code == 4401


async def test_oversized_frame_is_refused(tmp_path: Path) -> None:
    from daemon.config import MIN_FRAME_BYTES

    config = load_config(write_config(tmp_path, max_frame_bytes=MIN_FRAME_BYTES))
    async with running_daemon(config) as address:
        token = config.token_file.read_text().strip()
        async with open_websocket(address[0], address[1], "/", use_ssl=False) as ws:
            await ws.send_message(control.encoder.encode(control.Hello(token=token)).decode())
            assert isinstance(
                control.server_decoder.decode(await ws.get_message()), control.Welcome
            )
            await ws.send_message('{"type":"ping","id":1,"pad":"' + "x" * MIN_FRAME_BYTES + '"}')
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            assert closed.value.reason.code == 1009  # MESSAGE_TOO_BIG
        async with connect(config) as client:  # the daemon still serves others
            assert isinstance(await client.request(control.Ping(id=0)), control.Pong)


async def test_requests_replies_errors_and_events(config: Config) -> None:
    async with running_daemon(config), connect(config, "test") as client:
        subscribed = await client.request(control.Subscribe(id=0, topics=("stock",)))
        assert subscribed.topics == ("stock",)
        await client.request(control.SkuAdd(id=0, code="000123"))
        reply = await client.request(
            control.StockSet(id=0, code="000123", field="expected", value=5)
        )
        assert reply.stock.expected == 5
        with pytest.raises(RequestFailed) as failed:
            await client.request(control.StockAdd(id=0, code="000123", field="expected", delta=-6))
        assert failed.value.error.code == "refused" and failed.value.error.field == "delta"
        with pytest.raises(RequestFailed) as failed:
            await client.request(control.SkuShow(id=0, code="nope"))
        assert failed.value.error.code == "not_found"
        # events for the two committed changes arrive on the same connection
        while len([e for e in client.events if isinstance(e, control.StockChanged)]) < 2:
            client.events.append(await client.receive())  # type: ignore[arg-type]
        levels = [e.stock.expected for e in client.events if isinstance(e, control.StockChanged)]
        assert levels[:2] == [0, 5]
        journal = (await client.request(control.SkuShow(id=0, code="000123"))).sku.journal
        assert journal[0].actor == "user:test"


async def test_bad_frame_after_hello_gets_an_error_and_the_session_goes_on(config: Config) -> None:
    async with running_daemon(config), connect(config) as client:
        await client._ws.send_message(
            '{"type":"stock_set","id":7,"code":"A","field":"colour","value":1}'
        )
        error = await client.receive()
        assert (
            isinstance(error, control.Error)
            and error.code == "bad_frame"
            and "field" in error.message
        )
        assert isinstance(await client.request(control.Ping(id=0)), control.Pong)


async def test_shops_apply_show_set_and_status(config: Config) -> None:
    from protocols.settings import decode_shops_toml

    shops = decode_shops_toml((ROOT / "conf" / "shops.example.toml").read_bytes())
    async with running_daemon(config), connect(config) as client:
        applied = await client.request(control.ShopsApply(id=0, shops=shops))
        assert len(applied.shops) == 13
        status = await client.request(control.GetStatus(id=0))
        assert {s.mall for s in status.shops} == {s.mall for s in shops}
        assert status.version
        changed = await client.request(
            control.ShopSet(id=0, shop="rakuten-main", changes={"distribution_rate": "50"})
        )
        assert changed.shop.distribution_rate == 50
        with pytest.raises(RequestFailed) as failed:
            await client.request(
                control.ShopSet(id=0, shop="rakuten-main", changes={"bulk_sync_hours": "24"})
            )
        assert failed.value.error.field == "bulk_sync_hours"


async def test_daemon_stops_cleanly_when_cancelled(config: Config) -> None:
    async with running_daemon(config), connect(config) as client:
        await client.request(control.SkuAdd(id=0, code="A"))
    assert not config.address_file.exists()


async def test_status_shows_a_failing_actors_restarts(config: Config) -> None:
    """The daemon's supervisor with a shop actor that always fails, seen through the protocol."""
    from daemon.actors.supervisor import ActorSpec
    from protocols.settings import ShopSettings

    failed_twice = trio.Event()
    attempts = 0

    async def broken_intake(
        shop: ShopSettings, ledger: object, *, task_status: trio.TaskStatus[None]
    ) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 3:
            failed_twice.set()
        raise ConnectionRefusedError(f"mall of {shop.id} refused the connection")

    fast = msgspec.structs.replace(
        config, supervisor=msgspec.structs.replace(config.supervisor, backoff_initial_s=0.01)
    )
    async with (
        running_daemon(
            fast,
            actors_for=lambda shop, wiring: [ActorSpec("intake", partial(broken_intake, shop))],
        ),
        connect(fast) as client,
    ):
        await client.request(
            control.ShopsApply(id=0, shops=(ShopSettings(id="r1", mall="rakuten"),))
        )
        await failed_twice.wait()
        status = await client.request(control.GetStatus(id=0))
        (actor,) = status.shops[0].actors
        assert actor.name == "intake"
        assert actor.state in ("restarting", "starting")
        assert actor.restarts >= 2
        assert "mall of r1 refused the connection" in actor.last_error


async def test_ids_and_offsets_beyond_64_bits_or_the_file_are_refused(
    config: Config, tmp_path: Path
) -> None:
    async with running_daemon(config), connect(config) as client:
        await client.send(control.Ping(id=1))
        raw = '{"type":"job_show","id":7,"job":99999999999999999999}'
        await client._ws.send_message(raw)
        replies = [await client.receive(), await client.receive()]
        error = next(r for r in replies if isinstance(r, control.Error))
        assert error.code == "bad_frame"
        await client.request(control.Subscribe(id=0, topics=("jobs",)))
        started = await client.request(control.ExportStart(id=0))
        job = started.job
        while job.state != "done":
            event = await client.next_event()
            if isinstance(event, control.JobChanged) and event.job.id == job.id:
                job = event.job
        with pytest.raises(RequestFailed) as failed:
            await client.request(control.Download(id=0, job=job.id, offset=2**62))
        assert failed.value.error.field == "offset"
