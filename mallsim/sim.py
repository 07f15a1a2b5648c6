"""The simulator: state, HTTP (hypercorn on trio), SFTP and FTPS threads, customers.

``Simulator(cfg).run`` is a trio task (use ``nursery.start``); it reports the bound
``Addresses`` when every server listens. Cancelling it stops the servers, joins their
threads and then stops the upload processor, in that order, so nothing hangs.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import asyncssh
import hypercorn.config
import hypercorn.trio
import trio

from mallsim.config import Config, ConfigError, Faults, resolve
from mallsim.customers import MailOrApi, run_customers
from mallsim.ftps import FtpsService, FtpsUser, make_certificate
from mallsim.http import MallApp
from mallsim.maildir import ensure_maildir
from mallsim.malls import Mall
from mallsim.sftp import SftpService, SftpUser, known_hosts_line, load_host_key
from mallsim.state import FileResult, SimState
from protocols.malls.base import RowError, StockRow

log = logging.getLogger("mallsim")

SERVICES = frozenset({"http", "sftp", "ftps", "customers"})
UPLOAD_QUEUE = 64
ERRORS_KEPT = 20


@dataclass(frozen=True)
class Addresses:
    """Where the simulator listens; also written to ``state_dir/addresses.json``."""

    host: str
    http_url: str  # shop API base URL: http_url + "/" + shop_id
    http_port: int
    sftp_port: int
    ftps_port: int
    known_hosts: str  # file with the SFTP host key line for [host]:sftp_port
    ftps_cert: str  # the FTPS server's self-signed certificate (PEM), to verify it
    maildir_root: str
    state_dir: str

    def shop_url(self, shop_id: str) -> str:
        return f"{self.http_url}/{shop_id}"


@dataclass(frozen=True)
class Upload:
    shop_id: str
    transport: str
    path: Path  # the file, moved out of the shop's home into the batch folder
    name: str  # its name as uploaded
    apply: bool  # False: not a stock file in the mall's folder, only counted


class _Service(Protocol):
    bound_port: int
    error: BaseException | None

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def join(self) -> None: ...


class Simulator:
    def __init__(
        self,
        cfg: Config,
        *,
        rate_clock: Callable[[], float] | None = None,
        services: Collection[str] = SERVICES,
    ) -> None:
        unknown = set(services) - SERVICES
        if unknown:
            raise ValueError(f"unknown services {sorted(unknown)} (known: {sorted(SERVICES)})")
        self.cfg = cfg
        self.services = frozenset(services)
        self.state = SimState(cfg, rate_clock=rate_clock)
        self.state_dir = resolve(cfg, cfg.sim.state_dir)
        self.maildir_root = resolve(cfg, cfg.sim.maildir_root)
        self.addresses: Addresses | None = None
        self._trio_token: trio.lowlevel.TrioToken | None = None
        self._send: trio.MemorySendChannel[Upload] | None = None
        self._stopping = False
        self._batch_seq = itertools.count(1)

    # -- paths ----------------------------------------------------------------------------

    def home(self, shop_id: str) -> Path:
        return self.state_dir / "home" / shop_id

    def _prepare_dirs(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for shop in self.state.shops.values():
            home = self.home(shop.id)
            (home / (shop.cap.ftp_dir or "/").lstrip("/")).mkdir(parents=True, exist_ok=True)
            (self.state_dir / "batch" / shop.id).mkdir(parents=True, exist_ok=True)
            if shop.intake == "mail":
                ensure_maildir(self.maildir_root / shop.id)

    def _faults(self, shop_id: str) -> Faults:
        return self.state.shops[shop_id].faults

    # -- uploads: server threads → trio ----------------------------------------------------------

    def _on_closed(self, transport: str) -> Callable[[str, Path], None]:
        def on_closed(shop_id: str, path: Path) -> None:
            """Called on a server thread when an upload is complete. Blocking."""
            if self._stopping or self._trio_token is None or self._send is None:
                return
            shop = self.state.shops[shop_id]
            home = self.home(shop_id).resolve()
            try:
                rel = path.resolve().relative_to(home)
            except ValueError:
                return
            folder = "/" if rel.parent == Path(".") else "/" + rel.parent.as_posix()
            want = "/" + (shop.cap.ftp_dir or "/").strip("/")
            apply = rel.name in shop.cap.stock_files and folder.rstrip("/") == want.rstrip("/")
            target = path
            if apply:
                # Take the file away at once, as the mall's batch job does, so a re-upload
                # of the same name cannot be mixed up with this one.
                target = self.state_dir / "batch" / shop_id / f"{next(self._batch_seq)}-{rel.name}"
                try:
                    os.replace(path, target)
                except OSError:
                    return
            up = Upload(shop_id, transport, target, rel.name, apply)
            try:
                trio.from_thread.run(self._send.send, up, trio_token=self._trio_token)
            except (
                trio.RunFinishedError,
                trio.Cancelled,
                trio.BrokenResourceError,
                trio.ClosedResourceError,
            ):
                pass

        return on_closed

    async def _process_uploads(
        self,
        receive: trio.MemoryReceiveChannel[Upload],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        # Shielded: it ends when the channel closes, i.e. after the server threads joined,
        # so a thread blocked handing over an upload is never left waiting.
        with trio.CancelScope(shield=True):
            task_status.started()
            async with receive:
                async for up in receive:
                    await self._apply_upload(up)

    async def _apply_upload(self, up: Upload) -> None:
        shop = self.state.shops[up.shop_id]
        if not up.apply:
            shop.files_ignored += 1
            self.state.changed()
            return
        if shop.faults.drop_files:
            up.path.unlink(missing_ok=True)
            why = "dropped by the mall's batch (fault drop_files)"
            self.state.record_file(up.shop_id, FileResult(up.name, up.transport, 0, 0, 0, [why]))
            log.info("shop %s: %s %s", up.shop_id, up.name, why)
            return
        mall = Mall(shop.kind)

        def read() -> tuple[list[StockRow], list[RowError]]:
            return mall.read_stock_file(up.name, up.path.read_bytes())

        try:
            rows, errors = await trio.to_thread.run_sync(read)
        except Exception as exc:  # a module that cannot read the file: report it, go on
            why = f"{type(exc).__name__}: {exc}"
            self.state.record_file(up.shop_id, FileResult(up.name, up.transport, 0, 0, 0, [why]))
            log.warning("shop %s: %s not applied: %s", up.shop_id, up.name, why)
            return
        finally:
            up.path.unlink(missing_ok=True)
        updates = [
            (r.item_id, tuple(r.variation), r.sku, r.quantity)
            for r in rows
            if r.quantity is not None
        ]
        applied, unknown = self.state.apply_quantities(up.shop_id, updates)
        messages = [e.message() for e in errors[:ERRORS_KEPT]]
        self.state.record_file(
            up.shop_id,
            FileResult(up.name, up.transport, len(rows) + len(errors), applied, unknown, messages),
        )
        log.info(
            "shop %s: %s via %s: %d applied, %d unknown, %d errors",
            up.shop_id,
            up.name,
            up.transport,
            applied,
            unknown,
            len(errors),
        )

    # -- servers ------------------------------------------------------------------------------

    async def _run_thread_service(
        self, svc: _Service, ready: Callable[[], bool], *, task_status: trio.TaskStatus[int]
    ) -> None:
        svc.start()
        try:
            await trio.to_thread.run_sync(ready, abandon_on_cancel=True)
            if svc.error is not None or not svc.bound_port:
                raise RuntimeError(f"{type(svc).__name__} did not start: {svc.error!r}")
            task_status.started(svc.bound_port)
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                svc.stop()
                await trio.to_thread.run_sync(svc.join)

    def _sftp(self, host_key: asyncssh.SSHKey) -> SftpService:
        users: dict[str, SftpUser] = {}
        for shop in self.state.shops.values():
            cfg = shop.cfg
            keys = None
            try:
                if cfg.sftp_authorized_key:
                    where = "sftp_authorized_key"
                    keys = asyncssh.import_authorized_keys(cfg.sftp_authorized_key)
                elif cfg.sftp_authorized_key_file:
                    path = resolve(self.cfg, cfg.sftp_authorized_key_file)
                    where = f"sftp_authorized_key_file {path}"
                    keys = asyncssh.read_authorized_keys(str(path))
            except OSError as exc:
                raise ConfigError(f"shop {cfg.id}: {where}: {exc.strerror}") from None
            except (ValueError, asyncssh.KeyImportError) as exc:
                raise ConfigError(
                    f"shop {cfg.id}: {where}: not an OpenSSH public key ({exc})"
                ) from None
            if keys is not None:
                users[cfg.ftp_user or cfg.id] = SftpUser(cfg.id, self.home(cfg.id), keys)
        return SftpService(
            host=self.cfg.sim.listen,
            port=self.cfg.sim.sftp_port,
            host_key=host_key,
            users=users,
            faults=self._faults,
            on_closed=self._on_closed("sftp"),
        )

    def _ftps(self) -> FtpsService:
        cert, key = make_certificate(self.state_dir, self.cfg.sim.listen)
        users = {
            (s.cfg.ftp_user or s.id): FtpsUser(s.id, self.home(s.id), s.cfg.ftp_password)
            for s in self.state.shops.values()
            if s.cfg.ftp_password
        }
        return FtpsService(
            host=self.cfg.sim.listen,
            port=self.cfg.sim.ftps_port,
            certfile=cert,
            keyfile=key,
            users=users,
            faults=self._faults,
            on_closed=self._on_closed("ftps"),
        )

    async def _run_http(self, *, task_status: trio.TaskStatus[int]) -> None:
        config = hypercorn.config.Config()
        host = self.cfg.sim.listen
        config.bind = [
            f"[{host}]:{self.cfg.sim.http_port}"
            if ":" in host
            else f"{host}:{self.cfg.sim.http_port}"
        ]
        config.accesslog = None
        config.errorlog = logging.getLogger("mallsim.hypercorn")
        config.graceful_timeout = 1.0
        app = MallApp(self.state, MailOrApi(self.state, self.maildir_root))
        app.learn_all()

        class _Status:
            def started(self, binds: list[str] | None = None) -> None:
                port = int((binds or [""])[0].rsplit(":", 1)[1])
                task_status.started(port)

        await hypercorn.trio.serve(app, config, task_status=_Status())  # type: ignore[arg-type]

    # -- the whole thing ----------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[Addresses] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self._trio_token = trio.lowlevel.current_trio_token()
        self.state.t0 = trio.current_time()
        host = self.cfg.sim.listen
        await trio.to_thread.run_sync(self._prepare_dirs)
        send, receive = trio.open_memory_channel[Upload](UPLOAD_QUEUE)
        self._send = send
        async with trio.open_nursery() as outer:
            await outer.start(self._process_uploads, receive)
            try:
                async with trio.open_nursery() as nursery:
                    http_port = sftp_port = ftps_port = 0
                    known_hosts = ""
                    if "http" in self.services:
                        http_port = await nursery.start(self._run_http)
                    if "sftp" in self.services:
                        host_key = await trio.to_thread.run_sync(load_host_key, self.state_dir)
                        svc = self._sftp(host_key)
                        sftp_port = await nursery.start(
                            self._run_thread_service, svc, svc.ready.wait
                        )
                        line = known_hosts_line(host, sftp_port, host_key)
                        kh = self.state_dir / "known_hosts"
                        kh.write_text(line)
                        known_hosts = str(kh)
                        if self.cfg.sim.known_hosts_file:
                            extra = resolve(self.cfg, self.cfg.sim.known_hosts_file)
                            extra.parent.mkdir(parents=True, exist_ok=True)
                            extra.write_text(line)
                    ftps_cert = ""
                    if "ftps" in self.services:
                        fsvc = await trio.to_thread.run_sync(self._ftps)
                        ftps_port = await nursery.start(
                            self._run_thread_service, fsvc, fsvc.ready.wait
                        )
                        ftps_cert = str(self.state_dir / "ftps_cert.pem")
                    if "customers" in self.services:
                        hand_over = MailOrApi(self.state, self.maildir_root)
                        for shop_id in self.state.shops:
                            await nursery.start(run_customers, self.state, shop_id, hand_over)
                    url_host = f"[{host}]" if ":" in host else host
                    self.addresses = Addresses(
                        host=host,
                        http_url=f"http://{url_host}:{http_port}" if http_port else "",
                        http_port=http_port,
                        sftp_port=sftp_port,
                        ftps_port=ftps_port,
                        known_hosts=known_hosts,
                        ftps_cert=ftps_cert,
                        maildir_root=str(self.maildir_root),
                        state_dir=str(self.state_dir),
                    )
                    (self.state_dir / "addresses.json").write_text(
                        json.dumps(asdict(self.addresses), indent=2) + "\n"
                    )
                    task_status.started(self.addresses)
            finally:
                self._stopping = True
                send.close()


@asynccontextmanager
async def open_simulator(
    cfg: Config,
    *,
    rate_clock: Callable[[], float] | None = None,
    services: Collection[str] = SERVICES,
) -> AsyncIterator[Simulator]:
    """Run a simulator for the ``async with`` block (``sim.addresses`` says where)."""
    sim = Simulator(cfg, rate_clock=rate_clock, services=services)
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.run)
        try:
            yield sim
        finally:
            nursery.cancel_scope.cancel()


def wipe_state(cfg: Config) -> None:
    """Remove the state dir and Maildirs (``--fresh``)."""
    for p in (resolve(cfg, cfg.sim.state_dir), resolve(cfg, cfg.sim.maildir_root)):
        shutil.rmtree(p, ignore_errors=True)
