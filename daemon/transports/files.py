"""File uploads to a mall's server: SFTP (asyncssh on the daemon's asyncio thread, host key
checked against the shop's ``known_hosts``), FTPS (stdlib ftplib on a worker thread,
certificate checked) and plain FTP where a mall offers nothing else.

Every upload goes under a temporary name (``NAME.part``) and is renamed into place, so the
mall's batch never reads half a file; an upload whose file name is still there (the mall
has not picked up the last one yet) is refused instead of replacing rows never applied.
``holds`` looks for a file the same way, without uploading: whether the mall took it yet.
"""

from __future__ import annotations

import asyncio
import ftplib
import posixpath
import secrets
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol, TypeVar
from urllib.parse import unquote, urlsplit

import asyncssh
import trio

from daemon.transports.aio import AsyncioThread

T = TypeVar("T")
V = TypeVar("V")

# an SFTP connection is kept this long after its last upload or look: a long pass sends its
# files one after another (FutureShop's are 1,000 rows each: a hundred for 100,000 SKUs), each
# a login of its own before; a mall looked at every 15 s is logged in to each time
SFTP_KEEP_OPEN_S = 5.0


class UploadFailed(Exception):
    """The upload did not happen (or not whole); the message says why, never a secret."""


class StillThere(UploadFailed):
    """A file of that name still waits at the mall: its batch has not picked it up yet."""


class FileUploader(Protocol):
    async def upload(self, directory: str, files: Mapping[str, bytes]) -> None: ...

    async def holds(self, directory: str, names: Iterable[str]) -> bool:
        """Whether ``directory`` holds a file of any of ``names``."""
        ...

    async def aclose(self) -> None:
        """Close what is kept open between uploads (the reflector stops)."""
        ...


@dataclass(frozen=True)
class FtpTarget:
    scheme: str  # sftp, ftps, ftp
    host: str
    port: int
    user: str
    path: str

    @property
    def where(self) -> str:
        return f"{self.scheme}://{self.user}@{self.host}:{self.port}"


def parse_ftp_url(url: str) -> FtpTarget:
    parts = urlsplit(url)
    if parts.scheme not in ("sftp", "ftps", "ftp"):
        raise ValueError(f"ftp_url {url!r}: must start with sftp://, ftps:// or ftp://")
    if not parts.hostname or not parts.username:
        raise ValueError(f"ftp_url {url!r}: needs user@host")
    default_port = 22 if parts.scheme == "sftp" else 21
    return FtpTarget(
        scheme=parts.scheme,
        host=parts.hostname,
        port=parts.port or default_port,
        user=unquote(parts.username),
        path=unquote(parts.path),
    )


def _temporary(name: str) -> str:
    """A name of its own for each upload: an upload abandoned on a worker thread (cancelled,
    then restarted) never writes into the same file as the next one."""
    return f"{name}.{secrets.token_hex(4)}.part"


def _still_there(path: str) -> StillThere:
    return StillThere(
        f"{path} is still there: the mall has not picked up the last upload yet (sent again later)"
    )


