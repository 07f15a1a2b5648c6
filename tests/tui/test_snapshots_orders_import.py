"""Screenshots of Orders (the list and one order) and of Import (a dry run's result) from
canned data, in Japanese, at 120x40 and 80x24, as tests/tui/test_snapshots.py takes them.
After a deliberate change of these screens, look at the new pictures and rewrite them:
pytest tests/tui/test_snapshots_orders_import.py --snapshot-update"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, DirectoryTree, Input

from daemon.config import load_config
from protocols import control
from protocols.malls.base import RowError
from tests.conftest import write_config
from tests.tui.canned import AT, CannedLink

# ``utc``: the fixture that shows times in one zone on every machine
from tests.tui.test_snapshots import SIZES, rows_shown, utc  # noqa: F401
from tui.app import ZaikoApp, build_app
from tui.screens.orders import OrderScreen


def line(
    line_no: int, item_id: str, sku: str, quantity: int, status: control.OrderStatus, name: str
) -> control.OrderLineDoc:
    return control.OrderLineDoc(
        line_no=line_no,
        item_id=item_id,
        variation=(),
        sku=sku,
        quantity=quantity,
        status=status,
        name=name,
    )


def order(shop: str, order_no: str, *lines: control.OrderLineDoc) -> control.OrderDoc:
    statuses = {each.status for each in lines}
    status: control.OrderStatus = next(
        (s for s in ("unmatched", "warning") if s in statuses), "allocated"
    )
    return control.OrderDoc(
        key=f"{shop}:{order_no}",
        shop=shop,
        order_no=order_no,
        status=status,
        mall_state="new",
        ordered_at=AT,
        received_at=AT,
        lines=lines,
    )


ORDERS = (
    order(
        "rakuten-main",
        "123456-20261130-0000001",
        line(1, "socks-red", "000123", 2, "allocated", "靴下 赤 ① ㈱"),
        line(2, "mug-x", "", 1, "unmatched", "マグカップ 髙島屋限定"),
    ),
    order("yahoo-main", "store-10001", line(1, "tshirt", "TSHIRT-RED-M", 3, "warning", "Tシャツ")),
    order("yahoo-main", "store-10002", line(1, "set-a", "SET-A", 1, "warning", "靴下セット")),
)
DRY_RUN = control.Job(
    id=9,
    kind="import",
    shop="",
    state="done",
    started_at=AT,
    ended_at=AT,
    result="ok",
    count=3,
    success=2,
    failure=1,
    messages=(
        "line 3 [case-04] 想定在庫数: not an integer: 'x'",
        "line 2 [000123] expected 12 → 20",
        "line 4 [TSHIRT-RED-M] expected 100 → 96, reserve 20 → 10",
    ),
    errors=(RowError(line=3, code="case-04", field="想定在庫数", reason="not an integer: 'x'"),),
    dry_run=True,
)


class CannedOrdersLink(CannedLink):
    """The canned daemon, with orders and an import that always answers ``DRY_RUN``."""

    async def request(self, message: Any) -> Any:
        match message:
            case control.OrdersList():
                return control.OrdersReply(id=message.id, orders=ORDERS)
            case control.OrderShow():
                found = next(o for o in ORDERS if o.key == message.key)
                return control.OrderReply(id=message.id, order=found)
            case control.ImportStart():
                running = control.Job(id=9, kind="import", shop="", state="running", started_at=AT)
                return control.JobReply(id=message.id, job=running)
            case control.UploadChunk():
                return control.ChunkAck(
                    id=message.id, job=9, seq=message.seq, received_bytes=len(message.data)
                )
            case control.ImportFinish():
                return control.JobReply(id=message.id, job=DRY_RUN)
        return await super().request(message)


def canned_app(tmp_path: Path) -> ZaikoApp:
    config_path = write_config(tmp_path)
    return build_app(load_config(config_path), str(config_path), "ja", link=CannedOrdersLink())


@pytest.mark.usefixtures("utc")
@pytest.mark.parametrize("size", SIZES)
def test_orders(snap_compare: Callable[..., bool], tmp_path: Path, size: tuple[int, int]) -> None:
    async def open_orders(pilot: Pilot[None]) -> None:
        await pilot.press("f5")
        await rows_shown("#orders", len(ORDERS))(pilot)
        await pilot.pause()

    assert snap_compare(canned_app(tmp_path), terminal_size=size, run_before=open_orders)


@pytest.mark.usefixtures("utc")
@pytest.mark.parametrize("size", SIZES)
def test_order(snap_compare: Callable[..., bool], tmp_path: Path, size: tuple[int, int]) -> None:
    async def open_order(pilot: Pilot[None]) -> None:
        await pilot.press("f5")
        await rows_shown("#orders", len(ORDERS))(pilot)
        await pilot.press("enter")
        while not isinstance(pilot.app.screen, OrderScreen) or pilot.app.screen.order is None:
            await pilot.pause()
        await pilot.pause()

    assert snap_compare(canned_app(tmp_path), terminal_size=size, run_before=open_order)


@pytest.mark.usefixtures("utc")
@pytest.mark.parametrize("size", SIZES)
def test_import_dry_run(
    snap_compare: Callable[..., bool],
    tmp_path: Path,
    size: tuple[int, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the file tree starts at the current directory: one that holds the same every run
    files = tmp_path / "files"
    files.mkdir()
    (files / "stock.csv").write_bytes("商品コード,想定在庫数\r\n000123,20\r\n".encode("cp932"))
    monkeypatch.chdir(files)

    async def preview(pilot: Pilot[None]) -> None:
        await pilot.press("f6")
        while not pilot.app.screen.query(DirectoryTree):
            await pilot.pause()
        pilot.app.screen.query_one("#import-path", Input).value = "stock.csv"
        await pilot.press("p")
        await rows_shown("#import-preview", 2)(pilot)
        pilot.app.screen.query_one("#import-preview", DataTable).focus()
        await pilot.pause()

    assert snap_compare(canned_app(tmp_path), terminal_size=size, run_before=preview)
