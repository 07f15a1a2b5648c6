"""How a shop's quantities reach its mall: API calls (the mall module's stock requests, each
paced by the shop's token bucket, a 429's ``Retry-After`` honoured) or its stock files
uploaded to the mall's server. Both raise ``PushFailed`` when the mall did not take them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from daemon.transports.files import FileUploader, UploadFailed
from daemon.transports.http import HttpAnswer, HttpTransportError, TokenBucket
from protocols.malls._api import retry_after
from protocols.malls.base import ApiAccount, HttpRequest, StockUpdate

# what a mall answers when the request itself is wrong (an unknown item, a bad quantity):
# sending it again changes nothing; a 401/403 (credentials) or a 5xx may pass later
REFUSED_FOR_GOOD = frozenset({400, 404, 409, 413, 422})


class PushFailed(Exception):
    """The mall did not take the quantities this time (down, 5xx, a file not picked up yet):
    they stay pending and are sent again later. ``permanent``: it refused them for a reason
    that sending again does not change (a 4xx, a request that cannot be made): the pass goes
    on without them, and they stay pending until something changes."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Connection(Protocol):
    async def send(self, request: HttpRequest) -> HttpAnswer: ...

    async def aclose(self) -> None: ...


class ApiStockSender:
    """One acknowledged step is one API call's batch (``chunk``)."""

    def __init__(
        self,
        build: Callable[[Sequence[StockUpdate], ApiAccount], list[HttpRequest]],
        check: Callable[[int, bytes], None],
        batch_size: int,
        account: ApiAccount,
        connection: Connection,
        bucket: TokenBucket,
        rate_limited_s: float = 1.0,
    ) -> None:
        self._build = build
        self._check = check
        self.chunk = max(1, batch_size)
        self._account = account
        self._connection = connection
        self._bucket = bucket
        self._rate_limited_s = rate_limited_s
        self._turn_taken = False

    async def wait_turn(self) -> None:
        """Wait for the next call the mall's rate allows, and keep it for the next ``send``:
        what is read after this goes out at once (an urgent push reads the newest values)."""
        if not self._turn_taken:
            await self._bucket.take()
            self._turn_taken = True

    async def send(self, updates: Sequence[StockUpdate]) -> None:
        try:
            requests = self._build(updates, self._account)
        except ValueError as exc:
            raise PushFailed(f"cannot make the stock request: {exc}", permanent=True) from None
        for request in requests:
            while True:
                if self._turn_taken:
                    self._turn_taken = False
                else:
                    await self._bucket.take()
                try:
                    answer = await self._connection.send(request)
                except HttpTransportError as exc:
                    raise PushFailed(str(exc)) from exc
                if answer.status == 429:
                    # nobody of this shop calls before the mall's pause ends
                    self._bucket.hold(retry_after(answer.headers) or self._rate_limited_s)
                    continue
                try:
                    self._check(answer.status, answer.body)
                except ValueError as exc:
                    raise PushFailed(
                        f"{request.method} {request.path}: {exc}",
                        permanent=answer.status in REFUSED_FOR_GOOD or 200 <= answer.status < 300,
                    ) from None
                break

    async def aclose(self) -> None:
        await self._connection.aclose()


class FileStockSender:
    """The mall's stock file(s) for the quantities, uploaded into ``directory``; ``names``
    renames the module's files (the shop's ``stock_file_name`` / ``variation_file_name``)."""

    def __init__(
        self,
        write: Callable[[Sequence[StockUpdate]], dict[str, bytes]],
        uploader: FileUploader,
        directory: str,
        names: dict[str, str],
        rows_per_file: int = 10_000,
    ) -> None:
        self._write = write
        self._uploader = uploader
        self._directory = directory
        self._names = names
        self.chunk = rows_per_file

    async def wait_turn(self) -> None:
        pass  # an upload waits for nobody's rate

    async def send(self, updates: Sequence[StockUpdate]) -> None:
        """One upload (``chunk`` keeps it within the mall's limit): a second file of the same
        name could not be sent before the mall picked up the first anyway."""
        try:
            files = self._write(updates)
        except ValueError as exc:
            raise PushFailed(f"cannot write the stock file: {exc}", permanent=True) from None
        try:
            await self._uploader.upload(
                self._directory,
                {self._names.get(name, name): data for name, data in files.items()},
            )
        except UploadFailed as exc:
            raise PushFailed(str(exc)) from None

    async def aclose(self) -> None:
        pass