class SftpUploader:
    def __init__(
        self,
        target: FtpTarget,
        private_key: str,
        known_hosts: str,
        aio: AsyncioThread,
        timeout_s: float = 30.0,
    ) -> None:
        try:
            self._key = asyncssh.import_private_key(private_key)
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise UploadFailed(
                f"ftp_credential is not a private key asyncssh reads: {exc}"
            ) from None
        try:
            self._known_hosts = asyncssh.import_known_hosts(known_hosts)
        except (ValueError, asyncssh.Error) as exc:
            raise UploadFailed(f"known_hosts does not read: {exc}") from None
        self._target = target
        self._aio = aio
        self._timeout_s = timeout_s
        # on the asyncio thread only: the open connection, and when it is closed if unused
        self._open: tuple[asyncssh.SSHClientConnection, asyncssh.SFTPClient] | None = None
        self._closing: asyncio.TimerHandle | None = None
        self._one_at_a_time: asyncio.Lock | None = None
        self._was_kept = False  # the last session was a kept connection

    async def upload(self, directory: str, files: Mapping[str, bytes]) -> None:
        await self._run(lambda: self._upload(directory, dict(files)))

    async def aclose(self) -> None:
        async def close() -> None:
            if self._closing is not None:
                self._closing.cancel()
                self._closing = None
            if self._open is not None:
                conn = self._open[0]
                self._close()
                await conn.wait_closed()

        if self._open is not None or self._closing is not None:  # read, not written, here
            try:
                await self._aio.run(close)
            except (asyncssh.Error, OSError):
                pass  # the connection was going anyway

    async def holds(self, directory: str, names: Iterable[str]) -> bool:
        paths = [posixpath.join(directory, name) for name in names]
        return await self._run(lambda: self._holds(paths))

    async def _run(self, make: Callable[[], Awaitable[T]]) -> T:
        """``make()`` on the asyncio thread, its failures as UploadFailed."""
        where = self._target.where
        try:
            return await self._aio.run(lambda: self._once_more_if_kept(make))
        except asyncssh.HostKeyNotVerifiable as exc:
            raise UploadFailed(
                f"{where}: the server's host key is not the one in known_hosts ({exc}); "
                "nothing was sent. If the mall changed its key, put the new one in known_hosts"
            ) from None
        except asyncssh.PermissionDenied:
            raise UploadFailed(f"{where}: login refused (check ftp_credential)") from None
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            raise UploadFailed(f"{where}: {exc or type(exc).__name__}") from None

    async def _once_more_if_kept(self, make: Callable[[], Awaitable[T]]) -> T:
        """``make()``; when the connection was lost and it was a kept one (the server may
        have closed it meanwhile), once more on a new one."""
        try:
            return await make()
        except (asyncssh.DisconnectError, asyncssh.SFTPConnectionLost, OSError):
            if not self._was_kept:
                raise
        return await make()

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[asyncssh.SFTPClient]:
        """The open connection's SFTP client, else a new one (its host key verified); one
        user at a time. A connection that failed is closed; one that worked is kept for
        ``SFTP_KEEP_OPEN_S``."""
        if self._one_at_a_time is None:
            self._one_at_a_time = asyncio.Lock()
        async with self._one_at_a_time:
            if self._closing is not None:
                self._closing.cancel()
                self._closing = None
            self._was_kept = self._open is not None
            if self._open is None:
                self._open = await self._connect()
            try:
                yield self._open[1]
            except StillThere:
                self._keep_open()
                raise
            except BaseException:
                self._close()
                raise
            self._keep_open()

    async def _connect(self) -> tuple[asyncssh.SSHClientConnection, asyncssh.SFTPClient]:
        target = self._target
        conn = await asyncssh.connect(
            target.host,
            target.port,
            username=target.user,
            client_keys=[self._key],
            known_hosts=self._known_hosts,
            agent_path=None,
            config=[],
            connect_timeout=self._timeout_s,
        )
        try:
            return conn, await conn.start_sftp_client()
        except BaseException:
            conn.close()
            raise

    def _keep_open(self) -> None:
        self._closing = asyncio.get_running_loop().call_later(SFTP_KEEP_OPEN_S, self._close)

    def _close(self) -> None:
        if self._open is not None:
            conn, sftp = self._open
            self._open = None
            sftp.exit()
            conn.close()

    async def _upload(self, directory: str, files: dict[str, bytes]) -> None:
        async with self._session() as sftp:
            # every name first: a file of the set sent while another still waits would be
            # applied without its partner
            for name in files:
                if await sftp.exists(final := posixpath.join(directory, name)):
                    raise _still_there(final)
            for name, data in files.items():
                final = posixpath.join(directory, name)
                temp = _temporary(final)
                async with sftp.open(temp, "wb") as file:
                    await file.write(data)
                try:
                    await sftp.posix_rename(temp, final)
                except asyncssh.SFTPOpUnsupported:
                    await sftp.rename(temp, final)  # the name is free: checked above

    async def _holds(self, paths: list[str]) -> bool:
        async with self._session() as sftp:
            for path in paths:
                if await sftp.exists(path):  # a stat
                    return True
        return False


