"""What an operator can do with the CLI, done from the TUI against the real daemon process,
and read back through the real CLI: a SKU registered and a set defined from Stock, a count
added to from a SKU, a listings CSV imported from Import, a shops file applied from Shops."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Select, TextArea

from cli.main import build_parser
from tests.conftest import DaemonProcess
from tests.tui.helpers import drive, row_keys, table, text_of, until
from tui.app import ZaikoApp, build_app
from tui.screens.imports import ImportScreen
from tui.screens.registry import SCREENS
from tui.screens.shops import ShopsScreen
from tui.screens.stock import SkuScreen


def app_for(daemon: DaemonProcess, lang: str = "en") -> ZaikoApp:
    return build_app(daemon.config, str(daemon.config_path), lang)  # type: ignore[arg-type]


def sku_of(daemon: DaemonProcess, code: str) -> dict[str, Any]:
    sku: dict[str, Any] = json.loads(daemon.cli("sku", "show", code, "--json").stdout)["sku"]
    return sku


async def dialog_with(pilot: Pilot[None], selector: str) -> None:
    await until(pilot, lambda: bool(pilot.app.screen.query(selector)), f"the dialog ({selector})")


async def confirm(pilot: Pilot[None], answer: str = "y") -> None:
    await dialog_with(pilot, "#yes")
    await pilot.press(answer)


def field(pilot: Pilot[None], selector: str) -> Input:
    return pilot.app.screen.query_one(selector, Input)


def test_a_sku_registered_from_the_stock_screen_is_there_and_a_second_time_refused(
    daemon_process: DaemonProcess,
) -> None:
    app = app_for(daemon_process)

    async def register(pilot: Pilot[None], code: str) -> None:
        await pilot.press("ctrl+n")
        await dialog_with(pilot, "#sku-code")
        field(pilot, "#sku-code").value = code
        field(pilot, "#sku-name").value = "靴下 赤"
        field(pilot, "#sku-reserve").value = "2"
        field(pilot, "#sku-reserve").focus()
        await pilot.press("enter")

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("f2")
        await until(pilot, lambda: app.link_up, "the link")
        await register(pilot, "N-1")
        await confirm(pilot, "n")
        await until(pilot, lambda: not pilot.app.screen.query("#yes"), "the dialog to close")
        assert daemon_process.cli("sku", "show", "N-1", check=False).returncode != 0

        await register(pilot, "N-1")
        await confirm(pilot)
        await until(pilot, lambda: "N-1 registered" in text_of(pilot, "#notice"), "the SKU")
        await until(pilot, lambda: row_keys(pilot, "#skus") == ["N-1"], "its row")

        await register(pilot, "N-1")
        await confirm(pilot)
        await until(pilot, lambda: "conflict" in text_of(pilot, "#notice"), "the refusal")
        assert "\n" not in text_of(pilot, "#notice")

    drive(app, scenario)
    sku = sku_of(daemon_process, "N-1")
    assert (sku["name"], sku["stock"]["reserve"]) == ("靴下 赤", 2)


def test_a_set_defined_from_the_stock_screen_shows_its_composition(
    daemon_process: DaemonProcess,
) -> None:
    for code in ("C-1", "C-2"):
        daemon_process.cli("sku", "add", code)
    app = app_for(daemon_process, "ja")

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("f2")
        await until(pilot, lambda: len(row_keys(pilot, "#skus")) == 2, "the SKUs")
        await pilot.press("ctrl+g")
        await dialog_with(pilot, "#set-children")
        field(pilot, "#set-parent").value = "SET-1"
        field(pilot, "#set-name").value = "ギフトセット"
        children = pilot.app.screen.query_one("#set-children", TextArea)
        children.text = "C-1:2\nC-2"
        children.focus()
        await pilot.press("tab", "enter")  # Tab leaves the children for OK
        await until(pilot, lambda: "2 行目" in text_of(pilot, "#dialog-error"), "the bad line")
        children.text = "C-1:2\nC-2:1\n"
        ok = pilot.app.screen.query_one("#ok")
        # a button takes no second press while it shows the first (a fifth of a second)
        await until(pilot, lambda: not ok.has_class("-active"), "the button")
        await pilot.press("enter")
        await confirm(pilot)
        await until(pilot, lambda: "SET-1" in row_keys(pilot, "#skus"), "the set's row")

    drive(app, scenario)
    sku = sku_of(daemon_process, "SET-1")
    assert sku["name"] == "ギフトセット"
    assert sku["children"] == [{"code": "C-1", "qty": 2}, {"code": "C-2", "qty": 1}]


def test_adding_minus_two_in_the_edit_dialog_moves_expected_by_minus_two(
    daemon_process: DaemonProcess,
) -> None:
    daemon_process.cli("sku", "add", "A-1")
    daemon_process.cli("stock", "set", "A-1", "--expected", "5")
    app = app_for(daemon_process)

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("f2")
        await until(pilot, lambda: row_keys(pilot, "#skus") == ["A-1"], "the SKU")
        table(pilot, "#skus").focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, SkuScreen), "the SKU screen")
        await until(pilot, lambda: pilot.app.screen._sku is not None, "its detail")  # type: ignore[attr-defined]
        await pilot.press("e")
        await dialog_with(pilot, "#how")
        pilot.app.screen.query_one("#how", Select).value = "add"
        await until(pilot, lambda: field(pilot, "#value").value == "0", "the delta's start")
        field(pilot, "#value").value = "-2"
        field(pilot, "#value").focus()
        await pilot.press("enter")
        await dialog_with(pilot, "#yes")
        assert "(5 → 3)" in str(pilot.app.screen.query_one(".question").content)  # type: ignore[attr-defined]
        await pilot.press("y")
        await until(pilot, lambda: "is 3 now" in text_of(pilot, "#notice"), "the change")

    drive(app, scenario)
    assert sku_of(daemon_process, "A-1")["stock"]["expected"] == 3


TUI_SHOP = '[[shops]]\nid = "tui-shop"\nmall = "yahoo"\nname = "Yahoo店"\n'


def test_a_listings_csv_imported_from_the_import_screen_maps_the_items(
    daemon_process: DaemonProcess, tmp_path: Path
) -> None:
    shops_file = tmp_path / "shops.toml"
    shops_file.write_text(TUI_SHOP, encoding="utf-8")
    daemon_process.cli("shops", "apply", str(shops_file))
    for code in ("L-1", "L-2"):
        daemon_process.cli("sku", "add", code)
    listings = tmp_path / "listings.csv"
    listings.write_bytes("商品コード,モール商品ID\r\nL-1,item-a\r\nL-2,item-b\r\n".encode("cp932"))
    refused = tmp_path / "refused.csv"
    refused.write_bytes(b"sku,item_id\r\nL-1,item-c\r\nNOPE,item-d\r\n")
    app = app_for(daemon_process)

    async def run(pilot: Pilot[None], path: Path, key: str) -> None:
        screen = pilot.app.screen
        screen.query_one("#import-path", Input).value = str(path)
        screen.query_one("#import-tree").focus()
        await pilot.press(key)

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("f6")
        await until(pilot, lambda: isinstance(pilot.app.screen, ImportScreen), "the screen")
        screen = pilot.app.screen
        screen.query_one("#import-kind", Select).value = "listings"
        await run(pilot, listings, "i")
        await until(pilot, lambda: "pick the shop" in text_of(pilot, "#notice"), "no shop")

        shop = screen.query_one("#import-shop", Select)
        await until(pilot, lambda: bool(shop._options[1:]), "the shops")
        shop.value = "tui-shop"
        await run(pilot, listings, "p")
        await until(pilot, lambda: "2 rows read" in text_of(pilot, "#import-summary"), "a read")
        await run(pilot, listings, "i")
        await confirm(pilot)
        await until(pilot, lambda: "2 listing rows" in text_of(pilot, "#import-summary"), "done")

        await run(pilot, refused, "i")
        await confirm(pilot)
        await until(pilot, lambda: "invalid" in text_of(pilot, "#notice"), "the refusal")
        assert "\n" not in text_of(pilot, "#notice")
        assert "row 2 [NOPE]: unknown SKU" in text_of(pilot, "#import-summary")

    drive(app, scenario)
    shops = {row["shop"]: row for row in sku_of(daemon_process, "L-1")["shops"]}
    assert shops["tui-shop"]["item_id"] == "item-a"  # the refused file changed nothing


def test_a_shops_file_applied_from_the_shops_screen_creates_the_shop(
    daemon_process: DaemonProcess, tmp_path: Path
) -> None:
    shops_file = tmp_path / "shops.toml"
    shops_file.write_text(TUI_SHOP, encoding="utf-8")
    broken = tmp_path / "broken.toml"
    broken.write_text('[[shops]]\nid = "x"\nmall = "nomall"\n', encoding="utf-8")
    app = app_for(daemon_process)

    async def apply(pilot: Pilot[None], path: Path) -> None:
        await pilot.press("ctrl+o")
        await dialog_with(pilot, "#path")
        field(pilot, "#path").value = str(path)
        await pilot.press("enter")

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("f4")
        await until(pilot, lambda: isinstance(pilot.app.screen, ShopsScreen), "the screen")
        await until(pilot, lambda: app.link_up, "the link")
        await apply(pilot, broken)
        await until(pilot, lambda: "broken.toml" in text_of(pilot, "#notice"), "the refusal")
        assert "\n" not in text_of(pilot, "#notice")

        await apply(pilot, shops_file)
        await dialog_with(pilot, "#yes")
        question = str(pilot.app.screen.query_one(".question").content)  # type: ignore[attr-defined]
        assert "tui-shop" in question and "yahoo" in question and "new" in question
        await pilot.press("y")
        await until(pilot, lambda: "1 shops applied" in text_of(pilot, "#notice"), "applied")
        shop_list = pilot.app.screen.query_one("#shop-list", OptionList)
        await until(pilot, lambda: shop_list.option_count == 1, "the shop in the list")

    drive(app, scenario)
    shown = json.loads(daemon_process.cli("shops", "show", "tui-shop", "--json").stdout)
    assert (shown["shop"]["mall"], shown["shop"]["name"]) == ("yahoo", "Yahoo店")


def test_the_tui_help_names_every_screen() -> None:
    words = " ".join(build_parser().format_help().split())  # argparse wraps the line
    described = words[words.index("tui the operator's") : words.index(" sku ")]
    assert all(entry.mode in described for entry in SCREENS)
