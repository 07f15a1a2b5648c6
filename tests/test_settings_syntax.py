"""Which settings each mall kind has, the operator's KEY=VALUE syntax both ways, and refusals
that list what is valid (with a close match for a typo)."""

from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.malls import KINDS, capability
from protocols.settings import (
    FIXED_SETTINGS,
    MALL_OPTIONS,
    SETTING_GROUPS,
    SETTING_TYPES,
    SettingsError,
    ShopSettings,
    apply_changes,
    decode_shops_toml,
    mall_settings,
    parse_setting,
    setting_text,
    setting_value,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SHOPS = decode_shops_toml((ROOT / "conf" / "shops.example.toml").read_bytes())
STOCK_OUT = [key for key, group in SETTING_GROUPS.items() if group == "stock_out"]
FILE_TRANSPORT = [key for key, group in SETTING_GROUPS.items() if group == "file_transport"]


def shop(**fields: object) -> ShopSettings:
    return msgspec.convert({"id": "r1", "mall": "rakuten", **fields}, ShopSettings)


def test_every_setting_belongs_to_one_group() -> None:
    # a new field in ShopSettings must say which malls have it, or shops show would hide it
    assert set(SETTING_GROUPS) == set(SETTING_TYPES) - set(FIXED_SETTINGS)


@pytest.mark.parametrize("kind", KINDS)
def test_a_mall_kind_has_the_settings_its_capability_says(kind: str) -> None:
    cap = capability(kind)
    keys = set(mall_settings(kind))
    assert {"name", "order_intake"} <= keys
    assert keys & set(MALL_OPTIONS) == set(cap.options)
    assert (set(FILE_TRANSPORT) <= keys) == ("ftp" in cap.stock_out)
    assert not (set(FILE_TRANSPORT) & keys) or "ftp" in cap.stock_out
    assert (set(STOCK_OUT) <= keys) == bool(cap.stock_out)
    assert not (set(STOCK_OUT) & keys) or cap.stock_out


def test_the_intake_only_mall_has_no_stock_out_settings() -> None:
    keys = mall_settings("yahoo_auction")
    for key in ("reflect", "send_interval_min", "bulk_sync_hours", "trickle.quantity", "ftp_url"):
        assert key not in keys
    assert mall_settings("amazon").count("take_pending") == 1
    assert "take_buyer_cancel" not in mall_settings("amazon")
    assert "api_base_url" not in mall_settings("futureshop")  # orders by mail, stock by file


@pytest.mark.parametrize("example", EXAMPLE_SHOPS, ids=lambda s: s.id)
def test_shown_values_read_back_unchanged(example: ShopSettings) -> None:
    typed = {key: setting_text(setting_value(example, key)) for key in mall_settings(example.mall)}
    assert typed.get("take_buyer_cancel", "true") == "true"
    assert apply_changes(example, typed) == example


def test_operator_syntax_of_each_type() -> None:
    configured = shop(bulk_sync_hours=[3, 15], trickle={"quantity": 10})
    assert setting_text(configured.bulk_sync_hours) == "3,15"
    assert setting_text(configured.reflect_to_origin) == "true"
    assert setting_text(configured.trickle.enabled) == "false"
    assert setting_text(configured.trickle.quantity) == "10"
    assert setting_text(configured.ftp_url) == ""
    assert setting_text("楽天市場店") == "楽天市場店"
    assert setting_text("　全角スペース") == '"　全角スペース"'  # str.strip() would eat it
    assert parse_setting("bulk_sync_hours", "[3, 15]") == (3, 15)
    assert parse_setting("bulk_sync_hours", "") == ()
    assert parse_setting("ftp_url", "") is None
    assert parse_setting("order_intake", '"active"') == "active"
    assert parse_setting("send_interval_min", " 15 ") == 15


@given(st.text())
def test_any_text_survives_show_then_set(text: str) -> None:
    # the CLI strips what follows '=', as an operator's shell line would
    for key in ("name", "seller_id", "api_base_url"):
        typed = setting_text(text).strip()
        assert parse_setting(key, typed) == (text if key != "api_base_url" else text or None)


@pytest.mark.parametrize(
    ("changes", "field", "wanted"),
    [
        ({"send_intervl_min": "5"}, "send_intervl_min", "did you mean send_interval_min?"),
        ({"order_intake": "activ"}, "order_intake", "did you mean active?"),
        ({"order_intake": "sometimes"}, "order_intake", "(one of: active, suspended, stopped)"),
        ({"transport": "sftp"}, "transport", "did you mean ftp? (one of: api, ftp)"),
        ({"reflect_to_origin": "yes"}, "reflect_to_origin", "not true or false"),
        ({"send_interval_min": "five"}, "send_interval_min", "not a whole number"),
        ({"bulk_sync_hours": "3;15"}, "bulk_sync_hours", "comma list of hours"),
        ({"take_pending": "false"}, "take_pending", "its options: take_buyer_cancel"),
    ],
)
def test_refusals_list_what_is_valid(changes: dict[str, str], field: str, wanted: str) -> None:
    with pytest.raises(SettingsError) as caught:
        apply_changes(shop(), changes)
    assert caught.value.field == field
    message = str(caught.value)
    assert message.startswith(f"{field}: ") and wanted in message and "\n" not in message


def test_an_unknown_setting_lists_the_malls_settings() -> None:
    with pytest.raises(SettingsError) as caught:
        apply_changes(shop(), {"colour": "red"})
    message = str(caught.value)
    assert "did you mean" not in message
    assert "(valid: name, order_intake, " in message and "take_buyer_cancel" in message
    assert "take_pending" not in message  # not a Rakuten option
    auction = shop(id="a1", mall="yahoo_auction")
    with pytest.raises(SettingsError) as caught:
        apply_changes(auction, {"reflect": "stopped"})
    assert caught.value.field == "reflect" and "intake only" in str(caught.value)
    with pytest.raises(SettingsError) as caught:
        apply_changes(shop(mall="amazon"), {"ftp_url": "sftp://a@h/"})
    assert "takes stock by api, not by file" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "field", "wanted"),
    [
        ("send_intervl_min = 5", "shops[0] (r1).send_intervl_min", "send_interval_min?"),
        ('order_intake = "activ"', "shops[0] (r1).order_intake", "did you mean active?"),
        ('transport = "sftp"', "shops[0] (r1).transport", "(one of: api, ftp)"),
        ("[shops.trickle]\nqantity = 5", "shops[0] (r1).trickle.qantity", "quantity?"),
    ],
)
def test_shops_file_refusals_list_what_is_valid(text: str, field: str, wanted: str) -> None:
    with pytest.raises(SettingsError) as caught:
        decode_shops_toml(f'[[shops]]\nid = "r1"\nmall = "rakuten"\n{text}\n')
    assert caught.value.field == field
    message = str(caught.value)
    assert "did you mean" in message and wanted in message and "\n" not in message
    assert "valid: " in message or "one of: " in message


def test_shops_file_with_an_unknown_mall_or_top_level_key() -> None:
    with pytest.raises(SettingsError) as caught:
        decode_shops_toml('[[shops]]\nid = "r1"\nmall = "rakutn"\n')
    assert "did you mean rakuten?" in str(caught.value)
    with pytest.raises(SettingsError) as caught:
        decode_shops_toml('[[shop]]\nid = "r1"\nmall = "rakuten"\n')
    assert caught.value.field == "shop" and "[[shops]]" in str(caught.value)
