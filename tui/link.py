"""The TUI's one connection to the daemon: an asyncio ``websockets`` client run by ONE Textual
worker (``DaemonLink.run``). It says hello with the config's token, subscribes, and turns
frames into Textual messages (``LinkChanged``, ``DaemonEvent``); replies resolve the futures of
``request`` (keyed by request id). Widgets never touch the socket: ``request`` queues the
frame for the worker's writer and waits for its reply. When the connection is lost the worker
says so and connects again, re-reading the daemon's address and token each time (a restarted
daemon with port 0 listens elsewhere)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any, Protocol

import msgspec
from textual.message import Message
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from cli.client import (
    CONNECT_TIMEOUT_S,
    ClientError,
    DaemonNotRunning,
    RequestFailed,
    daemon_address,
    no_answer,
    read_token,
    refused_connection,
    refused_hello,
    start_hint,
    strerror,
)
from daemon.config import Config
from protocols import control

CLIENT_NAME = "tui"
# what the TUI shows lives on these: status (shops, actors, intake, reflection, audits),
# stock levels, oversells, jobs, orders (the intake counts)
TOPICS: tuple[control.Topic, ...] = control.ALL_TOPICS
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0
MAX_FRAME_BYTES = 64 << 20  # a job's row messages may be long (as the CLI allows)


class LinkDown(ClientError):
    """The request could not be answered: the daemon is not connected (now, or any more)."""


class LinkChanged(Message):
    """The connection came up (``up``) or went down; ``detail`` says why, in one line."""

    def __init__(self, up: bool, detail: str) -> None:
        super().__init__()
        self.up = up
        self.detail = detail


class DaemonEvent(Message):
    """An event frame of the daemon (``control.Event``), ``Resync`` included."""

    def __init__(self, event: control.Event) -> None:
        super().__init__()
        self.event = event


Post = Callable[[Message], object]


class Link(Protocol):
    """What the app needs of a connection; ``DaemonLink`` is the real one."""

    async def run(self, post: Post) -> None:
        """The worker's body: connect, and post LinkChanged and DaemonEvent until cancelled."""

    async def request(self, message: Any) -> Any:
        """Send a request (its ``id`` is filled in) and return its reply; errors raise
        RequestFailed (the daemon said no) or LinkDown."""

    async def job_done(self, job: control.Job) -> control.Job:
        """The job once its state is ``done`` (from ``job_changed`` events)."""