class FtpsUploader:
    """FTPS (explicit TLS, protected data) or, for ``ftp://``, plain FTP; ``ca_pem``: the
    certificate(s) to trust instead of the system's (a mall's self-signed one)."""

    def __init__(
        self, target: FtpTarget, password: str, ca_pem: str | None, timeout_s: float = 30.0
    ) -> None:
        self._target = target
        self._password = password
        self._timeout_s = timeout_s
        self._context = (
            ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
        )

    async def upload(self, directory: str, files: Mapping[str, bytes]) -> None:
        await self._run(self._upload, directory, dict(files))

    async def holds(self, directory: str, names: Iterable[str]) -> bool:
        return await self._run(self._holds, directory, list(names))

    async def aclose(self) -> None:
        pass  # a login per upload: nothing kept

    async def _run(self, work: Callable[[ftplib.FTP, str, V], T], directory: str, what: V) -> T:
        """``work`` on a worker thread, logged in and in ``directory``; failures as
        UploadFailed."""
        try:
            # a cancelled upload is left to its socket timeout on the worker thread
            return await trio.to_thread.run_sync(
                self._in_session, work, directory, what, abandon_on_cancel=True
            )
        except UploadFailed:
            raise
        except (ftplib.Error, OSError, EOFError) as exc:
            raise UploadFailed(f"{self._target.where}: {exc or type(exc).__name__}") from None

    def _in_session(self, work: Callable[[ftplib.FTP, str, V], T], directory: str, what: V) -> T:
        target = self._target
        ftp: ftplib.FTP = (
            ftplib.FTP_TLS(context=self._context, timeout=self._timeout_s)
            if target.scheme == "ftps"
            else ftplib.FTP(timeout=self._timeout_s)
        )
        try:
            ftp.connect(target.host, target.port)
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.auth()
                ftp.login(target.user, self._password)
                ftp.prot_p()
            else:
                ftp.login(target.user, self._password)
            ftp.cwd(directory or "/")
            result = work(ftp, directory, what)
            ftp.quit()
            return result
        finally:
            ftp.close()

    @staticmethod
    def _upload(ftp: ftplib.FTP, directory: str, files: dict[str, bytes]) -> None:
        ftp.voidcmd("TYPE I")
        # every name first: a file of the set sent while another still waits would be
        # applied without its partner
        for name in files:
            if _exists(ftp, name):
                raise _still_there(posixpath.join(directory, name))
        for name, data in files.items():
            temp = _temporary(name)
            _store(ftp, temp, data)
            ftp.rename(temp, name)

    @staticmethod
    def _holds(ftp: ftplib.FTP, directory: str, names: list[str]) -> bool:
        ftp.voidcmd("TYPE I")  # SIZE in binary: some servers refuse it in ASCII mode
        return any(_exists(ftp, name) for name in names)


def _exists(ftp: ftplib.FTP, name: str) -> bool:
    """Whether the folder holds ``name``, asked on the control connection (``SIZE``): a
    listing needs a data connection of its own, and an empty one over TLS is what servers
    close too early."""
    try:
        ftp.size(name)
    except ftplib.error_perm:  # 550: no such file
        return False
    return True


def _store(ftp: ftplib.FTP, name: str, data: bytes) -> None:
    """``STOR`` as ``storbinary`` does, but whether it arrived is the server's 226 reply: a TLS
    data connection the server closed without waiting for our close_notify (seen under load
    as SSL "shutdown while in init") does not fail an upload the server took whole."""
    with ftp.transfercmd(f"STOR {name}") as conn:
        conn.sendall(data)
        if isinstance(conn, ssl.SSLSocket):
            try:
                conn.unwrap()
            except (ssl.SSLError, OSError):
                pass  # the reply below says whether the file arrived
    ftp.voidresp()
