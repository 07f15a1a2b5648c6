"""Real clients for the simulator's servers, as the daemon would use them."""

from __future__ import annotations

import asyncio
import ftplib
import io
import ssl
from collections.abc import Callable
from pathlib import Path

import asyncssh
import httpx
import trio

from mallsim.sim import Addresses
from protocols.malls.base import HttpRequest, OrderPoll, RateLimited


async def sftp_upload(
    addr: Addresses,
    user: str,
    key: asyncssh.SSHKey,
    folder: str,
    files: dict[str, bytes],
    *,
    via_rename: bool = False,
) -> None:
    """Upload with asyncssh (on its own asyncio loop in a worker thread), verifying the host
    key against the simulator's known_hosts file."""

    async def main() -> None:
        async with asyncssh.connect(
            addr.host,
            addr.sftp_port,
            username=user,
            client_keys=[key],
            known_hosts=addr.known_hosts,
            agent_path=None,
            config=[],
        ) as conn:
            async with conn.start_sftp_client() as sftp:
                for name, data in files.items():
                    target = f"{folder.rstrip('/')}/{name}"
                    temp = f"{target}.part" if via_rename else target
                    async with sftp.open(temp, "wb") as f:
                        await f.write(data)
                    if via_rename:
                        await sftp.posix_rename(temp, target)

    await trio.to_thread.run_sync(asyncio.run, main())


def _ftps(addr: Addresses, user: str, password: str) -> ftplib.FTP_TLS:
    context = ssl.create_default_context(cafile=addr.ftps_cert)
    ftp = ftplib.FTP_TLS(context=context, timeout=10)
    ftp.connect(addr.host, addr.ftps_port)
    ftp.auth()
    ftp.login(user, password)
    ftp.prot_p()
    return ftp


def _ftps_upload(
    addr: Addresses, user: str, password: str, folder: str, files: dict[str, bytes]
) -> None:
    ftp = _ftps(addr, user, password)
    try:
        ftp.cwd(folder)
        for name, data in files.items():
            ftp.storbinary(f"STOR {name}", io.BytesIO(data))
        ftp.quit()
    finally:
        ftp.close()


async def ftps_upload(
    addr: Addresses, user: str, password: str, folder: str, files: dict[str, bytes]
) -> None:
    """Upload with ftplib.FTP_TLS (explicit TLS, certificate verified, protected data)."""
    await trio.to_thread.run_sync(_ftps_upload, addr, user, password, folder, files)


async def ftps_login(addr: Addresses, user: str, password: str) -> None:
    def login() -> None:
        _ftps(addr, user, password).close()

    await trio.to_thread.run_sync(login)


async def send(client: httpx.AsyncClient, base_url: str, req: HttpRequest) -> httpx.Response:
    """Send a module-built request to a shop's API base URL."""
    return await client.request(
        req.method,
        base_url + req.path,
        params=list(req.query),
        headers=list(req.headers),
        content=req.body,
    )


async def run_order_poll(
    client: httpx.AsyncClient,
    base_url: str,
    poll: OrderPoll,
    wait: Callable[[float | None], None],
) -> int:
    """Drive an order poll to its end over HTTP, as the daemon does: on a 429, ``wait`` for
    the Retry-After (a test moves the rate limiter's clock) and send the same request again.
    Returns how many requests were sent."""
    sent = 0
    while (req := poll.next_request()) is not None:
        resp = await send(client, base_url, req)
        sent += 1
        try:
            poll.feed(resp.status_code, resp.headers, resp.content)
        except RateLimited as exc:
            wait(exc.retry_after)
    return sent


def folder_of(path: str | None) -> str:
    return path or "/"


def maildir_messages(root: Path, shop_id: str) -> list[bytes]:
    new = root / shop_id / "new"
    return [p.read_bytes() for p in sorted(new.iterdir())] if new.exists() else []