class DaemonLink:
    def __init__(self, config: Config, config_file: str) -> None:
        self._config = config
        self._config_file = config_file
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._outgoing: asyncio.Queue[bytes] | None = None  # None: not connected
        self._job_waiters: dict[int, list[asyncio.Future[control.Job]]] = {}

    async def request(self, message: Any) -> Any:
        if self._outgoing is None:
            raise LinkDown("not connected to the daemon")
        message = msgspec.structs.replace(message, id=next(self._ids))
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[message.id] = reply
        self._outgoing.put_nowait(control.encoder.encode(message))
        try:
            return await reply
        finally:
            self._pending.pop(message.id, None)

    async def job_done(self, job: control.Job) -> control.Job:
        if job.state == "done":
            return job
        done: asyncio.Future[control.Job] = asyncio.get_running_loop().create_future()
        self._job_waiters.setdefault(job.id, []).append(done)
        try:
            # the job may have finished before the waiter was there: ask once
            shown: control.Job = (await self.request(control.JobShow(id=0, job=job.id))).job
            if shown.state == "done":
                return shown
            return await done
        finally:
            waiters = self._job_waiters.get(job.id, [])
            if done in waiters:
                waiters.remove(done)
            if not waiters:
                self._job_waiters.pop(job.id, None)

    async def run(self, post: Post) -> None:
        delay = RETRY_FIRST_S
        while True:
            try:
                async with _Session(self._config) as ws:
                    delay = RETRY_FIRST_S
                    post(LinkChanged(True, ""))
                    await self._serve(ws, post)
                detail = "the daemon closed the connection"
            except ClientError as exc:
                detail = str(exc)
                if isinstance(exc, DaemonNotRunning):
                    detail += f" {start_hint(self._config_file)}"
            finally:
                self._drop_connection()
            post(LinkChanged(False, " ".join(detail.split())))
            # the daemon may be restarting: retry soon, then less often while it stays away
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def _serve(self, ws: ClientConnection, post: Post) -> None:
        outgoing: asyncio.Queue[bytes] = asyncio.Queue()
        self._outgoing = outgoing
        writer = asyncio.create_task(self._write(ws, outgoing))
        try:
            await self._read(ws, post)
        finally:
            writer.cancel()
            try:
                await writer
            except (asyncio.CancelledError, ConnectionClosed):
                pass

    @staticmethod
    async def _write(ws: ClientConnection, outgoing: asyncio.Queue[bytes]) -> None:
        while True:
            await ws.send((await outgoing.get()).decode())

    async def _read(self, ws: ClientConnection, post: Post) -> None:
        try:
            async for frame in ws:
                try:
                    message = control.server_decoder.decode(frame)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    # a frame of a newer daemon this client cannot read: an event is
                    # skipped, a reply fails its request rather than leave it waiting
                    self._unreadable(frame, exc)
                    continue
                self._dispatch(message, post)
        except ConnectionClosed:
            return

    def _dispatch(self, message: control.ServerMessage, post: Post) -> None:
        if isinstance(message, control.Event):
            if isinstance(message, control.JobChanged) and message.job.state == "done":
                for waiter in self._job_waiters.pop(message.job.id, []):
                    if not waiter.done():
                        waiter.set_result(message.job)
            if isinstance(message, control.Resync):
                self._resubscribe()
            post(DaemonEvent(message))
            return
        request_id = getattr(message, "id", None)
        reply = self._pending.get(request_id) if request_id is not None else None
        if reply is None or reply.done():
            return
        if isinstance(message, control.Error):
            reply.set_exception(RequestFailed(message))
        else:
            reply.set_result(message)

    def _unreadable(self, frame: str | bytes, exc: Exception) -> None:
        try:
            request_id = msgspec.json.decode(frame, type=_Addressed).id
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        reply = self._pending.get(request_id) if request_id is not None else None
        if reply is not None and not reply.done():
            reply.set_exception(
                ClientError(f"the daemon's answer does not read (a newer daemon?): {exc}")
            )

    def _resubscribe(self) -> None:
        """The daemon dropped us from its event stream: subscribe again (the screens re-read
        what they show on the Resync event itself); the reply matters to no one."""
        if self._outgoing is not None:
            subscribe = control.Subscribe(id=next(self._ids), topics=TOPICS)
            self._outgoing.put_nowait(control.encoder.encode(subscribe))

    def _drop_connection(self) -> None:
        self._outgoing = None
        for reply in self._pending.values():
            if not reply.done():
                reply.set_exception(LinkDown("the connection to the daemon was lost"))
        self._pending.clear()
        for waiters in self._job_waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(LinkDown("the connection to the daemon was lost"))
        self._job_waiters.clear()


class _Addressed(msgspec.Struct):
    """Only the request id of a frame that does not read as a whole."""

    id: int | None = None


class _Session:
    """``async with``: a websocket that said hello and subscribed to TOPICS; every failure to
    get there is a one-line ClientError, worded as the CLI words it."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._ws: ClientConnection | None = None

    async def __aenter__(self) -> ClientConnection:
        config = self._config
        host, port = daemon_address(config)
        where = f"{host}:{port}"
        token = read_token(config)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                ws = await connect(
                    f"ws://{host}:{port}/", max_size=MAX_FRAME_BYTES, open_timeout=None
                )
                self._ws = ws
                await ws.send(
                    control.encoder.encode(control.Hello(token=token, client=CLIENT_NAME)).decode()
                )
                welcome = control.server_decoder.decode(await ws.recv())
                if isinstance(welcome, control.Error):
                    raise refused_hello(config, where, welcome.code, welcome.message)
                await ws.send(
                    control.encoder.encode(control.Subscribe(id=0, topics=TOPICS)).decode()
                )
                while not isinstance(
                    control.server_decoder.decode(await ws.recv()), control.Subscribed
                ):
                    pass
        except TimeoutError as exc:
            await self._close()
            raise ClientError(no_answer(where, CONNECT_TIMEOUT_S)) from exc
        except ConnectionClosed as exc:
            await self._close()
            code = exc.rcvd.code if exc.rcvd else None
            closed = f"it closed the connection at hello ({code})"
            raise refused_hello(config, where, "", closed, code) from exc
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            await self._close()
            raise ClientError(
                f"{where} speaks websocket but not the zaiko control protocol: {exc}"
            ) from exc
        except InvalidStatus as exc:
            raise ClientError(
                f"{where} answered HTTP {exc.response.status_code} instead of a zaiko websocket: "
                "another program listens on the port of [control] listen"
            ) from exc
        except ConnectionRefusedError as exc:
            raise refused_connection(config, where) from exc
        except (OSError, InvalidHandshake) as exc:
            await self._close()
            raise ClientError(f"cannot reach the daemon at {where}: {strerror(exc)}") from exc
        except ClientError:
            await self._close()
            raise
        return ws

    async def __aexit__(self, *exc_info: object) -> None:
        await self._close()

    async def _close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
