"""A ledger engine on a real SQLite file, driven the way the ledger task drives it: batches
of (command, actor), results and events back."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path
from typing import Any

import msgspec

from daemon.commands import Command, IncomingOrder, OrdersTaken, TakeOrders
from daemon.ledger import catalog, shops, stock
from daemon.ledger.engine import Engine
from protocols import control
from protocols.malls.base import MallOrder, MallOrderState, OrderLine
from protocols.settings import ShopSettings

_ticks = itertools.count()


def clock() -> str:
    return f"2026-11-26T00:00:{next(_ticks) % 60:02d}.000+00:00"


def shop_settings(**changes: object) -> ShopSettings:
    return msgspec.convert({"id": "r1", "mall": "rakuten", **changes}, ShopSettings)


def mall_order(
    order_no: str,
    *lines: tuple[str, int],
    status: MallOrderState = "new",
    cancelled: tuple[int, ...] = (),
) -> MallOrder:
    """An order as a mall reports it: (item id, quantity) per line, numbered from 1; the item
    id is also the default-rule SKU (no variation)."""
    return MallOrder(
        order_no=order_no,
        ordered_at="2026-11-26T09:00:00+09:00",
        status=status,
        lines=tuple(
            OrderLine(line_no=number, item_id=item, sku=item, quantity=quantity)
            for number, (item, quantity) in enumerate(lines, start=1)
        ),
        cancelled_lines=cancelled,
    )


class LedgerHarness:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.engine = Engine(path, clock)

    @property
    def db(self) -> sqlite3.Connection:
        return self.engine.db

    def batch(self, commands: list[tuple[Any, str]]) -> tuple[list[object], list[control.Event]]:
        results, events = self.engine.apply_batch(commands)
        return list(results), events

    def run(self, *commands: Command, actor: str = "test") -> list[object]:
        return self.batch([(c, actor) for c in commands])[0]

    def one(self, command: Command, actor: str = "test") -> Any:
        (result,) = self.run(command, actor=actor)
        return result

    def ok(self, command: Command, actor: str = "test") -> Any:
        result = self.one(command, actor)
        assert not isinstance(result, control.Error), result
        return result

    def take(self, shop: str, *orders: MallOrder) -> OrdersTaken:
        taken: OrdersTaken = self.ok(
            TakeOrders(shop=shop, orders=tuple(IncomingOrder(order) for order in orders)),
            actor=f"shop:{shop}",
        )
        return taken

    def add(self, code: str, expected: int | None = None) -> None:
        self.ok(control.SkuAdd(id=1, code=code))
        if expected is not None:
            self.ok(control.StockSet(id=2, code=code, field="expected", value=expected))

    def level(self, code: str) -> control.StockLevel:
        return self.engine.read(stock.level, code)

    def expected(self, code: str) -> int:
        return self.level(code).expected

    def detail(self, code: str, journal_limit: int = 20) -> control.SkuDetail:
        return self.engine.read(catalog.detail, code, journal_limit)

    def shop(self, shop_id: str) -> ShopSettings:
        return self.engine.read(shops.get, shop_id)

    def violations(self) -> list[str]:
        return self.engine.read(stock.invariant_violations)

    def reopen(self) -> LedgerHarness:
        self.engine.close()
        return LedgerHarness(self.path)

    def close(self) -> None:
        self.engine.close()
