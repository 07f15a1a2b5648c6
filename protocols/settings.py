"""Per-shop settings (SPEC §3.1) and the daemon's config file (SPEC §5), with validation.

Decoding (types, unknown keys) is msgspec's; ``validate_shop`` adds the seed's ranges and the
rules that join several fields. Every message names the field and what is allowed.
"""

from __future__ import annotations

from typing import Any, Literal
from zoneinfo import ZoneInfo

import msgspec

from protocols.malls import capability
from protocols.malls.base import MallKind

IntakeState = Literal["active", "suspended", "stopped"]
ReflectState = Literal["active", "stopped"]

SEND_INTERVAL_RANGE = (5, 9999)
SHOP_ID_MAX = 32


class SettingsError(ValueError):
    """A setting outside what is allowed; ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Trickle(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = False
    quantity: int = 10
    refill_at: int = 3


class ShopSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    id: str
    mall: MallKind
    name: str = ""
    order_intake: IntakeState = "stopped"
    reflect: ReflectState = "stopped"
    send_interval_min: int = 5
    bulk_sync_hours: tuple[int, ...] = ()
    timezone: str = "Asia/Tokyo"
    trickle: Trickle = Trickle()
    distribution_rate: int = 100
    reflect_to_origin: bool = True
    transport: Literal["api", "ftp"] = "api"
    listing_mode: Literal["all", "explicit"] = "all"
    urgent_push: bool = True
    # file transport
    ftp_url: str | None = None
    ftp_credential: str | None = None
    known_hosts: str | None = None
    ftp_dir: str | None = None
    stock_file_name: str | None = None
    variation_file_name: str | None = None
    # API transport and API intake
    api_base_url: str | None = None
    api_credential: str | None = None
    seller_id: str = ""
    # mall options (SPEC §4); each is refused on a mall that does not offer it
    take_buyer_cancel: bool = False
    clear_store_cancel_flag: bool = False
    take_pending: bool = False
    take_unpaid: bool = False
    take_cancellations: bool = False


class ShopsFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    shops: tuple[ShopSettings, ...] = ()


MALL_OPTIONS = (
    "take_buyer_cancel",
    "clear_store_cancel_flag",
    "take_pending",
    "take_unpaid",
    "take_cancellations",
)


def plain_ftp_warning(shop: ShopSettings) -> str | None:
    """Plain FTP sends the password in clear; allowed, but said at apply and in status."""
    if shop.transport == "ftp" and shop.ftp_url and shop.ftp_url.startswith("ftp://"):
        return f"shop {shop.id}: ftp_url uses plain ftp:// (password sent in clear); prefer sftp:// or ftps://"
    return None


def validate_shop(shop: ShopSettings) -> ShopSettings:
    """Check ranges and cross-field rules; return the shop unchanged or raise SettingsError."""
    if (
        not shop.id
        or len(shop.id) > SHOP_ID_MAX
        or not all(c.isalnum() or c in "-_" for c in shop.id)
    ):
        raise SettingsError("id", f"1–{SHOP_ID_MAX} characters of letters, digits, '-' or '_'")
    low, high = SEND_INTERVAL_RANGE
    if not low <= shop.send_interval_min <= high:
        raise SettingsError(
            "send_interval_min", f"{shop.send_interval_min} is outside {low}–{high} minutes"
        )
    for hour in shop.bulk_sync_hours:
        if not 0 <= hour <= 23:
            raise SettingsError("bulk_sync_hours", f"hour {hour} is outside 0–23")
    if len(set(shop.bulk_sync_hours)) != len(shop.bulk_sync_hours):
        raise SettingsError("bulk_sync_hours", "an hour is listed twice")
    if not 0 <= shop.distribution_rate <= 100:
        raise SettingsError(
            "distribution_rate", f"{shop.distribution_rate} is outside 0–100 (percent)"
        )
    if shop.trickle.enabled:
        if shop.trickle.quantity < 1:
            raise SettingsError("trickle.quantity", "must be at least 1 when trickle is enabled")
        if not 0 <= shop.trickle.refill_at < shop.trickle.quantity:
            raise SettingsError(
                "trickle.refill_at",
                f"{shop.trickle.refill_at} must be 0 or more and below trickle.quantity ({shop.trickle.quantity})",
            )
    if not shop.reflect_to_origin and shop.distribution_rate != 100:
        raise SettingsError(
            "reflect_to_origin",
            "must be true when distribution_rate is not 100: the shop's own count would drift"
            " (seed: 在庫分配率に100以外を設定している場合は「注文のあったショップに在庫反映を行う」)",
        )
    try:
        ZoneInfo(shop.timezone)
    except Exception as exc:
        raise SettingsError("timezone", f"unknown time zone {shop.timezone!r}") from exc
    cap = capability(shop.mall)
    if not cap.stock_out and shop.reflect == "active":
        raise SettingsError("reflect", f"mall {shop.mall} takes no stock from zaiko (intake only)")
    if cap.stock_out and shop.transport not in cap.stock_out:
        offered = " or ".join(cap.stock_out)
        raise SettingsError(
            "transport", f"mall {shop.mall} takes stock by {offered}, not {shop.transport}"
        )
    if shop.transport == "ftp" and cap.stock_out:
        if not shop.ftp_url:
            raise SettingsError("ftp_url", "required when transport is ftp")
        if not shop.ftp_url.startswith(("sftp://", "ftps://", "ftp://")):
            raise SettingsError("ftp_url", "must start with sftp://, ftps:// or ftp://")
        if shop.ftp_url.startswith("sftp://") and not shop.known_hosts:
            raise SettingsError("known_hosts", "required for sftp:// (host keys are verified)")
    for field in ("ftp_url", "api_base_url"):
        url = getattr(shop, field)
        if url and "@" in url.split("://", 1)[-1].split("/", 1)[0]:
            userinfo = url.split("://", 1)[-1].split("@", 1)[0]
            if ":" in userinfo:
                raise SettingsError(
                    field,
                    "has a password in it; secrets live in credential files: name one in "
                    f"{'ftp_credential' if field == 'ftp_url' else 'api_credential'}",
                )
    for option in MALL_OPTIONS:
        if getattr(shop, option) and option not in cap.options:
            raise SettingsError(option, f"mall {shop.mall} does not offer this option")
    return shop


def decode_shops_toml(data: bytes | str) -> tuple[ShopSettings, ...]:
    """Decode and validate a shops file (``[[shops]]`` tables); ids must be unique."""
    try:
        shops = msgspec.toml.decode(data, type=ShopsFile).shops
    except msgspec.ValidationError as exc:
        raise SettingsError(_path_of(str(exc)), str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise SettingsError("file", f"not valid TOML: {exc}") from exc
    seen: set[str] = set()
    for index, shop in enumerate(shops):
        try:
            validate_shop(shop)
        except SettingsError as exc:
            raise SettingsError(f"shops[{index}] ({shop.id}).{exc.field}", exc.reason) from exc
        if shop.id in seen:
            raise SettingsError(f"shops[{index}].id", f"shop id {shop.id!r} appears twice")
        seen.add(shop.id)
    return shops


def _path_of(message: str) -> str:
    marker = "at `$."
    if marker in message:
        return message.split(marker, 1)[1].rstrip("`")
    return "shops"


def apply_changes(shop: ShopSettings, changes: dict[str, str]) -> ShopSettings:
    """Apply ``KEY=VALUE`` texts (as typed by an operator) to a shop and validate the result.

    Values are read as TOML values where that parses (``5``, ``true``, ``[9, 21]``), else as
    plain text, so ``order_intake=active`` needs no quotes.
    """
    current: dict[str, Any] = msgspec.to_builtins(shop)
    for key, text in changes.items():
        if key in ("id", "mall"):
            raise SettingsError(key, "cannot be changed; apply a new shop instead")
        value = _operator_value(text)
        target = current
        parts = key.split(".")
        for part in parts[:-1]:
            nested = target.get(part)
            if not isinstance(nested, dict):
                raise SettingsError(key, "unknown setting")
            target = nested
        if parts[-1] not in target and not _is_optional_field(parts):
            raise SettingsError(key, "unknown setting")
        if key == "bulk_sync_hours" and isinstance(value, str):
            value = _hours_list(key, value)
        target[parts[-1]] = value
    try:
        updated = msgspec.convert(current, type=ShopSettings)
    except msgspec.ValidationError as exc:
        raise SettingsError(_path_of(str(exc)), str(exc)) from exc
    return validate_shop(updated)


def _is_optional_field(parts: list[str]) -> bool:
    return len(parts) == 1 and parts[0] in ShopSettings.__struct_fields__


def _operator_value(text: str) -> Any:
    try:
        return msgspec.toml.decode(f"v = {text}")["v"]
    except msgspec.DecodeError:
        return text


def _hours_list(key: str, text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise SettingsError(key, f"{text!r} is not a comma list of hours 0–23") from exc
