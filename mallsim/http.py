"""One ASGI app for every simulated mall API, plus the admin endpoints.

Routing: ``/{shop_id}/<the mall's own path>`` goes to that shop (so a shop's API base URL is
``http://HOST:PORT/{shop_id}``); ``/_admin/...`` is the simulator's own. For a shop call:
down → 503; slow → delay; credentials (as the module writes them) → 401 in the mall's error
shape; rate limit (token bucket per shop at the mall's ``api_requests_per_s``) → 429; 5xx
switch → 500; then the order-API call (the module's ``read_order_call`` →
``render_order_answer``, in pages of ``sim.order_page_size``) or a stock update
(``parse_stock_request`` → the shop's shown quantities).
"""

from __future__ import annotations

import json
import logging
import math
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal

import msgspec
import trio

from mallsim import feeds
from mallsim.config import ConfigError, Faults, has_other_marketplaces, waiting_state
from mallsim.customers import Deliver, cancel_order, foreign_order, new_order, pay_order
from mallsim.malls import Mall, NotSupported, Response, ShopApi
from mallsim.state import ShopState, SimState
from protocols.malls.base import HttpRequest, MailError

log = logging.getLogger("mallsim.http")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class FaultPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``POST /_admin/faults`` body: the shop and the switches to change."""

    shop: str
    down: bool | None = None
    slow_s: float | None = None
    error_5xx: bool | None = None
    reject_auth: bool | None = None
    drop_files: bool | None = None


class EditIn(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /_admin/edit``: someone edits a quantity in the mall's own admin (RMS, the
    store manager): the shop shows ``shown`` from now on, and the merchant is not told."""

    shop: str
    sku: str
    shown: int


class OrderLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: str
    quantity: int = 1


