"""The look at a file mall's folder (``holds``, ``FileStockSender.mall_holds_file``) against
real servers on 127.0.0.1: mallsim's SFTP (asyncssh) and FTPS (pyftpdlib) services, here
with a batch that never runs, so an upload stays until the test takes it away as the mall's
batch would. The look says whether the file waits, the same way an upload finds it still
there; a mall that cannot be reached is a PushFailed, never an answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest
import trio

from daemon.transports.aio import AsyncioThread
from daemon.transports.files import (
    FileUploader,
    FtpsUploader,
    FtpTarget,
    SftpUploader,
    StillThere,
)
from daemon.transports.stock import FileStockSender, PushFailed
from mallsim.config import Faults
from mallsim.ftps import FtpsService, FtpsUser, make_certificate
from mallsim.sftp import SftpService, SftpUser, known_hosts_line
from protocols.malls.base import StockUpdate

SHOP = "y1"
PASSWORD = "ftps-pass-123"
FOLDER = "/upload"


@dataclass
class Mall:
    home: Path  # the shop's root on the server
    uploader: FileUploader
    service: SftpService | FtpsService | None = None

    @property
    def folder(self) -> Path:
        return self.home / FOLDER.lstrip("/")


async def serve(service: SftpService | FtpsService) -> None:
    service.start()
    await trio.to_thread.run_sync(service.ready.wait)
    assert service.error is None and service.bound_port, service.error


def no_faults(shop: str) -> Faults:
    return Faults()


def kept(shop: str, path: Path) -> None:
    """The mall's batch does not run: a file stays where it was uploaded."""


@pytest.fixture(params=["sftp", "ftps"])
async def mall(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Mall]:
    home = tmp_path / "home"
    (home / FOLDER.lstrip("/")).mkdir(parents=True)
    service: SftpService | FtpsService
    if request.param == "sftp":
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        client_key = asyncssh.generate_private_key("ssh-ed25519")
        authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())
        service = SftpService(
            host="127.0.0.1",
            port=0,
            host_key=host_key,
            users={SHOP: SftpUser(SHOP, home, authorized)},
            faults=no_faults,
            on_closed=kept,
        )
    else:
        cert, key = make_certificate(tmp_path, "127.0.0.1")
        service = FtpsService(
            host="127.0.0.1",
            port=0,
            certfile=cert,
            keyfile=key,
            users={SHOP: FtpsUser(SHOP, home, PASSWORD)},
            faults=no_faults,
            on_closed=kept,
        )
    await serve(service)
    aio = AsyncioThread()
    try:
        target = FtpTarget(request.param, "127.0.0.1", service.bound_port, SHOP, FOLDER)
        uploader: FileUploader
        if isinstance(service, SftpService):
            uploader = SftpUploader(
                target,
                client_key.export_private_key().decode(),
                known_hosts_line("127.0.0.1", service.bound_port, host_key),
                aio,
                timeout_s=10.0,
            )
        else:
            uploader = FtpsUploader(target, PASSWORD, cert.read_text(), timeout_s=10.0)
        yield Mall(home, uploader, service)
    finally:
        service.stop()
        await trio.to_thread.run_sync(service.join)
        aio.close()


def quantity_csv(updates: Sequence[StockUpdate]) -> dict[str, bytes]:
    return {"quantity.csv": "".join(f"{u.item_id},{u.quantity}\n" for u in updates).encode()}


def sender(
    mall: Mall, write: Callable[[Sequence[StockUpdate]], dict[str, bytes]]
) -> FileStockSender:
    return FileStockSender(write, mall.uploader, FOLDER, {"quantity.csv": "stock.csv"})


async def test_the_look_says_whether_the_uploaded_file_still_waits(mall: Mall) -> None:
    files = sender(mall, quantity_csv)
    assert not await files.mall_holds_file()  # nothing uploaded yet: nothing to wait for
    await files.send([StockUpdate("a", (), 3)])
    assert (mall.folder / "stock.csv").read_bytes() == b"a,3\n"  # the shop's file name
    assert await files.mall_holds_file()
    assert await mall.uploader.holds(FOLDER, ["quantity.csv", "stock.csv"])
    assert not await mall.uploader.holds(FOLDER, ["quantity.csv"])
    # the next upload finds it the same way: refused as waiting, not as a failure
    with pytest.raises(PushFailed) as refused:
        await files.send([StockUpdate("a", (), 2)])
    assert refused.value.waiting and not refused.value.permanent
    (mall.folder / "stock.csv").unlink()  # the mall's batch took it
    assert not await files.mall_holds_file()
    await files.send([StockUpdate("a", (), 2)])
    assert (mall.folder / "stock.csv").read_bytes() == b"a,2\n"


async def test_a_look_at_a_mall_that_cannot_be_reached_is_a_failure_not_an_answer() -> None:
    with trio.socket.socket() as closed:
        await closed.bind(("127.0.0.1", 0))  # a port nobody listens on
        port = closed.getsockname()[1]
        target = FtpTarget("ftps", "127.0.0.1", port, SHOP, FOLDER)
        files = sender(Mall(Path("/nowhere"), FtpsUploader(target, PASSWORD, None)), quantity_csv)
        with pytest.raises(PushFailed):
            await files.send([StockUpdate("a", (), 1)])
        with pytest.raises(PushFailed) as failed:
            await files.mall_holds_file()
    assert not failed.value.waiting


async def test_a_pair_of_files_goes_up_whole_or_not_at_all(mall: Mall) -> None:
    """Rakuten's item.csv and select.csv: while select.csv still waits, item.csv is not sent
    either (the mall would apply one without the other)."""
    (mall.folder / "select.csv").write_bytes(b"left from the last upload\n")
    with pytest.raises(StillThere):
        await mall.uploader.upload(FOLDER, {"item.csv": b"new\n", "select.csv": b"new\n"})
    assert not (mall.folder / "item.csv").exists()
    (mall.folder / "select.csv").unlink()
    await mall.uploader.upload(FOLDER, {"item.csv": b"new\n", "select.csv": b"new\n"})
    assert (mall.folder / "item.csv").read_bytes() == b"new\n"


@pytest.mark.parametrize("mall", ["sftp"], indirect=True)  # FTPS logs in for each upload
async def test_consecutive_sftp_uploads_share_one_connection_and_survive_its_end(
    mall: Mall,
) -> None:
    """A long pass sends its files one after another: one SFTP login for all of them (kept
    a few seconds after the last). A kept connection the server ended is replaced at once:
    the upload goes, no failure, no backoff. Closing the sender closes it."""
    assert isinstance(mall.service, SftpService)
    files = sender(mall, quantity_csv)
    for quantity in (3, 2, 1):
        await files.send([StockUpdate("a", (), quantity)])
        assert (mall.folder / "stock.csv").read_bytes() == f"a,{quantity}\n".encode()
        assert await files.mall_holds_file()
        (mall.folder / "stock.csv").unlink()  # the mall's batch took it
    assert mall.service.connections == 1
    mall.service.drop_connections()
    await files.send([StockUpdate("a", (), 7)])
    assert (mall.folder / "stock.csv").read_bytes() == b"a,7\n"
    assert mall.service.connections == 2
    # the reflector stops: the kept connection is closed (the next upload logs in again)
    await files.aclose()
    (mall.folder / "stock.csv").unlink()
    await files.send([StockUpdate("a", (), 6)])
    assert mall.service.connections == 3
    await files.aclose()
