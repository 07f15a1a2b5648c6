"""The simulator's one view of a mall module (``protocols.malls.<kind>``).

Everything mallsim asks of a module goes through ``Mall``, so the contract's details
(argument shapes, error shapes) are adapted in this one place. Which functions a module has
is checked with ``hasattr`` at call time: a kind works as soon as its codec lands.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import ModuleType
from typing import Any, Literal

import msgspec

from mallsim.config import waiting_state
from protocols.malls import module
from protocols.malls._api import OrderAnswer, OrderCall
from protocols.malls.base import (
    ApiAccount,
    Capability,
    HttpRequest,
    MallOrder,
    OrderPoll,
    RowError,
    StockRow,
    StockUpdate,
    csv_records,
)


class NotSupported(RuntimeError):
    """The mall module does not provide what the simulator needs."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _content_type(body: bytes) -> str:
    head = body.lstrip()[:1]
    if head in (b"{", b"["):
        return "application/json; charset=utf-8"
    if head == b"<":
        return "application/xml; charset=utf-8"
    return "text/plain; charset=utf-8"


def _mutate(secret: str) -> str:
    """A different secret of the same shape (each letter or digit moved on by one)."""
    out = []
    for ch in secret:
        if "a" <= ch <= "z":
            out.append(chr((ord(ch) - 97 + 1) % 26 + 97))
        elif "A" <= ch <= "Z":
            out.append(chr((ord(ch) - 65 + 1) % 26 + 65))
        elif "0" <= ch <= "9":
            out.append(chr((ord(ch) - 48 + 1) % 10 + 48))
        else:
            out.append(ch)
    return "".join(out)


