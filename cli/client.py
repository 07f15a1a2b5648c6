"""A control-protocol client for scripts and the CLI: connect, hello, request, events."""

from __future__ import annotations

import itertools
import math
import os
import shlex
from collections.abc import AsyncIterator, Container
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    ConnectionTimeout,
    HandshakeError,
    WebSocketConnection,
    open_websocket,
)

from daemon.config import Config, ConfigError, split_listen
from protocols import control

CONNECT_TIMEOUT_S = 10.0  # connect, websocket handshake and hello, together
CLOSE_UNAUTHORIZED = 4401  # the daemon's close code for a missing hello or a wrong token


class ClientError(Exception):
    """A one-line failure to show the operator."""


class DaemonNotRunning(ClientError):
    """Nothing serves the config's daemon address; the CLI adds how to start the daemon."""


def start_hint(config_file: str) -> str:
    """What to add to a DaemonNotRunning message: how to start the daemon of this config."""
    return f"Start it with: zaiko --config {shlex.quote(config_file)} daemon"


class RequestFailed(ClientError):
    def __init__(self, error: control.Error) -> None:
        # the message of a refused setting already starts with its field
        named = error.field and not error.message.startswith(f"{error.field}:")
        field = f" ({error.field})" if named else ""
        super().__init__(f"{error.code}{field}: {error.message}")
        self.error = error


def daemon_address(config: Config) -> tuple[str, int]:
    host, port = config.listen
    if port == 0:
        try:
            host, port = split_listen(config.address_file.read_text().strip())
        except FileNotFoundError as exc:
            raise DaemonNotRunning(
                f"cannot find the daemon: [control] listen = {host}:0 lets it pick a port, which it "
                f"writes to {config.address_file} at start, and that file is missing: is the "
                "daemon running?"
            ) from exc
        except OSError as exc:
            raise ClientError(f"cannot read {config.address_file}: {exc.strerror}") from exc
        except ConfigError as exc:
            raise ClientError(
                f"{config.address_file} does not hold the daemon's HOST:PORT: delete it and "
                "restart the daemon"
            ) from exc
    return host, port


def read_token(config: Config) -> str:
    try:
        return config.token_file.read_text().strip()
    except FileNotFoundError as exc:
        raise DaemonNotRunning(
            f"no control token at {config.token_file}: the daemon creates it at its first "
            "start with this config's state_dir; is the daemon running?"
        ) from exc
    except OSError as exc:
        raise ClientError(
            f"cannot read the control token {config.token_file}: {exc.strerror} (run zaiko as "
            "the user the daemon runs as)"
        ) from exc


def strerror(exc: BaseException) -> str:
    """What an OSError says, without Python's wrapping: trio reports a failed connect as
    "all attempts … failed" caused by a group of the real errors, and trio_websocket wraps
    that in a HandshakeError."""
    for error in _causes(exc):
        if isinstance(error, OSError) and error.errno is not None:
            return os.strerror(error.errno) if error.errno > 0 else str(error.strerror)
    return str(exc) or type(exc).__name__


