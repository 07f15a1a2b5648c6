"""What the simulated malls know: shop inventories, the merchants' real stock, the truth.

Plain data and arithmetic; the only trio in here is the change notification that lets tests
(and the admin endpoint) wait for an event instead of sleeping.
"""

from __future__ import annotations

import math
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
import trio

from mallsim.config import Config, Faults, Shop
from protocols.malls import capability
from protocols.malls._api import (
    OrderAnswer,
    OrderCall,
    OrderSearchDate,
    ServedOrder,
    answer_order_call,
)
from protocols.malls.base import Capability, MallOrder

JST = timezone(timedelta(hours=9))
FILE_LOG = 20  # file results kept per shop
UNKNOWN_LOG = 20  # unknown listing updates kept per shop


class TokenBucket:
    """``rate`` requests per second with a burst of ``capacity``, on an injected clock."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.capacity = capacity
        self.clock = clock
        self.tokens = capacity
        self.last = clock()

    def take(self, at: float | None = None) -> float:
        """Take one token for a request that arrived ``at`` (default: now): 0.0 if allowed,
        else the seconds until one is available."""
        now = self.clock() if at is None else at
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.last) * self.rate)
        # requests are handled nearly, not exactly, in the order they arrived
        self.last = max(self.last, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass
class ItemState:
    sku: str
    item_id: str
    variation: tuple[str, ...]
    name: str
    shown: int  # what the shop shows (and sells from) now
    last_received: int | None = None  # last quantity the merchant sent
    received: int = 0  # how many quantities the merchant sent
    sold: int = 0
    cancelled: int = 0


@dataclass
class SimFeed:
    """A stock feed a shop submitted (Amazon's Feeds API): applied, and its report written,
    ``feed_processing_s`` after it was created."""

    feed_id: str
    document_id: str
    created: float  # trio time
    report_id: str = ""  # set when processed
    fatal: bool = False  # the document was no feed of this seller


@dataclass
class FileResult:
    """One stock file the mall's batch job read."""

    name: str
    transport: str  # "sftp" | "ftps"
    rows: int
    applied: int
    unknown: int
    errors: list[str]


@dataclass
class PublishedOrder:
    """An order where the shop's order API serves it."""

    order: MallOrder
    updated_at: datetime  # its last change, to the second (as malls show times)
    foreign: bool = False  # placed on another marketplace of the seller account (Amazon)

    def served(self) -> ServedOrder:
        return ServedOrder(order=self.order, updated_at=self.updated_at, foreign=self.foreign)


@dataclass
class MerchantState:
    id: str
    real: dict[str, int]  # the merchant's REAL stock per SKU, shared by all its shops
    sold: dict[str, int] = field(default_factory=dict)
    oversold: dict[str, int] = field(default_factory=dict)  # units sold beyond real stock


@dataclass
class ShopState:
    cfg: Shop
    cap: Capability
    intake: str | None
    items: dict[str, ItemState]  # by SKU
    bucket: TokenBucket | None
    faults: Faults
    listing: dict[tuple[str, tuple[str, ...]], str] = field(default_factory=dict)
    listing_folded: dict[tuple[str, tuple[str, ...]], str] = field(default_factory=dict)
    # the order API's orders by number, oldest change first
    orders: OrderedDict[str, PublishedOrder] = field(default_factory=OrderedDict)
    order_seq: int = 0
    orders_placed: int = 0
    orders_cancelled: int = 0
    foreign_orders: int = 0  # orders of another marketplace (Amazon): no stock moved here
    payments: int = 0  # waiting orders (Amazon Pending, Qoo10 unpaid) paid later
    mails_written: int = 0
    mail_errors: int = 0  # orders whose mail the module could not render
    requests: int = 0
    throttled: int = 0
    auth_rejected: int = 0
    bad_requests: int = 0
    stock_updates: int = 0
    unknown_updates: int = 0
    unknown_log: deque[str] = field(default_factory=lambda: deque(maxlen=UNKNOWN_LOG))
    files: deque[FileResult] = field(default_factory=lambda: deque(maxlen=FILE_LOG))
    files_ignored: int = 0
    # the Feeds API: documents by id (None until uploaded), feeds by id
    feed_documents: dict[str, bytes | None] = field(default_factory=dict)
    feeds: dict[str, SimFeed] = field(default_factory=dict)
    feed_seq: int = 0
    feeds_processed: int = 0

    @property
    def id(self) -> str:
        return self.cfg.id

    @property
    def kind(self) -> str:
        return self.cfg.mall

    def find(self, item_id: str, variation: tuple[str, ...], sku: str = "") -> ItemState | None:
        """The listed item the mall would match: by its ids, then (mall ids are often
        case-insensitive) case-folded, then by the SKU a file row carries."""
        key = self.listing.get((item_id, variation))
        if key is None:
            key = self.listing_folded.get(_fold(item_id, variation))
        if key is None and sku:
            key = sku if sku in self.items else None
        return self.items.get(key) if key is not None else None


def _fold(item_id: str, variation: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    return item_id.casefold(), tuple(v.casefold() for v in variation)


def shop_seed(shop: Shop) -> int:
    return shop.seed if shop.seed is not None else zlib.crc32(shop.id.encode())


class SimState:
    """All shops and merchants of one simulator run."""

    def __init__(self, cfg: Config, *, rate_clock: Callable[[], float] | None = None) -> None:
        self.cfg = cfg
        self.rate_clock: Callable[[], float] = rate_clock or trio.current_time
        self.merchants: dict[str, MerchantState] = {
            m.id: MerchantState(m.id, dict(m.stock)) for m in cfg.merchants
        }
        self.shops: dict[str, ShopState] = {}
        for shop in cfg.shops:
            self.merchants.setdefault(shop.merchant, MerchantState(shop.merchant, {}))
            self.shops[shop.id] = self._shop(shop)
        self.epoch = (
            datetime.fromisoformat(cfg.sim.start_time) if cfg.sim.start_time else datetime.now(JST)
        )
        self.t0: float | None = None  # trio time of the epoch, set when the simulator starts
        self._changed = trio.Event()
        self.version = 0

    def _shop(self, shop: Shop) -> ShopState:
        cap = capability(shop.mall)
        real = self.merchants[shop.merchant].real
        items = {
            it.sku: ItemState(
                sku=it.sku,
                item_id=it.item_id or it.sku,
                variation=tuple(it.variation),
                name=it.name or it.sku,
                shown=it.shown if it.shown is not None else max(0, real.get(it.sku, 0)),
            )
            for it in shop.items
        }
        bucket = None
        if cap.api_requests_per_s > 0:
            rate = cap.api_requests_per_s
            bucket = TokenBucket(rate, max(1.0, math.floor(rate)), self._rate_now)
        st = ShopState(
            cfg=shop,
            cap=cap,
            intake=shop.intake or (cap.intake[0] if cap.intake else None),
            items=items,
            bucket=bucket,
            faults=shop.faults,
        )
        for it in items.values():
            st.listing[(it.item_id, it.variation)] = it.sku
            st.listing_folded[_fold(it.item_id, it.variation)] = it.sku
        return st

    def _rate_now(self) -> float:
        return self.rate_clock()

    # -- change notification ------------------------------------------------------------

    def changed(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, predicate: Callable[[SimState], bool]) -> None:
        """Wait until ``predicate(self)`` holds (checked after every change)."""
        while not predicate(self):
            await self._changed.wait()

    # -- time ----------------------------------------------------------------------------

    def wall(self, t: float) -> datetime:
        """The simulated wall-clock time of trio time ``t``."""
        return self.epoch + timedelta(seconds=t - (self.t0 if self.t0 is not None else t))

    # -- the merchant's quantities arriving ------------------------------------------------

    def apply_quantities(
        self, shop_id: str, updates: Iterable[tuple[str, tuple[str, ...], str, int]]
    ) -> tuple[int, int]:
        """Set what a shop shows, as the mall does with an API call or a stock-file row.

        ``updates`` are (item_id, variation, sku-or-"", quantity). Unknown listings raise no
        error at the malls; they are counted. Returns (applied, unknown).
        """
        shop = self.shops[shop_id]
        applied = unknown = 0
        for item_id, variation, sku, qty in updates:
            item = shop.find(item_id, variation, sku)
            if item is None:
                unknown += 1
                shop.unknown_log.append(
                    "/".join((item_id, *variation)) + f"={qty}" + (f" (sku {sku})" if sku else "")
                )
                continue
            item.shown = max(0, qty)
            item.last_received = qty
            item.received += 1
            applied += 1
        shop.stock_updates += applied
        shop.unknown_updates += unknown
        self.changed()
        return applied, unknown

    def record_file(self, shop_id: str, result: FileResult) -> None:
        self.shops[shop_id].files.append(result)
        self.changed()

    # -- customers ---------------------------------------------------------------------------

    def sell(self, shop_id: str, lines: Iterable[tuple[str, int]]) -> int:
        """A customer buys (sku, quantity) lines at a shop; returns the units oversold."""
        shop = self.shops[shop_id]
        merchant = self.merchants[shop.cfg.merchant]
        over_total = 0
        for sku, qty in lines:
            item = shop.items[sku]
            if qty > item.shown:
                raise ValueError(f"{shop_id}: {sku} shows {item.shown}, cannot sell {qty}")
            item.shown -= qty
            item.sold += qty
            before = merchant.real.get(sku, 0)
            merchant.real[sku] = before - qty
            merchant.sold[sku] = merchant.sold.get(sku, 0) + qty
            over = max(0, qty - max(0, before))
            if over:
                merchant.oversold[sku] = merchant.oversold.get(sku, 0) + over
                over_total += over
        shop.orders_placed += 1
        self.changed()
        return over_total

    def cancel(self, shop_id: str, lines: Iterable[tuple[str, int]]) -> None:
        """An order is cancelled: the mall and the merchant's shelf get the units back."""
        shop = self.shops[shop_id]
        merchant = self.merchants[shop.cfg.merchant]
        for sku, qty in lines:
            item = shop.items[sku]
            item.shown += qty
            item.cancelled += qty
            merchant.real[sku] = merchant.real.get(sku, 0) + qty
        shop.orders_cancelled += 1
        self.changed()

    def next_order_no(self, shop_id: str, t: float) -> str:
        shop = self.shops[shop_id]
        shop.order_seq += 1
        return order_number(shop.kind, shop.id, self.wall(t), shop.order_seq)

    def publish_order(
        self, shop_id: str, order: MallOrder, when: datetime, *, foreign: bool = False
    ) -> None:
        """Put (or update) an order where the mall's order API serves it; ``when`` is its
        change. Whether it is another marketplace's stays as it was first published."""
        shop = self.shops[shop_id]
        kept = shop.orders.get(order.order_no)
        shop.orders[order.order_no] = PublishedOrder(
            order, when.replace(microsecond=0), kept.foreign if kept is not None else foreign
        )
        shop.orders.move_to_end(order.order_no)
        while len(shop.orders) > self.cfg.sim.order_api_window:
            shop.orders.popitem(last=False)
        self.changed()

    def order_answer(self, shop_id: str, call: OrderCall) -> OrderAnswer:
        """What the shop's order API answers to ``call`` (KeyError: no such order)."""
        held = [published.served() for published in self.shops[shop_id].orders.values()]
        return answer_order_call(
            call,
            held,
            page_size=self.cfg.sim.order_page_size,
            items_page_size=self.cfg.sim.order_items_page_size,
        )

    def window_orders(
        self, shop_id: str, since: datetime, until: datetime, by: OrderSearchDate
    ) -> list[PublishedOrder]:
        """The truth for an order poll: the orders whose ``by`` date is in ``[since, until)``."""
        return [
            published
            for published in self.shops[shop_id].orders.values()
            if since
            <= (
                published.updated_at
                if by == "updated"
                else datetime.fromisoformat(published.order.ordered_at)
            )
            < until
        ]

    # -- the admin view ----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        shops: dict[str, Any] = {}
        for s in self.shops.values():
            shops[s.id] = {
                "mall": s.kind,
                "merchant": s.cfg.merchant,
                "intake": s.intake,
                "faults": msgspec.to_builtins(s.faults),
                "requests": s.requests,
                "throttled": s.throttled,
                "auth_rejected": s.auth_rejected,
                "bad_requests": s.bad_requests,
                "stock_updates": s.stock_updates,
                "unknown_updates": s.unknown_updates,
                "unknown_recent": list(s.unknown_log),
                "orders": s.orders_placed,
                "cancellations": s.orders_cancelled,
                "foreign_orders": s.foreign_orders,
                "payments": s.payments,
                "mails": s.mails_written,
                "mail_errors": s.mail_errors,
                "files": [vars(f) for f in s.files],
                "files_ignored": s.files_ignored,
                "feeds": len(s.feeds),
                "feeds_processed": s.feeds_processed,
                "items": {
                    it.sku: {
                        "item_id": it.item_id,
                        "variation": list(it.variation),
                        "shown": it.shown,
                        "last_received": it.last_received,
                        "received": it.received,
                        "sold": it.sold,
                        "cancelled": it.cancelled,
                    }
                    for it in s.items.values()
                },
            }
        merchants = {
            m.id: {
                "sold": sum(m.sold.values()),
                "oversold": sum(m.oversold.values()),
                "skus": {
                    sku: {
                        "real": real,
                        "sold": m.sold.get(sku, 0),
                        "oversold": m.oversold.get(sku, 0),
                    }
                    for sku, real in m.real.items()
                },
            }
            for m in self.merchants.values()
        }
        return {
            "version": self.version,
            "shops": shops,
            "merchants": merchants,
            "totals": {
                "orders": sum(s.orders_placed for s in self.shops.values()),
                "sold": sum(m["sold"] for m in merchants.values()),
                "oversold": sum(m["oversold"] for m in merchants.values()),
                "requests": sum(s.requests for s in self.shops.values()),
                "throttled": sum(s.throttled for s in self.shops.values()),
            },
        }


def order_number(kind: str, shop_id: str, when: datetime, seq: int) -> str:
    """An order number in the mall's usual shape (the parsers must not rely on more)."""
    if kind == "rakuten":  # 123456-YYYYMMDD-NNNNNNNNNN
        shop_no = zlib.crc32(shop_id.encode()) % 900000 + 100000
        return f"{shop_no}-{when:%Y%m%d}-{seq:010d}"
    if kind == "yahoo":  # store-10000001
        return f"{shop_id}-{10000000 + seq}"
    return f"{shop_id.upper().replace('_', '-')}-{when:%Y%m%d}-{seq:06d}"
