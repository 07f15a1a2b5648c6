"""How a shop's quantities reach its mall: API calls (the mall module's stock requests, each
paced by the shop's token bucket, a 429's ``Retry-After`` honoured), its stock files
uploaded to the mall's server, or, for a bulk sync where the mall has one, its feed API
(Amazon). Each raises ``PushFailed`` when the mall did not take them.

A sender has two ways: ``send`` for pending pushes, ``chunk`` at a time, and ``send_bulk``
for a bulk sync, ``bulk_chunk`` at a time, up to ``bulk_parallel`` at once; ``bulk_exclusive``
says whether a bulk chunk goes the same way as pushes (then it takes the shop's turn, so that
the mall gets them in order) or its own (a feed: it is processed for minutes, and pushes must
not wait for it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import trio

from daemon.transports.files import FileUploader, StillThere, UploadFailed
from daemon.transports.http import HttpAnswer, HttpTransportError, TokenBucket
from protocols.malls._api import retry_after
from protocols.malls.base import (
    ApiAccount,
    HttpRequest,
    MallApiError,
    RateLimited,
    StockFeed,
    StockUpdate,
)

# what a mall answers when the request itself is wrong (an unknown item, a bad quantity):
# sending it again changes nothing; a 401/403 (credentials) or a 5xx may pass later
REFUSED_FOR_GOOD = frozenset({400, 404, 409, 413, 422})


class PushFailed(Exception):
    """The mall did not take the quantities this time (down, 5xx, a file not picked up yet):
    they stay pending and are sent again later. ``permanent``: it refused them for a reason
    that sending again does not change (a 4xx, a request that cannot be made): the pass goes
    on without them, and they stay pending until something changes."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        maybe_applied: bool = False,
        waiting: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        # a feed the mall had when it failed: it may apply it yet, with its older values
        self.maybe_applied = maybe_applied
        # a file mall still holds zaiko's last file (its batch has not run): no failure,
        # the file goes once that one is gone
        self.waiting = waiting


class Connection(Protocol):
    async def send(self, request: HttpRequest) -> HttpAnswer: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class MallLink:
    """A shop's way to its mall's API: the account, the connection, and the shop's pace (one
    token bucket for all of its calls, intake included)."""

    account: ApiAccount
    connection: Connection
    bucket: TokenBucket
    rate_limited_s: float = 1.0  # a 429 without Retry-After holds the shop this long

    async def call(self, request: HttpRequest, turn_taken: bool = False) -> HttpAnswer:
        """One call at the shop's pace (``turn_taken``: its turn was waited for already); a
        429 holds every call of the shop for the mall's Retry-After and sends it again.
        Raises HttpTransportError when the mall cannot be reached."""
        while True:
            if not turn_taken:
                await self.bucket.take()
            turn_taken = False
            answer = await self.connection.send(request)
            if answer.status != 429:
                return answer
            # nobody of this shop calls before the mall's pause ends
            self.bucket.hold(retry_after(answer.headers) or self.rate_limited_s)


class _BulkAsPushes:
    """A bulk sync sent the way pushes go: the same chunks, in the shop's turn (for a file
    mall, one file name: an upload at a time)."""

    chunk: int
    bulk_exclusive = True
    bulk_parallel = 1

    @property
    def bulk_chunk(self) -> int:
        return self.chunk

    async def send(self, updates: Sequence[StockUpdate]) -> None:
        raise NotImplementedError

    async def send_bulk(self, updates: Sequence[StockUpdate]) -> Mapping[int, str]:
        await self.send(updates)
        return {}