def _causes(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    pending = [exc]
    while pending and len(found) < 20:
        error = pending.pop(0)
        found.append(error)
        if isinstance(error, BaseExceptionGroup):
            pending.extend(error.exceptions)
        if error.__cause__ is not None:
            pending.append(error.__cause__)
    return found


def unreachable(exc: BaseException, config: Config, where: str, timeout_s: float) -> ClientError:
    """Why the daemon's address does not answer as a zaiko daemon, in one line."""
    if isinstance(exc, ConnectionRejected):
        return ClientError(
            f"{where} answered HTTP {exc.status_code} instead of a zaiko websocket: another "
            "program listens on the port of [control] listen"
        )
    if isinstance(exc, ConnectionTimeout):
        return ClientError(no_answer(where, timeout_s))
    if any(isinstance(error, ConnectionRefusedError) for error in _causes(exc)):
        return refused_connection(config, where)
    return ClientError(f"cannot reach the daemon at {where}: {strerror(exc)}")


def refused_connection(config: Config, where: str) -> DaemonNotRunning:
    stale = (
        f" (the address is from {config.address_file}, left by a daemon that did not stop cleanly?)"
        if config.listen[1] == 0
        else ""
    )
    return DaemonNotRunning(
        f"cannot reach the daemon at {where}: connection refused, nothing listens there"
        f"{stale}: is the daemon running?"
    )


def no_answer(where: str, timeout_s: float) -> str:
    return (
        f"the daemon at {where} did not answer within {timeout_s:g} s: is it stuck, or does "
        "another program listen on that port?"
    )


def refused_hello(
    config: Config, where: str, code: str, message: str, close_code: int | None = None
) -> ClientError:
    if code == "unauthorized" or close_code == CLOSE_UNAUTHORIZED:
        return ClientError(
            f"the daemon at {where} refused the control token in {config.token_file} (close "
            f"{CLOSE_UNAUTHORIZED}): the token file does not match the running daemon's, which "
            f"was started with another state_dir than {config.state_dir} (or the file changed "
            "since); give zaiko the daemon's own config (--config or ZAIKO_CONFIG)"
        )
    return ClientError(f"the daemon at {where} refused this client: {message}")


class ControlClient:
    def __init__(self, ws: WebSocketConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self.events: list[control.Event] = []

    def next_id(self) -> int:
        return next(self._ids)

    async def send(self, message: control.ClientMessage) -> None:
        try:
            await self._ws.send_message(control.encoder.encode(message).decode())
        except ConnectionClosed as exc:
            raise ClientError(f"the daemon closed the connection{_closed_detail(exc)}") from exc

    async def receive(self) -> control.ServerMessage:
        try:
            frame = await self._ws.get_message()
        except ConnectionClosed as exc:
            raise ClientError(f"the daemon closed the connection{_closed_detail(exc)}") from exc
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


def _closed_detail(exc: ConnectionClosed) -> str:
    reason = exc.reason
    return f" ({reason.code} {reason.reason or ''})".replace(" )", ")") if reason else ""


@asynccontextmanager
async def connect(
    config: Config, client_name: str = "cli", *, timeout_s: float | None = None
) -> AsyncIterator[ControlClient]:
    """A client that said hello; every failure to get there is a one-line ClientError."""
    timeout_s = CONNECT_TIMEOUT_S if timeout_s is None else timeout_s
    host, port = daemon_address(config)
    where = f"{host}:{port}"
    token = read_token(config)
    # One deadline for connect, handshake and hello. trio_websocket's own connect_timeout is
    # not enough: when it fires, its reader task still waits for a silent peer to speak.
    answer = trio.CancelScope(deadline=trio.current_time() + timeout_s)
    connected = False
    try:
        with answer:
            async with open_websocket(
                host,
                port,
                "/",
                use_ssl=False,
                message_queue_size=64,
                max_message_size=64 << 20,
                connect_timeout=timeout_s,
                disconnect_timeout=timeout_s,
            ) as ws:
                hello = control.Hello(token=token, client=client_name)
                try:
                    await ws.send_message(control.encoder.encode(hello).decode())
                    welcome = control.server_decoder.decode(await ws.get_message())
                except ConnectionClosed as exc:
                    code = exc.reason.code if exc.reason else None
                    closed = f"it closed the connection at hello{_closed_detail(exc)}"
                    raise refused_hello(config, where, "", closed, code) from exc
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    raise ClientError(
                        f"{where} speaks websocket but not the zaiko control protocol: {exc}"
                    ) from exc
                if isinstance(welcome, control.Error):
                    raise refused_hello(config, where, welcome.code, welcome.message)
                answer.deadline = math.inf
                connected = True
                yield ControlClient(ws)
    except (OSError, HandshakeError) as exc:
        if not connected:
            raise unreachable(exc, config, where, timeout_s) from exc
        if isinstance(exc, HandshakeError):  # the closing handshake, after the work was done
            raise ClientError(f"the daemon at {where} did not close the connection") from exc
        raise  # the caller's own OSError (a file it reads or writes)
    if answer.cancelled_caught:
        raise ClientError(no_answer(where, timeout_s))
