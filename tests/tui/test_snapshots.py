"""Screenshots of Dashboard and Stock from canned data (tests/tui/canned.py), in Japanese, at
120x40 and 80x24. After a deliberate change of the screens, look at the new pictures and
rewrite them: pytest tests/tui/test_snapshots.py --snapshot-update"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from daemon.config import load_config
from tests.conftest import write_config
from tests.tui.canned import SKUS, STATUS, CannedLink
from tests.tui.helpers import until
from tui.app import ZaikoApp, build_app

SIZES = [(120, 40), (80, 24)]


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Times are shown in the machine's zone: the same zone on every machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def canned_app(tmp_path: Path) -> ZaikoApp:
    config_path = write_config(tmp_path)
    return build_app(load_config(config_path), str(config_path), "ja", link=CannedLink())


def rows_shown(selector: str, count: int) -> Callable[[Pilot[None]], object]:
    async def wait(pilot: Pilot[None]) -> None:
        await until(
            pilot,
            lambda: pilot.app.screen.query_one(selector, DataTable).row_count >= count,
            f"{count} rows in {selector}",
        )

    return wait


@pytest.mark.parametrize("size", SIZES)
def test_dashboard(
    snap_compare: Callable[..., bool], tmp_path: Path, utc: None, size: tuple[int, int]
) -> None:
    assert snap_compare(
        canned_app(tmp_path),
        terminal_size=size,
        run_before=rows_shown("#shops", len(STATUS.shops)),
    )


@pytest.mark.parametrize("size", SIZES)
def test_stock(
    snap_compare: Callable[..., bool], tmp_path: Path, utc: None, size: tuple[int, int]
) -> None:
    async def open_stock(pilot: Pilot[None]) -> None:
        await pilot.press("f2")
        await rows_shown("#skus", len(SKUS))(pilot)
        # the table, not the search input, has the focus: no blinking cursor in the picture
        pilot.app.screen.query_one("#skus", DataTable).focus()
        await pilot.pause()

    assert snap_compare(canned_app(tmp_path), terminal_size=size, run_before=open_stock)
