"""The simulated malls' SFTP server: asyncssh on its own thread and asyncio loop.

One listener serves every shop: the SSH user name picks the shop, the shop's authorized
public key(s) let it in (keys only, no passwords), and each shop is chrooted to its home.
A finished upload (file closed after writing, or renamed into place) is handed to the
simulator's trio side through ``Uploads`` (blocking, so the trio side applies back-pressure).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from mallsim.config import Faults

log = logging.getLogger("mallsim.sftp")


@dataclass(frozen=True)
class SftpUser:
    shop_id: str
    home: Path
    authorized_keys: asyncssh.SSHAuthorizedKeys | None


def load_host_key(state_dir: Path) -> asyncssh.SSHKey:
    """The server's host key, generated once into the state dir and reused after."""
    path = state_dir / "ssh_host_ed25519_key"
    if path.exists():
        return asyncssh.read_private_key(str(path))
    key = asyncssh.generate_private_key("ssh-ed25519", comment="mallsim host key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.export_private_key())
    (state_dir / "ssh_host_ed25519_key.pub").write_bytes(key.export_public_key())
    return key


def known_hosts_line(host: str, port: int, key: asyncssh.SSHKey) -> str:
    pub = key.export_public_key().decode().split()
    where = host if port == 22 else f"[{host}]:{port}"
    return f"{where} {pub[0]} {pub[1]}\n"


class SftpService:
    """Start with ``start()``; ``wait_ready()`` returns the bound port; ``stop()`` + ``join()``."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        host_key: asyncssh.SSHKey,
        users: dict[str, SftpUser],
        faults: Callable[[str], Faults],
        on_closed: Callable[[str, Path], None],
    ) -> None:
        self.host = host
        self.port = port
        self.host_key = host_key
        self.users = users
        self.faults = faults
        self.on_closed = on_closed  # blocking; called on an executor thread
        self.bound_port = 0
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._conns: set[asyncssh.SSHServerConnection] = set()
        self.connections = 0  # made since the start: a client that keeps one open makes fewer
        self._thread = threading.Thread(target=self._thread_main, name="mallsim-sftp", daemon=True)

    # -- control from the trio side -----------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def join(self) -> None:
        self._thread.join()

    def drop_connections(self) -> None:
        """Close every open connection from the server's side (a server that ends idle ones)."""
        loop = self._loop
        assert loop is not None
        done = threading.Event()

        def drop() -> None:
            for conn in list(self._conns):
                conn.close()
            done.set()

        loop.call_soon_threadsafe(drop)
        done.wait(10)

    # -- the asyncio thread -------------------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
        finally:
            self.ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        service = self

        class Server(asyncssh.SSHServer):
            conn: asyncssh.SSHServerConnection | None = None

            def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
                self.conn = conn
                service._conns.add(conn)
                service.connections += 1

            def connection_lost(self, exc: Exception | None) -> None:
                if self.conn is not None:
                    service._conns.discard(self.conn)

            def begin_auth(self, username: str) -> bool:
                user = service.users.get(username)
                assert self.conn is not None
                if user is None:
                    return True  # no keys set: every attempt fails
                faults = service.faults(user.shop_id)
                if faults.down:
                    self.conn.disconnect(asyncssh.DISC_SERVICE_NOT_AVAILABLE, "shop is down")
                    return True
                if not faults.reject_auth and user.authorized_keys is not None:
                    self.conn.set_authorized_keys(user.authorized_keys)
                return True

            def password_auth_supported(self) -> bool:
                return False

        def sftp_factory(chan: asyncssh.SSHServerChannel[Any]) -> asyncssh.SFTPServer:
            user = service.users[chan.get_extra_info("username")]
            return ShopSftp(chan, service, user)

        acceptor = await asyncssh.listen(
            self.host,
            self.port,
            server_factory=Server,
            server_host_keys=[self.host_key],
            sftp_factory=sftp_factory,
            allow_scp=False,
            login_timeout=30,
        )
        self.bound_port = acceptor.get_port()
        self.ready.set()
        try:
            await self._stop.wait()
        finally:
            acceptor.close()
            for conn in list(self._conns):
                conn.close()
            for conn in list(self._conns):
                await conn.wait_closed()
            await acceptor.wait_closed()


class ShopSftp(asyncssh.SFTPServer):
    """One SFTP session of one shop, chrooted to the shop's home directory."""

    def __init__(
        self, chan: asyncssh.SSHServerChannel[Any], service: SftpService, user: SftpUser
    ) -> None:
        super().__init__(chan, chroot=os.fsencode(user.home))
        self.service = service
        self.user = user
        self._written: dict[int, Path] = {}

    async def _handoff(self, path: Path) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.service.on_closed, self.user.shop_id, path)

    async def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        faults = self.service.faults(self.user.shop_id)
        if faults.slow_s:
            await asyncio.sleep(faults.slow_s)
        writing = bool(pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND | asyncssh.FXF_CREAT))
        if writing and faults.error_5xx:
            raise asyncssh.SFTPFailure("mall storage error (simulated)")
        file_obj = super().open(path, pflags, attrs)
        if writing:
            self._written[id(file_obj)] = Path(os.fsdecode(self.map_path(path)))
        return file_obj

    async def close(self, file_obj: object) -> None:
        super().close(file_obj)
        path = self._written.pop(id(file_obj), None)
        if path is not None:
            await self._handoff(path)

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        super().rename(oldpath, newpath)
        await self._handoff(Path(os.fsdecode(self.map_path(newpath))))

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        super().posix_rename(oldpath, newpath)
        await self._handoff(Path(os.fsdecode(self.map_path(newpath))))
