"""The Orders screen against the real daemon process: orders taken from real Maildirs while
the shop's intake is 連動停止 (warning lines) and for an item no SKU maps (unmatched)."""

from __future__ import annotations

import json

import trio
from textual.pilot import Pilot
from textual.widgets import Input, Static

from mallsim.maildir import deliver
from tests.conftest import ROOT, DaemonProcess
from tests.test_intake_e2e import filed_everything, order_mail, sku_of, wait_for_intake
from tests.tui.helpers import drive, row_keys, table, text_of, until
from tui.app import build_app
from tui.screens.orders import OrderScreen

SHOP = "yahoo-main"


def expected_of(daemon: DaemonProcess, code: str) -> int:
    shown = json.loads(daemon.cli("sku", "show", code, "--json").stdout)
    return int(shown["sku"]["stock"]["expected"])


def take_orders_while_suspended(daemon: DaemonProcess) -> str:
    """Two orders at a 連動停止 shop: one of a known SKU (warning), one of an unknown item
    (unmatched). The known SKU's code."""
    zaiko = daemon.cli
    zaiko("shops", "apply", str(ROOT / "conf" / "shops.example.toml"))
    code = sku_of("yahoo", "a1")
    zaiko("sku", "add", code)
    zaiko("stock", "set", code, "--expected", "5")
    zaiko("sku", "add", "B-2", "--name", "靴下")
    zaiko("stock", "set", "B-2", "--expected", "4")
    zaiko("shops", "set", SHOP, "order_intake=suspended")
    root = daemon.config.maildir_root
    deliver(root / SHOP, order_mail("yahoo", "store-1", ("a1", 2)), when=1_700_000_000)
    deliver(root / SHOP, order_mail("yahoo", "store-2", ("unknown-item", 1)), when=1_700_000_000)
    trio.run(wait_for_intake, daemon, filed_everything(root, {SHOP: 2}))
    return code


def test_a_warning_order_is_applied_and_an_unmatched_line_matched(
    daemon_process: DaemonProcess,
) -> None:
    code = take_orders_while_suspended(daemon_process)
    # B-2 is listed at the shop as another item, its reflection stopped there by the operator
    listing = daemon_process.config_path.parent / "listing.csv"
    listing.write_text("sku,item_id,linked\nB-2,old-item,0\n", encoding="utf-8")
    daemon_process.cli("listings", "import", str(listing), "--shop", SHOP, "--encoding", "utf-8")
    app = build_app(daemon_process.config, str(daemon_process.config_path), "en")

    async def confirm(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: bool(pilot.app.screen.query("#yes")), "the confirmation")
        await pilot.press("y")

    async def open_order(pilot: Pilot[None], key: str) -> OrderScreen:
        orders = table(pilot, "#orders")
        orders.focus()
        orders.move_cursor(row=orders.get_row_index(key))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, OrderScreen), key)
        screen = pilot.app.screen
        assert isinstance(screen, OrderScreen)
        await until(pilot, lambda: screen.order is not None, "its lines")
        return screen

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("f5")
        await until(pilot, lambda: table(pilot, "#orders").row_count == 2, "the two orders")
        assert row_keys(pilot, "#orders") == [f"{SHOP}:store-1", f"{SHOP}:store-2"]
        statuses = [str(row[2]) for row in map(table(pilot, "#orders").get_row_at, (0, 1))]
        assert statuses == ["warning", "unmatched"]
        assert "1 warning lines · 1 unmatched lines" in text_of(pilot, "#order-count")

        screen = await open_order(pilot, f"{SHOP}:store-1")
        await pilot.press("a")
        await confirm(pilot)
        await until(pilot, lambda: "applied" in text_of(pilot, "#notice"), "the apply")
        assert screen.order is not None and screen.order.status == "allocated"
        assert expected_of(daemon_process, code) == 3
        await pilot.press("escape")
        # order_changed refreshed the list: only the unmatched order still waits
        await until(pilot, lambda: row_keys(pilot, "#orders") == [f"{SHOP}:store-2"], "the refresh")

        screen = await open_order(pilot, f"{SHOP}:store-2")
        await pilot.press("m")
        await until(pilot, lambda: bool(pilot.app.screen.query("#sku-code")), "the SKU dialog")
        pilot.app.screen.query_one("#sku-code", Input).value = "B-2"
        await pilot.press("enter")
        await until(pilot, lambda: bool(pilot.app.screen.query("#yes")), "the confirmation")
        # what the match replaces is said before it is done
        question = pilot.app.screen.query_one(".question", Static)
        assert "now listed as item old-item" in str(question.content)
        await confirm(pilot)
        # the shop is 連動停止: the matched line is a warning now, applied as the other was
        await until(
            pilot,
            lambda: screen.order is not None and screen.order.status == "warning",
            "the matched line",
        )
        assert screen.order is not None and screen.order.lines[0].sku == "B-2"
        await pilot.press("a")
        await confirm(pilot)
        await until(
            pilot,
            lambda: screen.order is not None and screen.order.status == "allocated",
            "the second apply",
        )
        assert expected_of(daemon_process, "B-2") == 3
        # the listing moved to the order's item and stays stopped, as the operator had it
        shops = json.loads(daemon_process.cli("sku", "show", "B-2", "--json").stdout)["sku"]
        listed = next(q for q in shops["shops"] if q["shop"] == SHOP)
        assert listed["item_id"] == "unknown-item" and listed["linked"] is False
        await pilot.press("escape")
        await until(pilot, lambda: table(pilot, "#orders").row_count == 0, "an empty list")

    drive(app, scenario)


def test_a_dismissed_order_moves_no_stock_and_the_filters_still_find_it(
    daemon_process: DaemonProcess,
) -> None:
    code = take_orders_while_suspended(daemon_process)
    app = build_app(daemon_process.config, str(daemon_process.config_path), "ja")

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("f5")
        await until(pilot, lambda: table(pilot, "#orders").row_count == 2, "the two orders")
        orders = table(pilot, "#orders")
        orders.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, OrderScreen), "the order")
        screen = pilot.app.screen
        assert isinstance(screen, OrderScreen)
        await until(pilot, lambda: screen.order is not None, "its lines")
        assert screen.order is not None and screen.order.status == "warning"
        await pilot.press("d")
        await until(pilot, lambda: bool(pilot.app.screen.query("#yes")), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: "対象外" in text_of(pilot, "#notice"), "the dismissal")
        assert expected_of(daemon_process, code) == 5
        await pilot.press("escape")
        await until(pilot, lambda: table(pilot, "#orders").row_count == 1, "the refresh")

        pilot.app.screen.query_one("#order-status").value = "dismissed"  # type: ignore[attr-defined]
        await until(
            pilot, lambda: row_keys(pilot, "#orders") == [f"{SHOP}:store-1"], "the dismissed"
        )
        pilot.app.screen.query_one("#order-status").value = "all"  # type: ignore[attr-defined]
        pilot.app.screen.query_one("#order-shop").value = SHOP  # type: ignore[attr-defined]
        await until(pilot, lambda: table(pilot, "#orders").row_count == 2, "every order")

    drive(app, scenario, size=(80, 24))
