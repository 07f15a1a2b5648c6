"""One asyncio event loop on a thread of its own, owned by the daemon, for asyncssh (which is
asyncio only): trio code runs a coroutine there and waits for it without blocking a thread.
Cancelling the trio side cancels the coroutine (asyncssh closes its channel and connection
as it unwinds), and the wait ends at once."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

T = TypeVar("T")


class AsyncioThread:
    """Start it with ``start()`` (or as a context manager), stop it with ``close()``: the loop
    stops after the coroutines still running there are cancelled, and the thread is joined."""

    def __init__(self, name: str = "zaiko-asyncio") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            ready.set()
            try:
                loop.run_forever()
                tasks = asyncio.all_tasks(loop)
                for task in tasks:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name=self._name, daemon=True)
        self._thread.start()
        ready.wait()

    def close(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = self._loop = None

    def __enter__(self) -> AsyncioThread:
        # the thread starts with the first ``run``: a daemon without SFTP shops has none
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def run(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run ``make()`` on the loop and return its result (or raise its exception)."""
        self.start()
        loop = self._loop
        assert loop is not None

        async def wrapped() -> T:
            return await make()

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(wrapped(), loop)
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()

        def wake(_: object) -> None:
            try:
                token.run_sync_soon(done.set)
            except trio.RunFinishedError:
                pass

        future.add_done_callback(wake)
        try:
            await done.wait()
        finally:
            if not future.done():
                future.cancel()
        return future.result()
