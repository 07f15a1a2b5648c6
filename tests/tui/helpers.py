"""Driving the TUI in tests: Textual's ``run_test`` is asyncio and the suite is trio
(``trio_mode``), so each test is a plain function that runs its scenario with ``asyncio.run``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from tui.app import ZaikoApp

UI_TIMEOUT_S = 30.0


def drive(
    app: ZaikoApp,
    scenario: Callable[[Pilot[None]], Awaitable[None]],
    size: tuple[int, int] = (120, 40),
) -> None:
    async def run() -> None:
        async with app.run_test(size=size) as pilot:
            await scenario(pilot)

    asyncio.run(run())


async def until(pilot: Pilot[None], condition: Callable[[], bool], what: str) -> None:
    """Let the app run until ``condition`` holds (it waits on the daemon's answers)."""
    deadline = asyncio.get_running_loop().time() + UI_TIMEOUT_S
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"waited {UI_TIMEOUT_S:g} s for {what}")
        await pilot.pause(0.02)


def table(pilot: Pilot[None], selector: str) -> DataTable[object]:
    return pilot.app.screen.query_one(selector, DataTable)


def text_of(pilot: Pilot[None], selector: str) -> str:
    return str(pilot.app.screen.query_one(selector, Static).content)


def row_keys(pilot: Pilot[None], selector: str) -> list[str]:
    return [str(key.value) for key in table(pilot, selector).rows]
