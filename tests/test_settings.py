"""Shop settings: the seed's ranges and rules, each refusal naming its field."""

from pathlib import Path

import msgspec
import pytest

from protocols.malls import KINDS
from protocols.settings import (
    FILE_BATCH_LAG_S,
    ORDER_API_LAG_S,
    ORDER_MAIL_LAG_S,
    SettingsError,
    ShopSettings,
    apply_changes,
    decode_shops_toml,
    min_shown_of,
    order_lag_s,
    reach_s,
    validate_shop,
)

ROOT = Path(__file__).resolve().parent.parent


def shop(**changes: object) -> ShopSettings:
    base = {"id": "r1", "mall": "rakuten"}
    base.update(changes)
    return msgspec.convert(base, ShopSettings)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"send_interval_min": 4}, "send_interval_min"),
        ({"send_interval_min": 10000}, "send_interval_min"),
        ({"distribution_rate": 101}, "distribution_rate"),
        ({"distribution_rate": -1}, "distribution_rate"),
        ({"bulk_sync_hours": [9, 24]}, "bulk_sync_hours"),
        ({"bulk_sync_hours": [9, 9]}, "bulk_sync_hours"),
        ({"reflect_to_origin": False, "distribution_rate": 50}, "reflect_to_origin"),
        ({"trickle": {"enabled": True, "quantity": 0}}, "trickle.quantity"),
        ({"trickle": {"enabled": True, "quantity": 5, "refill_at": 5}}, "trickle.refill_at"),
        ({"take_pending": True}, "take_pending"),  # an Amazon option on a Rakuten shop
        ({"transport": "ftp"}, "ftp_url"),
        ({"transport": "ftp", "ftp_url": "sftp://u@h:22/d"}, "known_hosts"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"id": "bad id"}, "id"),
        ({"transport": "ftp", "ftp_url": "ftps://shop:secret@127.0.0.1/"}, "ftp_url"),
        ({"api_base_url": "https://user:pass@api.example/"}, "api_base_url"),
        ({"min_shown": 0}, "min_shown"),
        ({"min_shown": 10000}, "min_shown"),
    ],
)
def test_refusals_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(SettingsError) as caught:
        validate_shop(shop(**changes))
    assert caught.value.field == field
    assert field in str(caught.value)


def test_boundaries_are_allowed() -> None:
    validate_shop(shop(send_interval_min=5, distribution_rate=0, bulk_sync_hours=[0, 23]))
    validate_shop(shop(send_interval_min=9999, distribution_rate=100))
    validate_shop(shop(reflect_to_origin=False))  # rate 100: allowed
    validate_shop(shop(min_shown=1))
    validate_shop(shop(min_shown=9999))


def test_the_fewest_units_shown_follow_how_late_the_shop_meets_a_change() -> None:
    ftps = {"transport": "ftp", "ftp_url": "ftps://u@127.0.0.1/"}
    # order mails and a stock API: every unit; a stock file (the mall's batch) or orders
    # only through a polled order API (Amazon's two minutes): the last unit is kept back
    assert min_shown_of(shop()) == 1
    assert min_shown_of(shop(mall="yahoo", **ftps)) == 2
    assert min_shown_of(shop(mall="yahoo")) == 1  # Yahoo by its stock API
    assert min_shown_of(shop(id="a1", mall="amazon")) == 2
    assert min_shown_of(shop(min_shown=1, mall="yahoo", **ftps)) == 1  # set: as set
    # a sale elsewhere reaches an API shop with its order mail, a file shop at the batch
    assert reach_s(shop()) == ORDER_MAIL_LAG_S == 60
    assert reach_s(shop(mall="yahoo", **ftps)) == ORDER_MAIL_LAG_S + FILE_BATCH_LAG_S
    assert reach_s(shop(pace_floor=False)) == 0
    # ... or, where a shop's orders come by a polled order API, up to three minutes late
    amazon = shop(id="a1", mall="amazon", order_intake="active")
    assert order_lag_s([shop(order_intake="active")]) == ORDER_MAIL_LAG_S
    assert order_lag_s([shop(order_intake="active"), amazon]) == ORDER_API_LAG_S == 180
    assert order_lag_s([shop(), shop(id="a1", mall="amazon")]) == ORDER_MAIL_LAG_S  # stopped
    assert reach_s(shop(), ORDER_API_LAG_S) == 180
    # typed by an operator: empty is the default again
    changed = apply_changes(shop(), {"min_shown": "3", "pace_floor": "false"})
    assert (changed.min_shown, changed.pace_floor) == (3, False)
    assert apply_changes(changed, {"min_shown": ""}).min_shown is None
    with pytest.raises(SettingsError) as caught:
        apply_changes(shop(), {"min_shown": "two"})
    assert caught.value.field == "min_shown" and "empty: the default" in str(caught.value)


