"""The Import screen against the real daemon process: an Excel for Mac TEMPOSTAR stock file
(cp932, CR line ends, one row that is not an integer) previewed, then applied for real."""

from __future__ import annotations

import json
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Button, DataTable, DirectoryTree, Input, ProgressBar

from tests.conftest import ROOT, DaemonProcess
from tests.tui.helpers import drive, table, text_of, until
from tui.app import build_app
from tui.screens.imports import ImportScreen

FIXTURE = ROOT / "tests" / "fixtures" / "tempostar-stock-mac.csv"
CODES = ("mug-01", "tshirt-001-レッド", "cap-01-bk", "case-04", "bag-02")


def stock_of(daemon: DaemonProcess, code: str) -> dict[str, int]:
    shown = json.loads(daemon.cli("sku", "show", code, "--json").stdout)
    return dict(shown["sku"]["stock"])


def cells(grid: DataTable[object]) -> list[list[str]]:
    return [[str(cell) for cell in grid.get_row_at(row)] for row in range(grid.row_count)]


def test_a_preview_shows_before_and_after_then_applies_and_lists_the_failed_line(
    daemon_process: DaemonProcess, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog.csv"
    catalog.write_bytes(
        ("商品コード,商品名\r\n" + "".join(f"{c},\r\n" for c in CODES)).encode("cp932")
    )
    daemon_process.cli("sku", "import", str(catalog))
    daemon_process.cli("stock", "set", "mug-01", "--expected", "2")
    app = build_app(daemon_process.config, str(daemon_process.config_path), "en")

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("f6")
        await until(pilot, lambda: isinstance(pilot.app.screen, ImportScreen), "the screen")
        screen = pilot.app.screen
        screen.query_one("#import-path", Input).value = str(FIXTURE)
        screen.query_one(DirectoryTree).focus()
        await pilot.press("p")
        await until(pilot, lambda: table(pilot, "#import-preview").row_count == 4, "the preview")
        preview = cells(table(pilot, "#import-preview"))
        assert preview[0] == ["2", "mug-01", "expected", "2", "12", ""]
        assert [row[1] for row in preview] == ["mug-01", "tshirt-001-レッド", "cap-01-bk", "bag-02"]
        assert preview[1][5] == "0 → 1"  # its 保留在庫数 too
        failed = cells(table(pilot, "#import-failures"))
        assert failed == [["6", "case-04", "想定在庫数", "not an integer: 'x'"]]
        assert stock_of(daemon_process, "mug-01")["expected"] == 2  # a preview changes nothing
        progress = screen.query_one(ProgressBar)
        assert progress.total == FIXTURE.stat().st_size == progress.progress

        assert not screen.query_one("#apply", Button).disabled
        await pilot.press("a")
        await until(pilot, lambda: bool(pilot.app.screen.query("#yes")), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: table(pilot, "#import-preview").row_count == 0, "the import")
        await until(pilot, lambda: "done" in text_of(pilot, "#import-phase"), "its end")
        assert cells(table(pilot, "#import-failures")) == failed
        assert screen.query_one("#apply", Button).disabled

    drive(app, scenario)
    assert stock_of(daemon_process, "mug-01")["expected"] == 12
    assert stock_of(daemon_process, "tshirt-001-レッド")["reserve"] == 1
    assert stock_of(daemon_process, "bag-02")["expected"] == 5
    assert stock_of(daemon_process, "case-04")["registered"] is False


def test_an_unreadable_file_and_a_refused_option_are_said_in_one_line(
    daemon_process: DaemonProcess, tmp_path: Path
) -> None:
    app = build_app(daemon_process.config, str(daemon_process.config_path), "ja")
    missing = tmp_path / "missing.csv"

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("f6")
        await until(pilot, lambda: isinstance(pilot.app.screen, ImportScreen), "the screen")
        screen = pilot.app.screen
        screen.query_one(DirectoryTree).focus()
        await pilot.press("p")
        await until(pilot, lambda: "ファイル" in text_of(pilot, "#notice"), "no file yet")

        screen.query_one("#import-path", Input).value = str(missing)
        await pilot.press("p")
        await until(pilot, lambda: "missing.csv" in text_of(pilot, "#notice"), "the OS error")

        screen.query_one("#import-path", Input).value = str(FIXTURE)
        screen.query_one("#import-format").value = "yahoo_quantity"  # type: ignore[attr-defined]
        screen.query_one("#import-mode").value = "per-row"  # type: ignore[attr-defined]
        await pilot.press("p")
        await until(pilot, lambda: "per-row" in text_of(pilot, "#notice"), "the refusal")
        assert "\n" not in text_of(pilot, "#notice")

    drive(app, scenario, size=(80, 24))
