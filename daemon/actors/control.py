"""The control websocket: hello and token first, then requests in order and events.

Each connection is one session: a reader that handles requests one at a time (replies come
in request order), a writer that owns the socket's send side, and, once subscribed, a
forwarder of ledger events. Frames above the size limit are refused by the websocket layer
(close 1009) before they are buffered whole.
"""

from __future__ import annotations

import hmac
import logging

import msgspec
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from daemon.commands import ChangeShops, Command, LedgerRequest, LedgerUnavailable, submit
from daemon.events import EventBus, StatusBoard
from daemon.transfers import MAX_OPEN_UPLOADS, Transfers
from daemon.wiring import StatePaths
from protocols import control

log = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_BAD_VERSION = 4400
OUTGOING_BUFFER = 64


class ServerInfo(msgspec.Struct, frozen=True):
    """What ``status`` says of the daemon itself, beside what the ledger says."""

    version: str
    started_at: str
    database: str


class ControlSettings(msgspec.Struct, frozen=True):
    host: str
    port: int
    max_frame_bytes: int
    hello_timeout_s: float


async def control_server(
    settings: ControlSettings,
    token: str,
    ledger: trio.MemorySendChannel[LedgerRequest],
    bus: EventBus,
    board: StatusBoard,
    info: ServerInfo,
    paths: StatePaths,
    *,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    upload_slots = trio.CapacityLimiter(MAX_OPEN_UPLOADS)

    async def handler(request: WebSocketRequest) -> None:
        # nothing a client does may end the server: a session's failure ends that session
        try:
            ws = await request.accept()
            with ledger.clone() as session_ledger:
                transfers = Transfers(session_ledger, paths, nursery, upload_slots)
                await session(ws, settings, token, session_ledger, bus, board, info, transfers)
        except* (ConnectionClosed, LedgerUnavailable, trio.BrokenResourceError):
            pass
        except* Exception:
            log.exception("control session failed")

    async with ledger, trio.open_nursery() as nursery:
        server = await nursery.start(
            lambda task_status: serve_websocket(
                handler,
                settings.host,
                settings.port,
                ssl_context=None,
                max_message_size=settings.max_frame_bytes,
                task_status=task_status,
            )
        )
        task_status.started((settings.host, server.port))


async def session(
    ws: WebSocketConnection,
    settings: ControlSettings,
    token: str,
    ledger: trio.MemorySendChannel[LedgerRequest],
    bus: EventBus,
    board: StatusBoard,
    info: ServerInfo,
    transfers: Transfers,
) -> None:
    hello = await _await_hello(ws, settings.hello_timeout_s, token)
    if hello is None:
        return
    actor = f"user:{hello.client or 'client'}"
    await ws.send_message(
        control.encoder.encode(
            control.Welcome(version=control.PROTOCOL_VERSION, server=info.version)
        ).decode()
    )
    outgoing_send, outgoing_receive = trio.open_memory_channel[control.ServerMessage](
        OUTGOING_BUFFER
    )
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_write, ws, outgoing_receive)
            forwarder: trio.CancelScope | None = None
            async with outgoing_send:
                while True:
                    try:
                        frame = await ws.get_message()
                    except ConnectionClosed:
                        break
                    try:
                        request = control.client_decoder.decode(frame)
                    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                        await outgoing_send.send(
                            control.Error(id=None, code="bad_frame", message=f"bad frame: {exc}")
                        )
                        continue
                    match request:
                        case control.Hello():
                            reply: control.ServerMessage = control.Error(
                                id=None, code="bad_frame", message="hello was already received"
                            )
                        case control.Subscribe():
                            if forwarder is not None:
                                forwarder.cancel()
                            forwarder = await nursery.start(
                                _forward_events,
                                bus,
                                frozenset(request.topics),
                                outgoing_send.clone(),
                            )
                            reply = control.Subscribed(id=request.id, topics=request.topics)
                        case _ if isinstance(request, control.TRANSFER_REQUESTS):
                            reply = await transfers.handle(request, actor)
                        case _:
                            reply = await _handle(request, actor, ledger, board, info)
                    await outgoing_send.send(reply)
            nursery.cancel_scope.cancel()
    except ConnectionClosed:
        pass
    finally:
        with trio.CancelScope(shield=True):
            await transfers.abandon_uploads(actor)