class OrderIn(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /_admin/orders``: a customer buys these lines now: a new order, or one that
    waits for payment (``status``: the mall's waiting state), or one of the seller account's
    other marketplace (``foreign``: Amazon; it moves no stock here)."""

    shop: str
    lines: list[OrderLineIn]
    status: Literal["new", "pending", "unpaid"] = "new"
    foreign: bool = False


class CancelIn(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /_admin/cancel``: the customer cancels this order; ``/_admin/pay``: the
    customer pays this waiting order."""

    shop: str
    order_no: str


def apply_fault_patch(state: SimState, patch: FaultPatch) -> Faults:
    shop = state.shops.get(patch.shop)
    if shop is None:
        raise KeyError(f"unknown shop {patch.shop!r}")
    if patch.slow_s is not None and not 0 <= patch.slow_s <= 600:
        raise ValueError(f"slow_s must be 0–600 seconds, got {patch.slow_s}")
    changes = {
        k: v for k, v in msgspec.structs.asdict(patch).items() if k != "shop" and v is not None
    }
    shop.faults = msgspec.structs.replace(shop.faults, **changes)
    log.info("shop %s: faults now %s", shop.id, msgspec.to_builtins(shop.faults))
    state.changed()
    return shop.faults


def _json(status: int, doc: Any) -> Response:
    body = json.dumps(doc, ensure_ascii=False, indent=None).encode()
    return Response(status, (("content-type", "application/json; charset=utf-8"),), body)


class MallApp:
    """The ASGI application."""

    def __init__(self, state: SimState, hand_over: Deliver) -> None:
        self.state = state
        self.hand_over = hand_over
        self._api: dict[str, ShopApi] = {}

    def shop_api(self, shop: ShopState) -> ShopApi:
        api = self._api.get(shop.id)
        if api is None:
            try:
                api = ShopApi.learn(Mall(shop.kind), shop.cfg.api_secret, shop.cfg.seller_id)
            except ValueError as exc:  # the module refuses this shop's credentials
                raise ConfigError(f"shop {shop.id}: api_secret/seller_id: {exc}") from None
            self._api[shop.id] = api
        return api

    def learn_all(self) -> None:
        """Check every shop's API credentials against its module at start (one-line error)."""
        for shop in self.state.shops.values():
            self.shop_api(shop)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        # a mall counts a request against its rate when it arrives, not when its (large)
        # body has been read and parsed
        arrived = self.state.rate_clock()
        body, too_big = await self._read_body(receive)
        if too_big:
            resp = _json(413, {"error": "request body too large"})
        else:
            resp = await self.handle(scope, body, arrived)
        await send(
            {
                "type": "http.response.start",
                "status": resp.status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in resp.headers],
            }
        )
        await send({"type": "http.response.body", "body": resp.body})

    async def _read_body(self, receive: Receive) -> tuple[bytes, bool]:
        limit = self.state.cfg.sim.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return b"", True
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks), False

    async def handle(self, scope: Scope, body: bytes, arrived: float | None = None) -> Response:
        # The raw path: modules percent-encode ids into it and decode them themselves.
        raw_path = scope.get("raw_path")
        path: str = raw_path.decode("latin-1") if raw_path else scope["path"]
        method: str = scope["method"].upper()
        if path == "/_admin" or path.startswith("/_admin/"):
            return await self.admin(method, path, body)
        query = tuple(
            urllib.parse.parse_qsl(
                scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True
            )
        )
        if path.startswith(feeds.FILES_PREFIX):
            return feeds.file_request(self.state, method, path, dict(query), body)
        shop_id, _, rest = path.lstrip("/").partition("/")
        shop = self.state.shops.get(shop_id)
        if shop is None:
            return _json(404, {"error": f"no shop {shop_id!r} (paths are /{{shop_id}}/...)"})
        headers = tuple(
            (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]
        )
        req = HttpRequest(method=method, path="/" + rest, query=query, headers=headers, body=body)
        host = dict(headers).get("host", "127.0.0.1")
        return await self.shop_call(shop, req, f"http://{host}", arrived)

    async def shop_call(
        self, shop: ShopState, req: HttpRequest, base_url: str = "", arrived: float | None = None
    ) -> Response:
        shop.requests += 1
        mall = Mall(shop.kind)
        feeds.settle(self.state, shop, trio.current_time())
        faults = shop.faults
        if faults.down:
            self.state.changed()
            return Response(503, (("content-type", "text/plain"),), b"503 Service Unavailable\n")
        if faults.slow_s:
            await trio.sleep(faults.slow_s)
        try:
            api = self.shop_api(shop)
            call = api.classify(mall, req)
        except NotSupported as exc:
            self.state.changed()
            return _json(501, {"error": str(exc)})
        if faults.reject_auth or not api.authorised(call, req):
            shop.auth_rejected += 1
            self.state.changed()
            return mall.error(401, "authentication failed")
        if shop.bucket is not None:
            wait = shop.bucket.take(arrived)
            if wait > 0:
                shop.throttled += 1
                self.state.changed()
                resp = mall.error(429, "too many requests")
                retry = (("retry-after", str(max(1, math.ceil(wait)))),)
                return Response(resp.status, resp.headers + retry, resp.body)
        if faults.error_5xx:
            self.state.changed()
            return mall.error(500, "internal server error (simulated)")
        try:
            if call.kind == "stock_read":
                resp = mall.stock_read_ok(call.read_items, shop)
            elif call.kind == "feeds":
                resp = feeds.feed_call(self.state, shop, mall, call, base_url, trio.current_time())
            elif call.order_call is not None:
                try:
                    answer = self.state.order_answer(shop.id, call.order_call)
                except KeyError as exc:
                    self.state.changed()
                    return mall.error(404, str(exc.args[0]))
                resp = mall.order_answer_ok(call.order_call, answer)
            elif call.order_error and not mall.has("parse_stock_request"):
                raise ValueError(call.order_error)
            else:
                updates = mall.parse_stock_request(req)
                shop_updates = [(u.item_id, tuple(u.variation), "", u.quantity) for u in updates]
                self.state.apply_quantities(shop.id, shop_updates)
                resp = mall.stock_ok(updates)
        except NotSupported as exc:
            resp = _json(501, {"error": str(exc)})
        except (ValueError, KeyError, TypeError, MailError, msgspec.MsgspecError) as exc:
            shop.bad_requests += 1
            why = str(exc) or type(exc).__name__
            if call.order_error and why != call.order_error:
                why += f" (read as an order call: {call.order_error})"
            resp = mall.error(400, why)
        except Exception as exc:  # a module bug: say so, keep serving
            log.exception("shop %s: %s %s failed", shop.id, req.method, req.path)
            resp = _json(500, {"error": f"mallsim: {type(exc).__name__}: {exc}"})
        self.state.changed()
        return resp

    async def place_order(self, body: bytes) -> Response:
        req = msgspec.json.decode(body, type=OrderIn)
        shop = self.state.shops.get(req.shop)
        if shop is None:
            return _json(404, {"error": f"unknown shop {req.shop!r}"})
        if req.status != "new" and req.status != waiting_state(shop.kind):
            return _json(400, {"error": f"{shop.kind} has no {req.status} orders to simulate"})
        if req.foreign and not has_other_marketplaces(shop.kind):
            return _json(400, {"error": f"{shop.kind} shows no orders of other marketplaces"})
        # a feed that is due landed before this buyer looks
        feeds.settle(self.state, shop, trio.current_time())
        picks = []
        for line in req.lines:
            item = shop.items.get(line.sku)
            if item is None:
                return _json(404, {"error": f"shop {shop.id} does not list {line.sku!r}"})
            if line.quantity < 1 or (not req.foreign and line.quantity > item.shown):
                return _json(
                    409,
                    {"error": f"{line.sku}: shop shows {item.shown}, cannot buy {line.quantity}"},
                )
            picks.append((item, line.quantity))
        if not picks:
            return _json(400, {"error": "an order needs at least one line"})
        now = trio.current_time()
        if req.foreign:
            order = foreign_order(self.state, shop, picks, now)
            return _json(200, {"order_no": order.order_no, "oversold": 0})
        oversold_before = sum(self.state.merchants[shop.cfg.merchant].oversold.values())
        order = new_order(self.state, shop, picks, now, req.status)
        await self.hand_over(shop, order, now)
        oversold = sum(self.state.merchants[shop.cfg.merchant].oversold.values()) - oversold_before
        return _json(200, {"order_no": order.order_no, "oversold": oversold})

    async def change_order(self, path: str, body: bytes) -> Response:
        """``/_admin/cancel`` or ``/_admin/pay`` an order the shop's mall holds."""
        req = msgspec.json.decode(body, type=CancelIn)
        shop = self.state.shops.get(req.shop)
        if shop is None:
            return _json(404, {"error": f"unknown shop {req.shop!r}"})
        kept = shop.orders.get(req.order_no)
        if kept is None:
            return _json(404, {"error": f"shop {shop.id} has no order {req.order_no!r}"})
        now = trio.current_time()
        if path == "/_admin/pay":
            if kept.order.status not in ("pending", "unpaid"):
                return _json(409, {"error": f"order {req.order_no} is {kept.order.status}"})
            await self.hand_over(shop, pay_order(self.state, shop, kept.order), now)
            return _json(200, {"order_no": req.order_no, "status": "new"})
        if kept.order.status == "cancelled":
            return _json(409, {"error": f"order {req.order_no} is already cancelled"})
        await self.hand_over(shop, cancel_order(self.state, shop, kept.order), now)
        return _json(200, {"order_no": req.order_no, "status": "cancelled"})

    async def admin(self, method: str, path: str, body: bytes) -> Response:
        if method == "POST" and path in ("/_admin/orders", "/_admin/cancel", "/_admin/pay"):
            try:
                if path == "/_admin/orders":
                    return await self.place_order(body)
                return await self.change_order(path, body)
            except msgspec.MsgspecError as exc:
                return _json(400, {"error": f"{path}: {exc}"})
            except NotSupported as exc:
                return _json(501, {"error": str(exc)})
        if path == "/_admin/state" and method == "GET":
            for shop in self.state.shops.values():
                feeds.settle(self.state, shop, trio.current_time())
            return _json(200, self.state.snapshot())
        if path == "/_admin/faults" and method == "POST":
            try:
                patch = msgspec.json.decode(body, type=FaultPatch)
                faults = apply_fault_patch(self.state, patch)
            except msgspec.MsgspecError as exc:
                return _json(400, {"error": f"faults: {exc}"})
            except KeyError as exc:
                return _json(404, {"error": str(exc.args[0])})
            except ValueError as exc:
                return _json(400, {"error": str(exc)})
            return _json(200, {"shop": patch.shop, "faults": msgspec.to_builtins(faults)})
        if path == "/_admin/edit" and method == "POST":
            try:
                edit = msgspec.json.decode(body, type=EditIn)
            except msgspec.MsgspecError as exc:
                return _json(400, {"error": f"edit: {exc}"})
            edited = self.state.shops.get(edit.shop)
            item = edited.items.get(edit.sku) if edited is not None else None
            if item is None:
                return _json(404, {"error": f"shop {edit.shop!r} does not list {edit.sku!r}"})
            if edit.shown < 0:
                return _json(400, {"error": f"shown must be 0 or more, got {edit.shown}"})
            item.shown = edit.shown
            self.state.changed()
            log.info(
                "shop %s: %s edited in the mall's admin to %d", edit.shop, edit.sku, edit.shown
            )
            return _json(200, {"shop": edit.shop, "sku": edit.sku, "shown": edit.shown})
        if path == "/_admin/health" and method == "GET":
            return _json(200, {"ok": True})
        return _json(404, {"error": f"no admin endpoint {method} {path}"})
