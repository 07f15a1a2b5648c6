"""Pieces shared by the mall API codecs: batching, the pushable-quantity check, and the small
JSON stock API that zaiko defines for carts whose real stock API is not public (CARTSTAR,
ショップサーブ, SHOPLIST).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Annotated, TypeVar

import msgspec

from protocols.malls.base import ApiAccount, HttpRequest, StockUpdate

T = TypeVar("T")
JSON_CONTENT_TYPE = ("Content-Type", "application/json")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def require_pushable(updates: Sequence[StockUpdate]) -> None:
    """Refuse a negative quantity: zaiko never pushes one (SPEC §2, negative stock)."""
    for update in updates:
        if update.quantity < 0:
            raise ValueError(
                f"quantity {update.quantity} for {update.item_id} {update.variation} is negative"
            )


def header(request: HttpRequest, name: str) -> str:
    """A request header's value (case-insensitive name), or "" when absent."""
    wanted = name.lower()
    return next((value for key, value in request.headers if key.lower() == wanted), "")


def check_route(request: HttpRequest, method: str, path: str) -> None:
    if request.method != method or request.path != path:
        raise ValueError(f"expected {method} {path}, got {request.method} {request.path}")


class _StockEntry(msgspec.Struct, forbid_unknown_fields=True):
    item_code: Annotated[str, msgspec.Meta(min_length=1)]
    quantity: Annotated[int, msgspec.Meta(ge=0)]
    variation_codes: list[str] = []


class _StockBody(msgspec.Struct, forbid_unknown_fields=True):
    stocks: list[_StockEntry]


class _StockResult(msgspec.Struct):
    updated: int


class _ErrorDetail(msgspec.Struct):
    status: int
    message: str


class _ErrorBody(msgspec.Struct):
    error: _ErrorDetail


class JsonStockApi:
    """``POST <path>`` with ``{"stocks": [{item_code, variation_codes, quantity}]}``.

    Bearer authentication; 200 ``{"updated": n}`` on success, otherwise
    ``{"error": {"status", "message"}}``. One request carries at most ``batch_size`` items.
    """

    def __init__(self, *, path: str, batch_size: int) -> None:
        self.path = path
        self.batch_size = batch_size

    def build_stock_requests(
        self, updates: Sequence[StockUpdate], account: ApiAccount
    ) -> list[HttpRequest]:
        require_pushable(updates)
        return [
            HttpRequest(
                method="POST",
                path=self.path,
                headers=(("Authorization", f"Bearer {account.secret}"), JSON_CONTENT_TYPE),
                body=msgspec.json.encode(
                    _StockBody(
                        stocks=[
                            _StockEntry(
                                item_code=u.item_id,
                                quantity=u.quantity,
                                variation_codes=list(u.variation),
                            )
                            for u in batch
                        ]
                    )
                ),
            )
            for batch in chunks(updates, self.batch_size)
        ]

    def parse_stock_request(self, request: HttpRequest) -> list[StockUpdate]:
        check_route(request, "POST", self.path)
        try:
            body = msgspec.json.decode(request.body, type=_StockBody)
        except msgspec.ValidationError as exc:
            raise ValueError(f"invalid stock request: {exc}") from None
        if len(body.stocks) > self.batch_size:
            raise ValueError(f"{len(body.stocks)} items in one request (at most {self.batch_size})")
        return [
            StockUpdate(entry.item_code, tuple(entry.variation_codes), entry.quantity)
            for entry in body.stocks
        ]

    def parse_stock_response(self, status: int, body: bytes) -> None:
        if 200 <= status < 300:
            return
        try:
            message = msgspec.json.decode(body, type=_ErrorBody).error.message
        except msgspec.DecodeError:
            message = body.decode("utf-8", "replace").strip() or "no error body"
        raise ValueError(f"HTTP {status}: {message}")

    def render_stock_response(self, updates: Sequence[StockUpdate]) -> bytes:
        return msgspec.json.encode(_StockResult(updated=len(updates)))

    def render_error(self, status: int, message: str) -> bytes:
        return msgspec.json.encode(_ErrorBody(error=_ErrorDetail(status=status, message=message)))
