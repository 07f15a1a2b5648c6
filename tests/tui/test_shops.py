"""The Shops screen against the real daemon process, seeded through the real CLI; and its
screenshots from canned data (tests/tui/canned.py) at 120x40 and 80x24, as
tests/tui/test_snapshots.py takes them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Select, Static

from daemon.config import load_config
from mallsim.maildir import deliver
from protocols import control
from protocols.settings import decode_shops_toml
from tests.conftest import ROOT, DaemonProcess, write_config
from tests.test_intake_e2e import order_mail
from tests.tui.canned import CannedLink
from tests.tui.helpers import drive, table, text_of, until
from tui.app import ZaikoApp, build_app
from tui.screens.shop_dialogs import BacklogDialog, GuardDialog, ReflectDialog
from tui.screens.shops import SettingsForm, ShopsScreen, widget_id

SHOPS_EXAMPLE = ROOT / "conf" / "shops.example.toml"
SIZES = [(120, 40), (80, 24)]


def app_for(daemon: DaemonProcess, lang: str = "ja") -> ZaikoApp:
    return build_app(daemon.config, str(daemon.config_path), lang)  # type: ignore[arg-type]


def shop_settings(daemon: DaemonProcess, shop_id: str) -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(daemon.cli("shops", "show", shop_id, "--json").stdout)
    return shown["shop"]


def backlog_of(daemon: DaemonProcess, shop_id: str) -> int:
    shown = json.loads(daemon.cli("shops", "show", shop_id, "--json").stdout)
    return int(shown["status"]["intake"]["backlog"])


def form(pilot: Pilot[None]) -> SettingsForm:
    screen = pilot.app.screen
    assert isinstance(screen, ShopsScreen)
    assert screen.form is not None
    return screen.form


def shows(pilot: Pilot[None], shop_id: str) -> bool:
    screen = pilot.app.screen
    if not isinstance(screen, ShopsScreen) or screen.form is None:
        return False
    return screen.form.settings is not None and screen.form.settings.id == shop_id


def has_field(pilot: Pilot[None], key: str) -> bool:
    return bool(form(pilot).query(f"#{widget_id(key, 'editor')}"))


def error_at(pilot: Pilot[None], key: str) -> str:
    error = form(pilot).query_one(f"#{widget_id(key, 'error')}", Static)
    return str(error.content) if error.has_class("-shown") else ""


async def open_shop(pilot: Pilot[None], shop_id: str) -> None:
    await pilot.press("f4")
    await until(pilot, lambda: bool(pilot.app.screen.query("#shop-list")), "the Shops screen")
    shops = pilot.app.screen.query_one("#shop-list", OptionList)
    await until(pilot, lambda: shops.option_count > 0, "the shop list")
    shops.highlighted = shops.get_option_index(shop_id)
    await until(pilot, lambda: shows(pilot, shop_id), f"the form of {shop_id}")


async def type_into(pilot: Pilot[None], key: str, text: str) -> None:
    editor = form(pilot).query_one(f"#{widget_id(key, 'editor')}", Input)
    editor.focus()
    editor.value = ""
    await pilot.press(*text)


def test_a_rakuten_shop_shows_rakuten_settings_under_the_manual_headings(
    daemon_process: DaemonProcess,
) -> None:
    daemon_process.cli("shops", "apply", str(SHOPS_EXAMPLE))
    app = app_for(daemon_process)

    async def scenario(pilot: Pilot[None]) -> None:
        await open_shop(pilot, "rakuten-main")
        headings = [str(s.content) for s in form(pilot).query(".section").results(Static)]
        assert headings == ["基本設定", "モール連携設定", "受注取込設定"]
        for key in ("send_interval_min", "trickle.refill_at", "take_buyer_cancel", "ftp_dir"):
            assert has_field(pilot, key), key
        # options of other malls (Amazon, Qoo10, Yahoo) are not Rakuten's
        for key in ("take_pending", "take_unpaid", "clear_store_cancel_flag"):
            assert not has_field(pilot, key), key
        transport = form(pilot).query_one(f"#{widget_id('transport', 'editor')}", Select)
        assert transport.value == "ftp"
        assert form(pilot).text_of("bulk_sync_hours") == "3,15"
        assert form(pilot).text_of("ftp_credential") == "rakuten-main.key"  # a name, no secret

        await open_shop(pilot, "futureshop-main")
        assert has_field(pilot, "variation_file_name")
        assert not has_field(pilot, "take_buyer_cancel")
        assert not has_field(pilot, "api_base_url")  # FutureShop takes stock by file only

    drive(app, scenario)


def test_an_invalid_value_is_said_at_its_field_and_nothing_is_saved(
    daemon_process: DaemonProcess,
) -> None:
    daemon_process.cli("shops", "apply", str(SHOPS_EXAMPLE))
    app = app_for(daemon_process)

    async def scenario(pilot: Pilot[None]) -> None:
        await open_shop(pilot, "rakuten-main")
        await type_into(pilot, "send_interval_min", "0")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: error_at(pilot, "send_interval_min"), "the field's error")
        assert "5–9999" in error_at(pilot, "send_interval_min")
        assert "send_interval_min" in text_of(pilot, "#notice")
        assert shop_settings(daemon_process, "rakuten-main")["send_interval_min"] == 5

        await type_into(pilot, "send_interval_min", "7")
        await type_into(pilot, "bulk_sync_hours", "3,25")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: error_at(pilot, "bulk_sync_hours"), "the hours' error")
        assert "25" in error_at(pilot, "bulk_sync_hours")
        assert not error_at(pilot, "send_interval_min")
        saved = shop_settings(daemon_process, "rakuten-main")
        assert (saved["send_interval_min"], saved["bulk_sync_hours"]) == (5, [3, 15])

    drive(app, scenario)


def test_a_valid_change_is_saved_as_one_shop_set_of_the_changed_keys(
    daemon_process: DaemonProcess,
) -> None:
    daemon_process.cli("shops", "apply", str(SHOPS_EXAMPLE))
    app = app_for(daemon_process, "en")

    async def scenario(pilot: Pilot[None]) -> None:
        await open_shop(pilot, "rakuten-main")
        assert str(form(pilot).query(".section").first(Static).content) == "Basic settings"
        await type_into(pilot, "send_interval_min", "15")
        await type_into(pilot, "bulk_sync_hours", "4, 16")
        assert form(pilot).changes() == {"send_interval_min": "15", "bulk_sync_hours": "4, 16"}
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "saved" in text_of(pilot, "#notice"), "the save")
        saved = shop_settings(daemon_process, "rakuten-main")
        assert (saved["send_interval_min"], saved["bulk_sync_hours"]) == (15, [4, 16])
        assert form(pilot).text_of("bulk_sync_hours") == "4,16"  # as the daemon stored it
        assert form(pilot).changes() == {}

        # another client's change shows up; what is being edited is kept
        await type_into(pilot, "distribution_rate", "80")
        daemon_process.cli("shops", "set", "rakuten-main", "send_interval_min=30")
        await until(pilot, lambda: form(pilot).text_of("send_interval_min") == "30", "reload")
        assert form(pilot).changes() == {"distribution_rate": "80"}

    drive(app, scenario)


def test_switching_reflect_on_shows_the_guard_list_and_force_saves(
    daemon_process: DaemonProcess,
) -> None:
    daemon_process.cli("shops", "apply", str(SHOPS_EXAMPLE))
    daemon_process.cli("sku", "add", "NEVER-1", "--name", "靴下")
    app = app_for(daemon_process, "en")

    async def scenario(pilot: Pilot[None]) -> None:
        await open_shop(pilot, "yahoo-main")
        reflect = form(pilot).query_one(f"#{widget_id('reflect', 'editor')}", Select)
        reflect.value = "active"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(pilot.app.screen, GuardDialog), "the guard")
        assert "NEVER-1" in str(pilot.app.screen.query_one("#guard-skus", Static).content)
        await pilot.click("#force")
        await until(pilot, lambda: "saved" in text_of(pilot, "#notice"), "the forced save")
        assert shop_settings(daemon_process, "yahoo-main")["reflect"] == "active"

    drive(app, scenario)


def test_reflect_now_shows_its_dry_run_as_a_table_first(daemon_process: DaemonProcess) -> None:
    daemon_process.cli("shops", "apply", str(SHOPS_EXAMPLE))
    for code, expected in (("A-1", "7"), ("B-2", "0")):
        daemon_process.cli("sku", "add", code, "--name", "靴下")
        daemon_process.cli("stock", "set", code, "--expected", expected)
    app = app_for(daemon_process, "en")

    async def scenario(pilot: Pilot[None]) -> None:
        await open_shop(pilot, "yahoo-main")
        await pilot.press("ctrl+r")
        await until(pilot, lambda: isinstance(pilot.app.screen, ReflectDialog), "the dry run")
        rows = table(pilot, "#reflect-rows")
        assert [str(key.value) for key in rows.rows] == ["A-1", "B-2"]
        assert str(rows.get_row("A-1")[1]) == "- → 7"
        await pilot.press("escape")  # reflect is stopped: nothing is sent
        await until(pilot, lambda: isinstance(pilot.app.screen, ShopsScreen), "the screen")

    drive(app, scenario)


def test_switching_intake_on_while_orders_wait_asks_take_or_skip(
    daemon_process: DaemonProcess,
) -> None:
    daemon_process.cli("shops", "apply", str(SHOPS_EXAMPLE))
    maildir = daemon_process.config.maildir_root / "futureshop-main"
    deliver(maildir, order_mail("futureshop", "fs-1", ("a1", 1)), when=1_700_000_000)
    deadline = time.monotonic() + 30
    while backlog_of(daemon_process, "futureshop-main") == 0:  # its intake actor counts it
        assert time.monotonic() < deadline, "the backlog was never counted"
        time.sleep(0.2)
    app = app_for(daemon_process, "en")

    async def scenario(pilot: Pilot[None]) -> None:
        await open_shop(pilot, "futureshop-main")
        intake = form(pilot).query_one(f"#{widget_id('order_intake', 'editor')}", Select)
        intake.value = "active"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(pilot.app.screen, BacklogDialog), "the choice")
        await pilot.click("#skip")
        await until(pilot, lambda: "saved" in text_of(pilot, "#notice"), "the save")
        assert shop_settings(daemon_process, "futureshop-main")["order_intake"] == "active"

    drive(app, scenario)


def test_audit_says_its_job(daemon_process: DaemonProcess) -> None:
    daemon_process.cli("shops", "apply", str(SHOPS_EXAMPLE))
    app = app_for(daemon_process, "en")

    async def scenario(pilot: Pilot[None]) -> None:
        await open_shop(pilot, "yahoo-main")
        await pilot.press("ctrl+t")
        await until(
            pilot, lambda: "audit of yahoo-main started" in text_of(pilot, "#notice"), "job"
        )
        job = text_of(pilot, "#notice").rsplit("job ", 1)[1].rstrip(")")
        shown = json.loads(daemon_process.cli("jobs", "show", job, "--json").stdout)["job"]
        assert (shown["kind"], shown["shop"]) == ("audit", "yahoo-main")

    drive(app, scenario)


EXAMPLE_SHOPS = {shop.id: shop for shop in decode_shops_toml(SHOPS_EXAMPLE.read_bytes())}


class CannedShops(CannedLink):
    """The canned daemon, and the example file's settings of its shops."""

    async def request(self, message: Any) -> Any:
        if isinstance(message, control.ShopShow):
            return control.ShopReply(id=message.id, shop=EXAMPLE_SHOPS[message.shop])
        return await super().request(message)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot(snap_compare: Callable[..., bool], tmp_path: Path, size: tuple[int, int]) -> None:
    config_path = write_config(tmp_path)
    app = build_app(load_config(config_path), str(config_path), "ja", link=CannedShops())

    async def open_rakuten(pilot: Pilot[None]) -> None:
        await pilot.press("f4")
        await until(pilot, lambda: shows(pilot, "rakuten-main"), "the form")
        await pilot.wait_for_scheduled_animations()  # the tabs' underline moves to Shops

    assert snap_compare(app, terminal_size=size, run_before=open_rakuten)