async def _await_hello(
    ws: WebSocketConnection, hello_window_s: float, token: str
) -> control.Hello | None:
    frame: str | bytes | None = None
    with trio.move_on_after(hello_window_s):
        try:
            frame = await ws.get_message()
        except ConnectionClosed:
            return None
    if frame is None:
        await _refuse(ws, CLOSE_UNAUTHORIZED, "unauthorized", "no hello within the time limit")
        return None
    try:
        hello = control.client_decoder.decode(frame)
    except (msgspec.DecodeError, msgspec.ValidationError):
        hello = None
    if not isinstance(hello, control.Hello):
        await _refuse(
            ws, CLOSE_UNAUTHORIZED, "unauthorized", "the first frame must be a hello with the token"
        )
        return None
    if not hmac.compare_digest(hello.token.encode(), token.encode()):
        await _refuse(ws, CLOSE_UNAUTHORIZED, "unauthorized", "wrong token")
        return None
    if hello.version != control.PROTOCOL_VERSION:
        await _refuse(
            ws,
            CLOSE_BAD_VERSION,
            "unsupported_version",
            f"protocol version {hello.version} is not supported; this daemon speaks {control.PROTOCOL_VERSION}",
        )
        return None
    return hello


async def _refuse(
    ws: WebSocketConnection, close_code: int, code: control.ErrorCode, message: str
) -> None:
    try:
        await ws.send_message(
            control.encoder.encode(control.Error(id=None, code=code, message=message)).decode()
        )
        await ws.aclose(code=close_code, reason=message[:120])
    except ConnectionClosed:
        pass


async def _handle(
    request: control.Request,
    actor: str,
    ledger: trio.MemorySendChannel[LedgerRequest],
    board: StatusBoard,
    info: ServerInfo,
) -> control.ServerMessage:
    """A request the ledger answers; the daemon's own facts and the shops' actors are added
    to status replies here, where they are known."""
    command: Command = request
    if isinstance(request, control.ShopSet | control.ShopsApply):
        # what waits at stopped shops is known to their intake actors, not to the ledger
        command = ChangeShops(request=request, backlogs=board.backlogs())
    try:
        result = await submit(ledger, command, actor)
    except LedgerUnavailable as exc:
        return control.Error(id=request.id, code="unavailable", message=str(exc))
    match result:
        case control.StatusReply():
            return msgspec.structs.replace(
                result,
                version=info.version,
                started_at=info.started_at,
                database=info.database,
                shops=tuple(_with_actors(shop, board) for shop in result.shops),
            )
        case control.ShopReply(status=control.ShopStatus() as status):
            return msgspec.structs.replace(result, status=_with_actors(status, board))
        case (
            control.Error()
            | control.Pong()
            | control.SkuReply()
            | control.SkuListReply()
            | control.StockReply()
            | control.ListingsReply()
            | control.ShopsReply()
            | control.ShopReply()
            | control.OrdersReply()
            | control.OrderReply()
            | control.JobsReply()
            | control.JobReply()
            | control.ReflectReply()
        ):
            return result
    log.error("the ledger answered %s to %s", type(result).__name__, type(request).__name__)
    return control.Error(id=request.id, code="internal", message="internal error: unexpected reply")


def _with_actors(status: control.ShopStatus, board: StatusBoard) -> control.ShopStatus:
    seen = board.intake(status.id)
    intake = msgspec.structs.replace(
        status.intake,
        backlog=seen.backlog,
        backlog_oldest=seen.backlog_oldest,
        quarantined=seen.quarantined,
        ignored=seen.ignored,
        filed=seen.filed,
        last_error=seen.last_error,
    )
    seen_reflect = board.reflect(status.id)
    reflection = msgspec.structs.replace(
        status.reflection,
        next_run=seen_reflect.next_run,
        next_bulk_sync=seen_reflect.next_bulk_sync,
        pushed=seen_reflect.pushed,
        last_error=seen_reflect.last_error,
    )
    return msgspec.structs.replace(
        status, actors=board.actors(status.id), intake=intake, reflection=reflection
    )


async def _write(
    ws: WebSocketConnection, outgoing: trio.MemoryReceiveChannel[control.ServerMessage]
) -> None:
    encoder = msgspec.json.Encoder()
    async with outgoing:
        async for message in outgoing:
            await ws.send_message(encoder.encode(message).decode())


async def _forward_events(
    bus: EventBus,
    topics: frozenset[control.Topic],
    outgoing: trio.MemorySendChannel[control.ServerMessage],
    *,
    task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Pass ledger events to the client; a client that reads too slowly is told to resync."""
    with trio.CancelScope() as scope, outgoing:
        subscription = bus.subscribe(topics)
        task_status.started(scope)
        try:
            async for batch in subscription.receive:
                for event in batch:
                    await outgoing.send(event)
            if subscription.dropped:
                await outgoing.send(
                    control.Resync(reason="events were dropped: this client read too slowly")
                )
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            bus.unsubscribe(subscription)