def test_mall_capabilities_decide_transport_and_reflect() -> None:
    with pytest.raises(SettingsError) as caught:
        validate_shop(shop(mall="amazon", transport="ftp", ftp_url="ftps://h/"))
    assert caught.value.field == "transport"
    with pytest.raises(SettingsError) as caught:
        validate_shop(shop(mall="yahoo_auction", reflect="active"))
    assert caught.value.field == "reflect"
    validate_shop(shop(mall="amazon", take_pending=True, take_cancellations=True))


def test_example_shops_file_has_every_mall_kind_and_validates() -> None:
    shops = decode_shops_toml((ROOT / "conf" / "shops.example.toml").read_bytes())
    assert sorted(s.mall for s in shops) == sorted(KINDS)


def test_shops_file_errors_name_the_shop_and_field() -> None:
    text = '[[shops]]\nid = "a"\nmall = "rakuten"\n[[shops]]\nid = "b"\nmall = "yahoo"\nsend_interval_min = 4\n'
    with pytest.raises(SettingsError) as caught:
        decode_shops_toml(text)
    assert "shops[1] (b).send_interval_min" in str(caught.value)
    with pytest.raises(SettingsError) as caught:
        decode_shops_toml('[[shops]]\nid = "a"\nmall = "rakuten"\ncolour = "red"\n')
    assert "colour" in str(caught.value)
    with pytest.raises(SettingsError):
        decode_shops_toml('[[shops]]\nid = "a"\nmall = "ebay"\n')


def test_operator_changes_are_typed_and_validated() -> None:
    changed = apply_changes(
        shop(),
        {
            "order_intake": "active",
            "send_interval_min": "15",
            "bulk_sync_hours": "3,21",
            "trickle.enabled": "true",
        },
    )
    assert changed.order_intake == "active"
    assert changed.send_interval_min == 15
    assert changed.bulk_sync_hours == (3, 21)
    assert changed.trickle.enabled is True
    with pytest.raises(SettingsError) as caught:
        apply_changes(shop(), {"distribution_rate": "101"})
    assert caught.value.field == "distribution_rate"
    with pytest.raises(SettingsError) as caught:
        apply_changes(shop(), {"order_intake": "sometimes"})
    assert "order_intake" in str(caught.value)
    with pytest.raises(SettingsError) as caught:
        apply_changes(shop(), {"no_such": "1"})
    assert caught.value.field == "no_such"
    with pytest.raises(SettingsError):
        apply_changes(shop(), {"mall": "yahoo"})


def test_a_setting_the_mall_kind_lacks_keeps_its_default_however_the_shop_comes_in() -> None:
    """shops apply takes what shops show would hide and shops set would refuse: no more."""
    import msgspec
    import pytest as _pytest

    from protocols.settings import SettingsError, ShopSettings, validate_shop

    for raw, key in (
        ({"id": "a1", "mall": "yahoo_auction", "reflect_to_origin": False}, "reflect_to_origin"),
        ({"id": "c1", "mall": "cartstar", "ftp_url": "sftp://u@h/x"}, "ftp_url"),
        ({"id": "y1", "mall": "yahoo", "take_pending": True}, "take_pending"),
    ):
        with _pytest.raises(SettingsError) as refused:
            validate_shop(msgspec.convert(raw, ShopSettings))
        assert refused.value.field == key
    huge = {"enabled": False, "quantity": 10**20, "refill_at": 1}
    with _pytest.raises(SettingsError) as refused:
        validate_shop(
            msgspec.convert({"id": "r1", "mall": "rakuten", "trickle": huge}, ShopSettings)
        )
    assert refused.value.field == "trickle.quantity" and "999,999,999" in str(refused.value)
