"""Wiring of the daemon: ledger, shop supervisor, control server, signals, systemd."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version

import trio

from daemon.actors.control import ControlSettings, ServerInfo, control_server
from daemon.actors.ledger import ledger
from daemon.actors.supervisor import ActorsFor, Backoff, supervise_shops
from daemon.clock import WallClock, stamps, utc_wall_clock
from daemon.commands import LedgerRequest
from daemon.config import Config, prepare_state
from daemon.events import EventBus, StatusBoard
from daemon.notify import sd_notify
from daemon.shop_actors import actors_for as default_actors_for
from daemon.statelock import lock_state_dir
from daemon.stockfiles import clear_leftovers
from daemon.transports.aio import AsyncioThread
from daemon.wiring import ShopWiring, StatePaths

log = logging.getLogger("zaiko")

LEDGER_QUEUE = 1024
MAX_MAIL_PARSERS = 2
PR_SET_PDEATHSIG = 1  # prctl(2)
SWITCH_INTERVAL_S = 0.0005


def zaiko_version() -> str:
    try:
        return version("zaiko")
    except PackageNotFoundError:
        return "0+unknown"


@contextmanager
def mail_parsers() -> Iterator[Executor]:
    """The process(es) order mails are parsed in. On a thread, parsing (Python) and the
    ledger (SQLite, Python between statements) took turns for the interpreter lock and
    intake stayed under 1,000 orders/s (bench/intake.py). Workers start at the first mail."""
    parsers = ProcessPoolExecutor(
        max_workers=max(1, min(MAX_MAIL_PARSERS, (os.cpu_count() or 2) - 1)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_parser_process,
    )
    try:
        yield parsers
    finally:
        parsers.shutdown(wait=False, cancel_futures=True)


def _parser_process() -> None:
    """A mail parser process ignores Ctrl-C (the daemon stops it) and ends with the daemon,
    however that ends (kill -9 included: the kernel sends it SIGTERM)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    name = ctypes.util.find_library("c")
    if name is not None:
        ctypes.CDLL(name).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the daemon died before the line above
        os._exit(0)


def state_paths(config: Config) -> StatePaths:
    return StatePaths(
        state_dir=config.state_dir,
        database=config.database,
        downloads=config.state_dir / "downloads",
        uploads=config.state_dir / "uploads",
        maildir_root=config.maildir_root,
        credentials_dir=config.credentials_dir,
    )


async def run_daemon(
    config: Config,
    *,
    wall_clock: WallClock = utc_wall_clock,
    actors_for: ActorsFor = default_actors_for,
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
        paths = state_paths(config)
        with mail_parsers() as parsers, AsyncioThread() as aio:
            await _serve(config, token, paths, wall_clock, actors_for, parsers, aio, task_status)
    finally:
        config.address_file.unlink(missing_ok=True)
        state_lock.release()
    log.info("stopped; database closed")


async def _serve(
    config: Config,
    token: str,
    paths: StatePaths,
    wall_clock: WallClock,
    actors_for: ActorsFor,
    parsers: Executor,
    aio: AsyncioThread,
    task_status: trio.TaskStatus[tuple[str, int]],
) -> None:
    now = stamps(wall_clock)
    bus = EventBus()
    board = StatusBoard(bus, now)
    host, port = config.listen
    settings = ControlSettings(
        host=host,
        port=port,
        max_frame_bytes=config.control.max_frame_bytes,
        hello_timeout_s=config.control.hello_timeout_s,
    )
    info = ServerInfo(version=zaiko_version(), started_at=now(), database=str(paths.database))
    backoff = Backoff(config.supervisor.backoff_initial_s, config.supervisor.backoff_max_s)
    ledger_send, ledger_receive = trio.open_memory_channel[LedgerRequest](LEDGER_QUEUE)
    paths.downloads.mkdir(exist_ok=True, mode=0o700)
    paths.uploads.mkdir(exist_ok=True, mode=0o700)
    clear_leftovers(paths.downloads, paths.uploads)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as core:
            await core.start(ledger, paths.database, ledger_receive, bus, now)
            async with ledger_send, trio.open_nursery() as services:
                wiring = ShopWiring(
                    ledger=ledger_send.clone(),
                    bus=bus,
                    board=board,
                    clock=trio.current_time,
                    wall_clock=wall_clock,
                    paths=paths,
                    intake=config.intake,
                    mail_parsers=parsers,
                    aio=aio,
                )
                await services.start(supervise_shops, wiring, actors_for, backoff)
                address = await services.start(
                    control_server,
                    settings,
                    token,
                    ledger_send.clone(),
                    bus,
                    board,
                    info,
                    paths,
                )
                # whole or not at all: a client reading it meanwhile never sees half of it
                partial = config.address_file.with_name(config.address_file.name + ".new")
                partial.write_text(f"{address[0]}:{address[1]}\n")
                partial.replace(config.address_file)
                await sd_notify("READY=1\nSTATUS=ready")
                log.info("zaiko %s listening on %s:%d", info.version, *address)
                task_status.started(address)
                async for signum in signals:
                    log.info("%s: stopping", signal.Signals(signum).name)
                    await sd_notify("STOPPING=1")
                    break
                # stop accepting and stop the shops; the ledger drains once every sender closed
                services.cancel_scope.cancel()
