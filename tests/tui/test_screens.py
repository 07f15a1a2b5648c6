"""The TUI against the real daemon process, seeded through the real CLI."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import tomllib
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input, Log

from mallsim.maildir import deliver
from tests.conftest import ROOT, DaemonProcess
from tests.test_intake_e2e import order_mail
from tests.tui.helpers import drive, row_keys, table, text_of, until
from tui.app import ZaikoApp, build_app
from tui.screens.jobs import JobScreen
from tui.screens.stock import PAGE, SkuScreen

SHOPS_EXAMPLE = ROOT / "conf" / "shops.example.toml"


def app_for(daemon: DaemonProcess, lang: str = "en") -> ZaikoApp:
    return build_app(daemon.config, str(daemon.config_path), lang)  # type: ignore[arg-type]


def expected_of(daemon: DaemonProcess, code: str) -> int:
    shown = json.loads(daemon.cli("sku", "show", code, "--json").stdout)
    return int(shown["sku"]["stock"]["expected"])


def write_catalog(path: Path, count: int) -> Path:
    """``count`` SKUs with names that repeat, and one whose name is like no other."""
    names = ("靴下", "Tシャツ", "マグカップ", "帽子", "タオル")
    rows = ["商品コード,商品名", *(f"SKU-{i:05d},{names[i % 5]} {i}号" for i in range(count))]
    rows.append("ZZ-ONE,特製ほうじ茶 ①")
    path.write_text("\r\n".join(rows) + "\r\n", encoding="cp932")
    return path


def test_dashboard_shows_every_shop_and_reconnects_after_a_restart(
    daemon_process: DaemonProcess,
) -> None:
    daemon_process.cli("shops", "apply", str(SHOPS_EXAMPLE))
    shop_ids = [shop["id"] for shop in tomllib.loads(SHOPS_EXAMPLE.read_text())["shops"]]
    app = app_for(daemon_process)

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: table(pilot, "#shops").row_count == len(shop_ids), "shops")
        assert sorted(row_keys(pilot, "#shops")) == sorted(shop_ids)
        assert app.link_status == "connected"
        assert f"{len(shop_ids)} shops" in text_of(pilot, "#summary")

        assert await asyncio.to_thread(daemon_process.stop, signal.SIGTERM) == 0
        await until(pilot, lambda: not app.link_up, "the link to go down")
        assert app.link_status.startswith("not connected: ")
        await asyncio.to_thread(daemon_process.start)  # port 0: it listens elsewhere now
        await until(pilot, lambda: app.link_up, "the link to come back")
        await until(pilot, lambda: table(pilot, "#shops").row_count == len(shop_ids), "shops")

    drive(app, scenario)


def test_without_a_daemon_the_status_line_says_how_to_start_one(config_path: Path) -> None:
    from daemon.config import load_config

    app = build_app(load_config(config_path), str(config_path), "en")

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: "Start it with" in app.link_status, "the hint")
        assert f"zaiko --config {config_path} daemon" in app.link_status
        assert "\n" not in app.link_status

    drive(app, scenario)


def test_stock_search_finds_one_sku_among_many_and_reads_pages_as_scrolled(
    daemon_process: DaemonProcess, tmp_path: Path
) -> None:
    daemon_process.cli("sku", "import", str(write_catalog(tmp_path / "catalog.csv", 2000)))
    listed = json.loads(daemon_process.cli("sku", "list", "--name", "ほうじ", "--json").stdout)
    assert [sku["code"] for sku in listed["skus"]] == ["ZZ-ONE"]
    app = app_for(daemon_process, "ja")

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("f2")
        skus = lambda: table(pilot, "#skus")  # noqa: E731
        await until(pilot, lambda: skus().row_count == PAGE, "the first page")
        skus().focus()
        skus().move_cursor(row=PAGE - 1)  # near the end: the next page is read
        await until(pilot, lambda: skus().row_count == 2 * PAGE, "the second page")

        pilot.app.screen.query_one("#name", Input).focus()
        await pilot.press(*"ほうじ", "enter")
        await until(pilot, lambda: row_keys(pilot, "#skus") == ["ZZ-ONE"], "the one SKU")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, SkuScreen), "the SKU")
        await until(pilot, lambda: "特製ほうじ茶" in str(pilot.app.screen._sku), "its detail")
        await pilot.press("escape")

        pilot.app.screen.query_one("#name", Input).value = ""
        pilot.app.screen.query_one("#code", Input).focus()
        await pilot.press(*"SKU-0199", "enter")
        await until(pilot, lambda: len(row_keys(pilot, "#skus")) == 10, "SKU-0199x")

    drive(app, scenario)


def test_a_stock_edit_is_confirmed_first_and_a_refusal_is_one_line(
    daemon_process: DaemonProcess,
) -> None:
    daemon_process.cli("sku", "add", "A-1", "--name", "靴下")
    daemon_process.cli("stock", "set", "A-1", "--expected", "3")
    app = app_for(daemon_process)

    async def edit(pilot: Pilot[None], value: str, answer: str) -> None:
        await pilot.press("e")
        await until(pilot, lambda: pilot.app.screen.query("#value").first(Input).has_focus, "edit")
        await pilot.press("backspace", *value, "enter")
        await until(pilot, lambda: pilot.app.screen.query("#yes"), "the confirmation")
        if answer:  # else the test answers later
            await pilot.press(answer)

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("f2")
        await until(pilot, lambda: row_keys(pilot, "#skus") == ["A-1"], "the SKU")
        table(pilot, "#skus").focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, SkuScreen), "the SKU screen")
        screen = pilot.app.screen
        assert isinstance(screen, SkuScreen)
        await until(pilot, lambda: screen._sku is not None, "the SKU's detail")

        await edit(pilot, "8", "n")
        await until(pilot, lambda: pilot.app.screen is screen, "the dialog to close")
        assert expected_of(daemon_process, "A-1") == 3

        await edit(pilot, "8", "y")
        await until(pilot, lambda: "is 8 now" in text_of(pilot, "#notice"), "the change")
        assert expected_of(daemon_process, "A-1") == 8
        await until(pilot, lambda: len(table(pilot, "#sku-journal").rows) == 2, "its journal")

        await edit(pilot, "-1", "y")
        await until(pilot, lambda: "refused" in text_of(pilot, "#notice"), "the refusal")
        assert "\n" not in text_of(pilot, "#notice")
        assert expected_of(daemon_process, "A-1") == 8

        # 3 sold while the operator confirms 9: refused, not overwritten (the sale stays)
        await edit(pilot, "9", "")
        daemon_process.cli("stock", "add", "A-1", "--expected", "-3")
        await pilot.press("y")
        await until(pilot, lambda: "is 5 now, not 8" in text_of(pilot, "#notice"), "refusal")
        assert expected_of(daemon_process, "A-1") == 5

    drive(app, scenario)


def test_jobs_list_opens_a_job_and_saves_a_stock_download(
    daemon_process: DaemonProcess, tmp_path: Path
) -> None:
    daemon_process.cli("sku", "import", str(write_catalog(tmp_path / "catalog.csv", 20)))
    saved = tmp_path / "stock.csv"
    app = app_for(daemon_process)

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("f3")
        await until(pilot, lambda: table(pilot, "#jobs").row_count == 1, "the import job")
        assert "1 jobs (0 running · 1 ok · 0 failed)" in text_of(pilot, "#job-counts")
        table(pilot, "#jobs").focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, JobScreen), "the job")
        await until(pilot, lambda: pilot.app.screen.query_one(Log).line_count > 0, "its messages")
        await pilot.press("escape")

        await pilot.press("d")
        await until(pilot, lambda: bool(pilot.app.screen.query("#path")), "the dialog")
        pilot.app.screen.query_one("#path", Input).value = str(saved)
        await pilot.press("enter")
        await until(pilot, lambda: "saved" in text_of(pilot, "#notice"), "the download")
        await until(pilot, lambda: table(pilot, "#jobs").row_count == 2, "the export job")

    drive(app, scenario)
    assert saved.read_bytes().decode("cp932").splitlines()[0].startswith('"商品コード",')
    assert "ZZ-ONE" in saved.read_bytes().decode("cp932")
    assert not saved.with_name("stock.csv.part").exists()


def test_an_oversell_is_said_whichever_screen_is_shown(daemon_process: DaemonProcess) -> None:
    """The operator is on the stock screen when an order oversells: the app says so at once
    and the dashboard lists it when switched to."""
    zaiko = daemon_process.cli
    zaiko("shops", "apply", str(SHOPS_EXAMPLE))
    zaiko("sku", "add", "K1")
    zaiko("stock", "set", "K1", "--expected", "1")
    zaiko("shops", "set", "rakuten-main", "order_intake=active", "--backlog", "take")
    maildir = daemon_process.config.maildir_root / "rakuten-main"
    app = app_for(daemon_process)

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.link_up, "the link")
        await pilot.press("f2")
        await until(pilot, lambda: app.current_mode == "stock", "the stock screen")
        deliver(maildir, order_mail("rakuten", "over-1", ("K1", 3)), when=time.time())
        await until(pilot, lambda: bool(app.oversells), "the oversell")
        assert app.oversells[0][1].sku == "K1"
        assert any("K1" in str(notice.message) for notice in app._notifications)
        await pilot.press("f1")
        await until(pilot, lambda: "K1" in text_of(pilot, "#oversells"), "the dashboard's list")

    drive(app, scenario)
