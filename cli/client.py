"""A control-protocol client for scripts and the CLI: connect, hello, request, events."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Container
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection, open_websocket

from daemon.config import Config, split_listen
from protocols import control


class ClientError(Exception):
    """A one-line failure to show the operator."""


class RequestFailed(ClientError):
    def __init__(self, error: control.Error) -> None:
        field = f" ({error.field})" if error.field else ""
        super().__init__(f"{error.code}{field}: {error.message}")
        self.error = error


def daemon_address(config: Config) -> tuple[str, int]:
    host, port = config.listen
    if port == 0:
        try:
            host, port = split_listen(config.address_file.read_text().strip())
        except FileNotFoundError as exc:
            raise ClientError(
                f"the daemon listens on a random port but {config.address_file} is missing: is it running?"
            ) from exc
    return host, port


class ControlClient:
    def __init__(self, ws: WebSocketConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self.events: list[control.Event] = []

    def next_id(self) -> int:
        return next(self._ids)

    async def send(self, message: control.ClientMessage) -> None:
        await self._ws.send_message(control.encoder.encode(message).decode())

    async def receive(self) -> control.ServerMessage:
        try:
            frame = await self._ws.get_message()
        except ConnectionClosed as exc:
            reason = exc.reason
            detail = f" ({reason.code} {reason.reason or ''})".rstrip() if reason else ""
            raise ClientError(f"the daemon closed the connection{detail}") from exc
        message: control.ServerMessage = control.server_decoder.decode(frame)
        return message

    async def next_event(self) -> control.Event:
        """The next event, from those that arrived during requests first."""
        if self.events:
            return self.events.pop(0)
        while True:
            message = await self.receive()
            if isinstance(message, control.Error):
                raise RequestFailed(message)
            if isinstance(message, control.Event):
                return message

    async def request(self, message: Any) -> Any:
        """Send a request (its ``id`` is filled in) and return its reply; errors raise."""
        message = msgspec.structs.replace(message, id=self.next_id())
        await self.send(message)
        return await self.reply_to({message.id})

    async def reply_to(self, ids: Container[int]) -> Any:
        """The next reply to one of the requests ``ids`` already sent; errors raise."""
        while True:
            reply = await self.receive()
            match reply:
                case control.Error(id=rid) if rid is None or rid in ids:
                    raise RequestFailed(reply)
                case _ if isinstance(reply, control.Event):
                    self.events.append(reply)  # every event is kept for next_event()
                case _ if getattr(reply, "id", None) in ids:
                    return reply


@asynccontextmanager
async def connect(config: Config, client_name: str = "cli") -> AsyncIterator[ControlClient]:
    host, port = daemon_address(config)
    try:
        token = config.token_file.read_text().strip()
    except OSError as exc:
        raise ClientError(
            f"cannot read the control token {config.token_file}: {exc.strerror}"
        ) from exc
    connected = False
    try:
        async with open_websocket(
            host, port, "/", use_ssl=False, message_queue_size=64, max_message_size=64 << 20
        ) as ws:
            client = ControlClient(ws)
            await client.send(control.Hello(token=token, client=client_name))
            welcome = await client.receive()
            if isinstance(welcome, control.Error):
                raise RequestFailed(welcome)
            connected = True
            yield client
    except (OSError, HandshakeError) as exc:
        if connected:
            raise
        raise ClientError(
            f"cannot reach the daemon at {host}:{port}: {exc} (is it running?)"
        ) from exc
    except trio.TooSlowError as exc:
        raise ClientError(f"the daemon at {host}:{port} did not answer") from exc
