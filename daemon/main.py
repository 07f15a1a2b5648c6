"""Wiring of the daemon: ledger, shop supervisor, control server, signals, systemd."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

import trio

from daemon.actors.control import ControlSettings, ServerInfo, Workspace, control_server
from daemon.actors.ledger import ledger
from daemon.actors.supervisor import ActorSpec, Backoff, StatusBoard, supervise_shops
from daemon.clock import utc_now
from daemon.commands import LedgerRequest
from daemon.config import Config, prepare_state
from daemon.events import EventBus
from daemon.imports import clear_leftovers
from daemon.notify import sd_notify
from daemon.shop_actors import actors_for as default_actors_for
from daemon.statelock import lock_state_dir
from protocols.settings import ShopSettings

log = logging.getLogger("zaiko")

LEDGER_QUEUE = 1024
SWITCH_INTERVAL_S = 0.0005


def zaiko_version() -> str:
    try:
        return version("zaiko")
    except PackageNotFoundError:
        return "0+unknown"


async def run_daemon(
    config: Config,
    *,
    now: Callable[[], str] = utc_now,
    actors_for: Callable[[ShopSettings], Sequence[ActorSpec]] = default_actors_for,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until SIGTERM/SIGINT or cancellation, then drain the ledger and return."""
    # An import's parser thread holds the GIL while the ledger thread waits for it after
    # each SQLite statement; at the default 5 ms hand-off that wait was a fifth of a
    # 1,000,000-row import (bench/import.py: 2.26 s → 1.83 s for parse and apply).
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    # first of all: a second daemon on this state must not touch the token, the database
    # (the running daemon's imports) or the spooled uploads
    state_lock = lock_state_dir(config.state_dir)
    try:
        token = prepare_state(config)
        bus = EventBus()
        board = StatusBoard(bus, now)
        host, port = config.listen
        settings = ControlSettings(
            host=host,
            port=port,
            max_frame_bytes=config.control.max_frame_bytes,
            hello_timeout_s=config.control.hello_timeout_s,
        )
        info = ServerInfo(version=zaiko_version(), started_at=now())
        backoff = Backoff(config.supervisor.backoff_initial_s, config.supervisor.backoff_max_s)
        await _serve(
            config, token, bus, board, settings, info, backoff, now, actors_for, task_status
        )
    finally:
        config.address_file.unlink(missing_ok=True)
        state_lock.release()
    log.info("stopped; database closed")


async def _serve(
    config: Config,
    token: str,
    bus: EventBus,
    board: StatusBoard,
    settings: ControlSettings,
    info: ServerInfo,
    backoff: Backoff,
    now: Callable[[], str],
    actors_for: Callable[[ShopSettings], Sequence[ActorSpec]],
    task_status: trio.TaskStatus[tuple[str, int]],
) -> None:
    ledger_send, ledger_receive = trio.open_memory_channel[LedgerRequest](LEDGER_QUEUE)
    workspace = Workspace(
        database=config.database,
        downloads=config.state_dir / "downloads",
        uploads=config.state_dir / "uploads",
    )
    workspace.downloads.mkdir(exist_ok=True, mode=0o700)
    workspace.uploads.mkdir(exist_ok=True, mode=0o700)
    clear_leftovers(workspace.downloads, workspace.uploads)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as core:
            await core.start(ledger, config.database, ledger_receive, bus, now)
            async with ledger_send, trio.open_nursery() as services:
                await services.start(
                    supervise_shops, ledger_send.clone(), bus, actors_for, board, backoff
                )
                address = await services.start(
                    control_server,
                    settings,
                    token,
                    ledger_send.clone(),
                    bus,
                    board,
                    info,
                    workspace,
                )
                config.address_file.write_text(f"{address[0]}:{address[1]}\n")
                await sd_notify("READY=1\nSTATUS=ready")
                log.info("zaiko %s listening on %s:%d", info.version, *address)
                task_status.started(address)
                async for signum in signals:
                    log.info("%s: stopping", signal.Signals(signum).name)
                    await sd_notify("STOPPING=1")
                    break
                # stop accepting and stop the shops; the ledger drains once every sender closed
                services.cancel_scope.cancel()