def _body_fields(body: bytes) -> dict[str, str] | None:
    """Top-level fields of a JSON object or form body, to find where a credential sits."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        return {str(k): json.dumps(v, sort_keys=True) for k, v in doc.items()}
    try:
        pairs = urllib.parse.parse_qsl(
            body.decode("ascii"), keep_blank_values=True, strict_parsing=True
        )
    except (UnicodeDecodeError, ValueError):
        return None
    return dict(pairs)


@dataclass(frozen=True)
class CredentialCheck:
    """Where a module puts the secret, learnt by building a request with two secrets."""

    headers: tuple[tuple[str, str], ...]  # (lower-case name, expected value)
    query: tuple[tuple[str, str], ...]
    body: tuple[tuple[str, str], ...]
    body_secret: str  # when the body differs but not field by field: the secret must be in it

    @classmethod
    def learn(cls, good: HttpRequest, other: HttpRequest, secret: str) -> CredentialCheck:
        gh = {k.lower(): v for k, v in good.headers}
        oh = {k.lower(): v for k, v in other.headers}
        headers = tuple((k, v) for k, v in gh.items() if oh.get(k) != v)
        gq, oq = dict(good.query), dict(other.query)
        query = tuple((k, v) for k, v in gq.items() if oq.get(k) != v)
        body: tuple[tuple[str, str], ...] = ()
        body_secret = ""
        if good.body != other.body:
            gb, ob = _body_fields(good.body), _body_fields(other.body)
            if gb is not None and ob is not None:
                body = tuple((k, v) for k, v in gb.items() if ob.get(k) != v)
            if not body:
                body_secret = secret
        return cls(headers, query, body, body_secret)

    @property
    def empty(self) -> bool:
        return not (self.headers or self.query or self.body or self.body_secret)

    def accepts(self, req: HttpRequest) -> bool:
        rh = {k.lower(): v for k, v in req.headers}
        if any(rh.get(k) != v for k, v in self.headers):
            return False
        rq = dict(req.query)
        if any(rq.get(k) != v for k, v in self.query):
            return False
        if self.body:
            fields = _body_fields(req.body) or {}
            if any(fields.get(k) != v for k, v in self.body):
                return False
        return not (self.body_secret and self.body_secret.encode() not in req.body)


class Mall:
    """One mall kind as the simulator uses it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    @property
    def mod(self) -> ModuleType:
        return module(self.kind)

    @property
    def cap(self) -> Capability:
        cap: Capability = self.mod.CAPABILITY
        return cap

    @property
    def waiting_state(self) -> Literal["pending", "unpaid"] | None:
        """The state of an order not paid yet, where the mall has one zaiko takes."""
        return waiting_state(self.kind)

    def has(self, name: str) -> bool:
        return hasattr(self.mod, name)

    def _fn(self, name: str) -> Any:
        fn = getattr(self.mod, name, None)
        if fn is None:
            raise NotSupported(f"protocols.malls.{self.kind} has no {name}()")
        return fn

    # -- stock files --------------------------------------------------------------------------

    @property
    def file_encoding(self) -> str:
        for name in ("STOCK_FILE_ENCODING", "FILE_ENCODING", "ENCODING"):
            enc = getattr(self.mod, name, None)
            if isinstance(enc, str):
                return enc
        return "cp932"

    def write_stock_files(self, updates: Sequence[StockUpdate]) -> dict[str, bytes]:
        files: dict[str, bytes] = self._fn("write_stock_files")(list(updates))
        return files

    def read_stock_file(self, name: str, raw: bytes) -> tuple[list[StockRow], list[RowError]]:
        """Read a stock file as the mall's batch job does: rows with a quantity, and errors."""
        read = self._fn("read_stock_file")
        records = csv_records([raw], self.file_encoding)
        rows: list[StockRow] = []
        errors: list[RowError] = []
        for rec in read(name, records):
            if isinstance(rec, RowError):
                errors.append(rec)
            else:
                rows.append(rec)
        return rows, errors

    # -- stock API ------------------------------------------------------------------------------

    def account(self, base_url: str, secret: str, seller_id: str) -> ApiAccount:
        return ApiAccount(base_url=base_url, secret=secret, seller_id=seller_id)

    def build_stock_requests(
        self, updates: Sequence[StockUpdate], account: ApiAccount
    ) -> list[HttpRequest]:
        reqs: list[HttpRequest] = self._fn("build_stock_requests")(list(updates), account)
        return reqs

    def parse_stock_request(self, req: HttpRequest) -> list[StockUpdate]:
        updates: list[StockUpdate] = list(self._fn("parse_stock_request")(req))
        return updates

    def stock_ok(self, updates: Sequence[StockUpdate]) -> Response:
        """The mall's answer to an accepted stock update."""
        render = getattr(self.mod, "render_stock_response", None)
        if render is None:
            return Response(204, (), b"")
        out = render(list(updates))
        return self._response(out, 200)

    def error(self, status: int, message: str) -> Response:
        """An error in the mall's own shape (``render_error``), else plain JSON."""
        render = getattr(self.mod, "render_error", None)
        if render is None:
            body = json.dumps({"error": message}, ensure_ascii=False).encode()
            return Response(status, (("content-type", "application/json; charset=utf-8"),), body)
        return self._response(render(status, message), status)

    def _response(self, out: Any, status: int) -> Response:
        """Accept what a module's renderer returns: bytes, (status, body), (status, headers,
        body) or an object with status/headers/body."""
        headers: Iterable[tuple[str, str]] = ()
        if isinstance(out, (bytes, bytearray)):
            body = bytes(out)
        elif isinstance(out, str):
            body = out.encode()
        elif isinstance(out, tuple) and len(out) == 2:
            status, body = int(out[0]), bytes(out[1])
        elif isinstance(out, tuple) and len(out) == 3:
            status, headers, body = int(out[0]), out[1], bytes(out[2])
        else:
            status = int(getattr(out, "status", status))
            headers = getattr(out, "headers", ())
            body = bytes(getattr(out, "body", b""))
        hdrs = tuple((str(k).lower(), str(v)) for k, v in dict(headers).items())
        if body and not any(k == "content-type" for k, _ in hdrs):
            hdrs += (("content-type", _content_type(body)),)
        return Response(status, hdrs, body)

    def stock_read_ok(self, items: Iterable[tuple[str, tuple[str, ...]]], shop: Any) -> Response:
        """What the shop shows of the items asked (an item it does not list is left out)."""
        shown = []
        for item_id, variation in items:
            item = shop.find(item_id, tuple(variation))
            if item is not None:
                shown.append(StockUpdate(item_id, tuple(variation), item.shown))
        return self._response(self.mod.render_stock_read_response(shown), 200)

    # -- order API ------------------------------------------------------------------------------

    def start_order_poll(self, account: ApiAccount, since: datetime, until: datetime) -> OrderPoll:
        poll: OrderPoll = self._fn("start_order_poll")(account, since, until)
        return poll

    def read_order_call(self, req: HttpRequest) -> OrderCall:
        call: OrderCall = self._fn("read_order_call")(req)
        return call

    def order_answer_ok(self, call: OrderCall, answer: OrderAnswer) -> Response:
        return self._response(self._fn("render_order_answer")(call, answer), 200)

    # -- order mails ------------------------------------------------------------------------------

    def render_order_mail(self, order: MallOrder, shop_name: str) -> bytes:
        raw: bytes = self._fn("render_order_mail")(order, shop_name)
        return raw

    def parse_order_mail(self, raw: bytes) -> MallOrder:
        order: MallOrder = self._fn("parse_order_mail")(raw)
        return order

    def join_sku(self, item_id: str, variation: Sequence[str]) -> str:
        join = getattr(self.mod, "join_sku", None)
        if join is None:
            return item_id + "".join(variation)
        sku: str = join(item_id, tuple(variation))
        return sku