class ApiStockSender(_BulkAsPushes):
    """One acknowledged step is one API call's batch (``chunk``)."""

    def __init__(
        self,
        build: Callable[[Sequence[StockUpdate], ApiAccount], list[HttpRequest]],
        check: Callable[[int, bytes], None],
        batch_size: int,
        link: MallLink,
    ) -> None:
        self._build = build
        self._check = check
        self.chunk = max(1, batch_size)
        self.link = link
        self._turn_taken = False

    async def wait_turn(self) -> None:
        """Wait for the next call the mall's rate allows, and keep it for the next ``send``:
        what is read after this goes out at once (an urgent push reads the newest values)."""
        if not self._turn_taken:
            await self.link.bucket.take()
            self._turn_taken = True

    async def send(self, updates: Sequence[StockUpdate]) -> None:
        try:
            requests = self._build(updates, self.link.account)
        except ValueError as exc:
            raise PushFailed(f"cannot make the stock request: {exc}", permanent=True) from None
        for request in requests:
            turn_taken, self._turn_taken = self._turn_taken, False
            try:
                answer = await self.link.call(request, turn_taken)
            except HttpTransportError as exc:
                raise PushFailed(str(exc)) from exc
            try:
                self._check(answer.status, answer.body)
            except ValueError as exc:
                raise PushFailed(
                    f"{request.method} {request.path}: {exc}",
                    permanent=answer.status in REFUSED_FOR_GOOD or 200 <= answer.status < 300,
                ) from None

    async def aclose(self) -> None:
        await self.link.connection.aclose()


class FileStockSender(_BulkAsPushes):
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
        self._sent: tuple[str, ...] = ()  # the file names of the last upload

    async def wait_turn(self) -> None:
        pass  # an upload waits for nobody's rate

    async def mall_holds_file(self) -> bool:
        """Whether the mall still holds a file of the last upload (its batch has not taken
        it yet): a look, no upload."""
        if not self._sent:
            return False
        try:
            return await self._uploader.holds(self._directory, self._sent)
        except UploadFailed as exc:
            raise PushFailed(str(exc)) from None

    async def send(self, updates: Sequence[StockUpdate]) -> None:
        """One upload (``chunk`` keeps it within the mall's limit): a second file of the same
        name could not be sent before the mall picked up the first anyway."""
        try:
            files = self._write(updates)
        except ValueError as exc:
            raise PushFailed(f"cannot write the stock file: {exc}", permanent=True) from None
        named = {self._names.get(name, name): data for name, data in files.items()}
        self._sent = tuple(named)
        try:
            await self._uploader.upload(self._directory, named)
        except StillThere as exc:
            raise PushFailed(str(exc), waiting=True) from None
        except UploadFailed as exc:
            raise PushFailed(str(exc)) from None

    async def aclose(self) -> None:
        await self._uploader.aclose()


class FeedStockSender:
    """Pushes one API call at a time (``ApiStockSender``), a bulk sync through the mall's
    feed API (``start_feed`` of the mall module: Amazon's JSON_LISTINGS_FEED), each feed
    ``feed_size`` quantities, ``parallel`` feeds at a time. A feed is acknowledged when the
    mall processed it, less what its report refused."""

    bulk_exclusive = False

    def __init__(
        self,
        items: ApiStockSender,
        start_feed: Callable[[Sequence[StockUpdate], ApiAccount], StockFeed],
        feed_size: int,
        clock: Callable[[], float],
        *,
        parallel: int = 4,
        max_wait_s: float = 4 * 3600.0,
        retries: int = 5,
    ) -> None:
        self._items = items
        self._start_feed = start_feed
        self.bulk_chunk = feed_size
        self.bulk_parallel = parallel
        self._clock = clock
        self._max_wait_s = max_wait_s
        self._retries = retries

    @property
    def chunk(self) -> int:
        return self._items.chunk

    async def wait_turn(self) -> None:
        await self._items.wait_turn()

    async def send(self, updates: Sequence[StockUpdate]) -> None:
        await self._items.send(updates)

    async def send_bulk(self, updates: Sequence[StockUpdate]) -> Mapping[int, str]:
        link = self._items.link  # the same account, connection and pace as the pushes
        try:
            feed = self._start_feed(updates, link.account)
        except ValueError as exc:
            raise PushFailed(f"cannot make the feed: {exc}", permanent=True) from None
        deadline = self._clock() + self._max_wait_s
        failures = 0
        pause = 0.0

        def failed(message: str, *, permanent: bool = False) -> PushFailed:
            return PushFailed(f"feed: {message}", permanent=permanent, maybe_applied=feed.submitted)

        while (request := feed.next_request()) is not None:
            pause = max(pause, feed.wait_s)
            if self._clock() + pause > deadline:
                raise failed(f"not done within {self._max_wait_s:.0f}s")
            if pause:
                await trio.sleep_until(self._clock() + pause)
            pause = 0.0
            # a pre-signed URL is the mall's storage, not its API: no rate of the API's
            presigned = request.path.startswith(("http://", "https://"))
            if not presigned:
                await link.bucket.take()
            try:
                answer = await link.connection.send(request)
                feed.feed(answer.status, answer.headers, answer.body)
            except RateLimited as exc:
                # the Feeds API's own limit: this feed waits, pushes keep the shop's pace
                pause = exc.retry_after or link.rate_limited_s
                continue
            except HttpTransportError as exc:
                failures += 1
                if failures > self._retries:
                    raise failed(str(exc)) from None
                pause = min(60.0, 2.0**failures)
                continue
            except MallApiError as exc:
                if answer.status in REFUSED_FOR_GOOD:
                    raise failed(str(exc), permanent=True) from None
                failures += 1
                if failures > self._retries or 200 <= answer.status < 300:
                    raise failed(str(exc)) from None
                pause = min(60.0, 2.0**failures)  # a 5xx: the feed goes on where it was
                continue
            failures = 0
        return feed.refused

    async def aclose(self) -> None:
        await self._items.aclose()


