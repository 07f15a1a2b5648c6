"""The screens of the switcher, in its order. A new screen (Shops, Orders, Import, ...) is one
module in tui/screens/ and one ``ScreenEntry`` here: the app makes it a mode and binds its key,
and the tabs and the key list show it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual.screen import Screen

from tui.screens.dashboard import DashboardScreen
from tui.screens.imports import ImportScreen
from tui.screens.jobs import JobsScreen
from tui.screens.orders import OrdersScreen
from tui.screens.shops import ShopsScreen
from tui.screens.stock import StockScreen


@dataclass(frozen=True)
class ScreenEntry:
    mode: str  # the Textual mode's name, also its tab's id
    label: str  # a label id of tui/labels.py
    key: str  # the key that switches to it from anywhere
    screen: Callable[[], Screen[None]]


SCREENS: tuple[ScreenEntry, ...] = (
    ScreenEntry("dashboard", "screen.dashboard", "f1", DashboardScreen),
    ScreenEntry("stock", "screen.stock", "f2", StockScreen),
    ScreenEntry("jobs", "screen.jobs", "f3", JobsScreen),
    ScreenEntry("shops", "screen.shops", "f4", ShopsScreen),
    ScreenEntry("orders", "screen.orders", "f5", OrdersScreen),
    ScreenEntry("import", "screen.import", "f6", ImportScreen),
)