CallKind = Literal["stock", "orders", "feeds", "stock_read"]


@dataclass(frozen=True)
class Call:
    """A shop API request, recognised: a stock update, or an order-API call (a search, an
    order fetch, an order's items) as the module reads it."""

    kind: CallKind
    order_call: OrderCall | None = None
    order_error: str = ""  # why the module's order reader refused it (then it is "stock")
    read_items: tuple[tuple[str, tuple[str, ...]], ...] = ()  # a stock read's items
    feed_call: Any = None  # the module's FeedCall
    feed_error: str = ""  # a Feeds API path the module's reader refused (a 400)


@dataclass(frozen=True)
class ShopApi:
    """How one shop's HTTP API recognises calls and checks the caller's secret."""

    auth: dict[CallKind, CredentialCheck]

    @classmethod
    def learn(cls, mall: Mall, secret: str, seller_id: str) -> ShopApi:
        base = "http://mallsim.invalid"
        good = mall.account(base, secret, seller_id)
        other = mall.account(base, _mutate(secret), seller_id)
        auth: dict[CallKind, CredentialCheck] = {}
        if not secret:
            return cls(auth)
        if mall.has("build_stock_requests"):
            probe = [StockUpdate("mallsim-probe", (), 1)]
            a = mall.build_stock_requests(probe, good)
            b = mall.build_stock_requests(probe, other)
            if a and b:
                auth["stock"] = CredentialCheck.learn(a[0], b[0], secret)
        if mall.has("build_stock_read_requests"):
            keys = [("mallsim-probe", ())]
            ra = mall.mod.build_stock_read_requests(keys, good)
            rb = mall.mod.build_stock_read_requests(keys, other)
            auth["stock_read"] = CredentialCheck.learn(ra[0], rb[0], secret)
        if mall.has("start_stock_feed"):
            probe = [StockUpdate("mallsim-probe", (), 1)]
            fa = mall.mod.start_stock_feed(probe, good).next_request()
            fb = mall.mod.start_stock_feed(probe, other).next_request()
            auth["feeds"] = CredentialCheck.learn(fa, fb, secret)
        if mall.has("start_order_poll"):
            # Every call of a poll carries the secret where its first call does.
            since = datetime(2000, 1, 1, tzinfo=timezone(timedelta(hours=9)))
            until = since + timedelta(days=1)
            ra = mall.start_order_poll(good, since, until).next_request()
            rb = mall.start_order_poll(other, since, until).next_request()
            if ra is not None and rb is not None:
                auth["orders"] = CredentialCheck.learn(ra, rb, secret)
        return cls(auth)

    def classify(self, mall: Mall, req: HttpRequest) -> Call:
        """What the request is, by the module's own reader (stock is the rest)."""
        if mall.has("read_feed_call") and req.path.startswith(mall.mod.FEEDS_PREFIX + "/"):
            try:
                return Call("feeds", feed_call=mall.mod.read_feed_call(req))
            except _NOT_THIS as exc:
                return Call("feeds", feed_error=str(exc) or type(exc).__name__)
        if mall.has("read_stock_read_request"):
            try:
                items = mall.mod.read_stock_read_request(req)
            except _NOT_THIS:
                pass
            else:
                return Call("stock_read", read_items=tuple(items))
        if mall.has("read_order_call"):
            try:
                return Call("orders", order_call=mall.read_order_call(req))
            except _NOT_THIS as exc:
                return Call("stock", order_error=str(exc) or type(exc).__name__)
        return Call("stock")

    def authorised(self, call: Call, req: HttpRequest) -> bool:
        check = self.auth.get(call.kind)
        return check is None or check.accepts(req)


_NOT_THIS = (ValueError, KeyError, TypeError, msgspec.MsgspecError)