class ReadFailed(Exception):
    """What the mall shows could not be read (down, refused, an answer that does not read)."""


class ApiStockReader:
    """What a mall shows, read back through its stock API (the audit): the module's read
    requests, each paced by the shop's token bucket (shared with its pushes and intake).
    Each item asked gets its quantity, None (the mall has no such item) or -1 (the API cannot
    name it: a legacy Rakuten choice, a Yahoo code with ',' or ':'); an answer is matched to
    the item asked by its ids, else by its SKU (``join``: Amazon answers by seller SKU)."""

    def __init__(
        self,
        build: Callable[[Sequence[tuple[str, tuple[str, ...]]], ApiAccount], list[HttpRequest]],
        parse: Callable[[int, bytes], list[StockUpdate]],
        join: Callable[[str, tuple[str, ...]], str],
        link: MallLink,
    ) -> None:
        self._build = build
        self._parse = parse
        self._join = join
        self._link = link

    async def read(
        self, items: Sequence[tuple[str, tuple[str, ...]]]
    ) -> list[tuple[str, tuple[str, ...], int | None]]:
        found: dict[tuple[str, tuple[str, ...]], int | None] = dict.fromkeys(items)
        addressable = list(items)
        try:
            requests = self._build(addressable, self._link.account)
        except ValueError:
            # one item the API cannot name: the others are read all the same
            addressable = [item for item in items if self._names(item)]
            for item in items:
                if item not in addressable:
                    found[item] = -1
            requests = self._build(addressable, self._link.account) if addressable else []
        by_sku = {self._join(*item): item for item in addressable}
        for request in requests:
            try:
                answer = await self._link.call(request)
                shown = self._parse(answer.status, answer.body)
            except HttpTransportError as exc:
                raise ReadFailed(str(exc)) from exc
            except ValueError as exc:
                raise ReadFailed(f"{request.method} {request.path}: {exc}") from None
            for update in shown:
                key = (update.item_id, tuple(update.variation))
                asked = key if key in found else by_sku.get(update.item_id)
                if asked is not None:
                    found[asked] = update.quantity
        return [(item_id, variation, shown) for (item_id, variation), shown in found.items()]

    def _names(self, item: tuple[str, tuple[str, ...]]) -> bool:
        try:
            self._build([item], self._link.account)
        except ValueError:
            return False
        return True

    async def aclose(self) -> None:
        await self._link.connection.aclose()
