"""Per-shop settings (SPEC §3.1) and the daemon's config file (SPEC §5), with validation.

Decoding (types, unknown keys) is msgspec's; ``validate_shop`` adds the seed's ranges and the
rules that join several fields. Every message names the field and what is allowed.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable
from functools import cache
from typing import Any, Literal, get_args, get_origin
from zoneinfo import ZoneInfo

import msgspec

from protocols.malls import capability
from protocols.malls.base import MallKind
from protocols.sku import quantity_problem

IntakeState = Literal["active", "suspended", "stopped"]
ReflectState = Literal["active", "stopped"]

SEND_INTERVAL_RANGE = (5, 9999)
MIN_SHOWN_MAX = 9999
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
    # 下限在庫数: a share below this is shown as 0; None = by how late the shop meets a
    # change (``min_shown_of``)
    min_shown: int | None = None
    # the floor also holds back what a SKU's recent sales pace sells before a sale
    # elsewhere reaches the shop (``reach_s``)
    pace_floor: bool = True
    # the drift audit: at these hours (shop's time zone) what the mall shows is read back
    # through its API and compared with zaiko's targets; audit_fix sends the corrections
    audit_hours: tuple[int, ...] = ()
    audit_fix: bool = False
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

# --- which settings a mall kind has ------------------------------------------------------
#
# Every setting an operator can change belongs to one group; a group belongs to a mall kind
# when its capability says so. ``shops show`` lists, ``shops set`` accepts, and a settings
# form offers exactly ``mall_settings(kind)``.

SettingGroup = Literal["general", "stock_out", "file_transport", "api", "audit", "option"]

SETTING_GROUPS: dict[str, SettingGroup] = {
    "name": "general",
    "order_intake": "general",
    "timezone": "general",
    # stock reflection (在庫反映): a mall that takes no stock (intake only) has none of these
    "reflect": "stock_out",
    "send_interval_min": "stock_out",
    "bulk_sync_hours": "stock_out",
    "trickle.enabled": "stock_out",
    "trickle.quantity": "stock_out",
    "trickle.refill_at": "stock_out",
    "distribution_rate": "stock_out",
    "reflect_to_origin": "stock_out",
    "transport": "stock_out",
    "listing_mode": "stock_out",
    "urgent_push": "stock_out",
    "min_shown": "stock_out",
    "pace_floor": "stock_out",
    # the scheduled audit: only malls whose stock can be read back by API
    "audit_hours": "audit",
    "audit_fix": "audit",
    # stock files uploaded by SFTP/FTPS/FTP: only malls that take stock by file
    "ftp_url": "file_transport",
    "ftp_credential": "file_transport",
    "known_hosts": "file_transport",
    "ftp_dir": "file_transport",
    "stock_file_name": "file_transport",
    "variation_file_name": "file_transport",
    # a mall API, for stock or for orders
    "api_base_url": "api",
    "api_credential": "api",
    "seller_id": "api",
    **dict.fromkeys(MALL_OPTIONS, "option"),
}
FIXED_SETTINGS = ("id", "mall")  # a shop's identity: shown, never changed by ``shops set``


def _flat_fields(struct: type[msgspec.Struct], prefix: str = "") -> dict[str, Any]:
    """Dotted setting key → its type, nested Structs flattened (``trickle.quantity``)."""
    flat: dict[str, Any] = {}
    for field in msgspec.structs.fields(struct):
        if isinstance(field.type, type) and issubclass(field.type, msgspec.Struct):
            flat.update(_flat_fields(field.type, f"{prefix}{field.name}."))
        else:
            flat[prefix + field.name] = field.type
    return flat


SETTING_TYPES: dict[str, Any] = _flat_fields(ShopSettings)


@cache
def mall_settings(kind: str) -> tuple[str, ...]:
    """The settings a shop of mall ``kind`` has (dotted keys, in ``ShopSettings`` order).

    Stock-out settings only where the mall takes stock (not ヤフオク!, intake only); file
    transport settings only where it takes stock by ftp; API settings where it has an API for
    stock or orders; each mall option only where the mall offers it.
    """
    cap = capability(kind)
    has_group: dict[SettingGroup, bool] = {
        "general": True,
        "stock_out": bool(cap.stock_out),
        "file_transport": "ftp" in cap.stock_out,
        "api": "api" in cap.stock_out or "api" in cap.intake,
        "audit": cap.stock_read,
        "option": False,
    }
    return tuple(
        key
        for key in SETTING_TYPES
        if key not in FIXED_SETTINGS and (has_group[SETTING_GROUPS[key]] or key in cap.options)
    )


def _not_for_mall(kind: str, key: str) -> str:
    """Why a mall kind lacks a setting, in a few words."""
    cap = capability(kind)
    match SETTING_GROUPS[key]:
        case "stock_out":
            return "takes no stock from zaiko (intake only)"
        case "file_transport":
            return f"takes stock by {' or '.join(cap.stock_out)}, not by file"
        case "api":
            return "has no API (orders by mail, stock by file)"
        case "audit":
            return (
                "has no stock API zaiko reads back; audit it from a downloaded stock file: "
                "zaiko audit --shop SHOP --file FILE"
            )
        case _:
            offered = ", ".join(cap.options) or "none"
            return f"does not offer this option (its options: {offered})"


def setting_value(shop: ShopSettings, key: str) -> Any:
    """The value of a dotted setting key (``trickle.quantity``)."""
    value: Any = shop
    for part in key.split("."):
        value = getattr(value, part)
    return value


# a sale reaches zaiko with its order mail within about a minute, or with a polled order API
# (every minute, asking up to Amazon's two minutes back) within about three; a stock file
# then waits for the mall's batch, up to about 15 minutes (no mall publishes when)
ORDER_MAIL_LAG_S = 60
ORDER_API_LAG_S = 180
FILE_BATCH_LAG_S = 15 * 60


def order_lag_s(shops: Iterable[ShopSettings]) -> int:
    """How late a sale at one of these shops may reach zaiko: the slowest intake among the
    shops whose orders move stock."""
    return max(
        (
            ORDER_MAIL_LAG_S if "mail" in capability(shop.mall).intake else ORDER_API_LAG_S
            for shop in shops
            if shop.order_intake == "active"
        ),
        default=ORDER_MAIL_LAG_S,
    )


def reach_s(shop: ShopSettings, order_lag: int = ORDER_MAIL_LAG_S) -> int:
    """How long a sale elsewhere takes to reach the shop's buyers (``order_lag``: to reach
    zaiko, ``order_lag_s``), for the pace floor; 0: the shop has no pace floor."""
    if not shop.pace_floor:
        return 0
    return order_lag + (FILE_BATCH_LAG_S if shop.transport == "ftp" else 0)


def min_shown_of(shop: ShopSettings) -> int:
    """The shop's 下限在庫数: as set, else 2 where a change reaches the shop late (stock by
    file, applied at the mall's batch) or the shop's own sales reach zaiko late (orders
    only through a polled order API), else 1 (every unit shown)."""
    if shop.min_shown is not None:
        return shop.min_shown
    cap = capability(shop.mall)
    if shop.transport == "ftp" or "mail" not in cap.intake:
        return 2
    return 1


def default_note(shop: ShopSettings, key: str) -> str:
    """What an empty setting stands for, where that is worked out from other settings."""
    if key == "min_shown" and shop.min_shown is None:
        if (automatic := min_shown_of(shop)) == 1:
            return "1, every unit shown"
        why = "stock by file" if shop.transport == "ftp" else "orders by a polled order API"
        return f"{automatic}, as the shop meets a change late ({why})"
    return ""


def shop_warnings(shop: ShopSettings) -> tuple[str, ...]:
    """What is allowed but said at apply and in status: plain FTP sends the password in
    clear; an option zaiko cannot carry out yet does nothing."""
    warnings = []
    if shop.transport == "ftp" and shop.ftp_url and shop.ftp_url.startswith("ftp://"):
        warnings.append(
            f"shop {shop.id}: ftp_url uses plain ftp:// (password sent in clear); "
            "prefer sftp:// or ftps://"
        )
    if shop.clear_store_cancel_flag:
        warnings.append(
            f"shop {shop.id}: clear_store_cancel_flag does nothing yet: no public Yahoo format "
            "carries the ストア都合キャンセル flag (setStock and quantity.csv do not); clear it in "
            "the store's item settings"
        )
    return tuple(warnings)


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
    for hour in shop.audit_hours:
        if not 0 <= hour <= 23:
            raise SettingsError("audit_hours", f"hour {hour} is outside 0–23")
    if len(set(shop.audit_hours)) != len(shop.audit_hours):
        raise SettingsError("audit_hours", "an hour is listed twice")
    if shop.audit_hours and not (shop.api_base_url and shop.api_credential):
        raise SettingsError(
            "audit_hours",
            "the audit reads the mall's stock API: set api_base_url and api_credential",
        )
    if not 0 <= shop.distribution_rate <= 100:
        raise SettingsError(
            "distribution_rate", f"{shop.distribution_rate} is outside 0–100 (percent)"
        )
    if shop.min_shown is not None and not 1 <= shop.min_shown <= MIN_SHOWN_MAX:
        raise SettingsError(
            "min_shown",
            f"{shop.min_shown} is outside 1–{MIN_SHOWN_MAX} (1 shows every unit; empty: "
            "2 where the shop meets a change late, else 1)",
        )
    for key, value in (
        ("trickle.quantity", shop.trickle.quantity),
        ("trickle.refill_at", shop.trickle.refill_at),
    ):
        if (problem := quantity_problem(value)) is not None:
            raise SettingsError(key, problem)
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
    # a setting the mall kind does not have (shops show hides it, shops set refuses it) may
    # only keep its default, whichever way the shop came in
    has = set(mall_settings(shop.mall))
    defaults = ShopSettings(id=shop.id, mall=shop.mall)
    for key in SETTING_TYPES:
        if key in has or key in FIXED_SETTINGS:
            continue
        if setting_value(shop, key) != setting_value(defaults, key):
            raise SettingsError(key, f"mall {shop.mall} {_not_for_mall(shop.mall, key)}")
    return shop


def decode_shops_toml(data: bytes | str) -> tuple[ShopSettings, ...]:
    """Decode and validate a shops file (``[[shops]]`` tables); ids must be unique."""
    try:
        raw = msgspec.toml.decode(data)
    except msgspec.DecodeError as exc:
        raise SettingsError("file", f"not valid TOML: {exc}") from exc
    try:
        shops = msgspec.convert(raw, type=ShopsFile).shops
    except msgspec.ValidationError as exc:
        raise _file_error(raw, str(exc)) from exc
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


_MSGSPEC_ERROR = re.compile(r"(?P<what>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?")
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(?P<name>[^`]*)`")
_BAD_ENUM = re.compile(r"Invalid enum value (?P<value>.*)")
_SHOP_PATH = re.compile(r"shops\[(?P<index>\d+)\]\.?(?P<key>.*)")


def _file_error(raw: Any, message: str) -> SettingsError:
    """msgspec's message about a shops file as one line that names the shop and the field,
    with the valid keys (or values) and a close match for a typo."""
    parsed = _MSGSPEC_ERROR.fullmatch(message)
    assert parsed is not None  # the pattern matches any text
    what, path = parsed["what"], parsed["path"] or ""
    shop_path = _SHOP_PATH.fullmatch(path)
    if shop_path is None:  # the file's top level
        if unknown := _UNKNOWN_FIELD.fullmatch(what):
            return SettingsError(
                unknown["name"], "unknown key; a shops file holds [[shops]] tables"
            )
        return SettingsError(path or "file", what)
    index, key = int(shop_path["index"]), shop_path["key"]
    shops = raw.get("shops") if isinstance(raw, dict) else None
    shop = shops[index] if isinstance(shops, list) and index < len(shops) else None
    shop_id = shop.get("id") if isinstance(shop, dict) else None
    label = f"shops[{index}]" + (f" ({shop_id})" if isinstance(shop_id, str) else "")
    if unknown := _UNKNOWN_FIELD.fullmatch(what):
        # the shop's table or one nested in it (``[shops.trickle]``): the keys it may hold
        prefix = f"{key}." if key else ""
        keys = [k.removeprefix(prefix).split(".")[0] for k in SETTING_TYPES if k.startswith(prefix)]
        valid = list(dict.fromkeys(keys))
        return SettingsError(f"{label}.{prefix}{unknown['name']}", _unknown(unknown["name"], valid))
    if (bad := _BAD_ENUM.fullmatch(what)) and key in SETTING_TYPES:
        return SettingsError(
            f"{label}.{key}", _unknown_value(bad["value"], _choices(SETTING_TYPES[key]))
        )
    return SettingsError(f"{label}.{key}" if key else label, what)


def _unknown(name: str, valid: list[str], noun: str = "setting") -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown {noun}{hint} (valid: {', '.join(valid)})"


def _unknown_value(shown: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(shown.strip("'\""), choices, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown value {shown}{hint} (one of: {', '.join(choices)})"


def _choices(annotation: Any) -> tuple[str, ...]:
    return tuple(get_args(annotation)) if get_origin(annotation) is Literal else ()


# --- the operator's syntax: ``KEY=VALUE`` as typed, and values shown that way -------------


def setting_text(value: Any) -> str:
    """A setting's value as ``shops set ID KEY=VALUE`` reads it back unchanged: ``true`` /
    ``false``, numbers, hour lists ``3,15``, text as is (in TOML double quotes only where it
    starts with a quote, has surrounding white space or control characters). An unset
    optional value, empty text and no hours are all ``""``."""
    match value:
        case None:
            return ""
        case bool():
            return "true" if value else "false"
        case int():
            return str(value)
        case tuple() | list():
            return ",".join(str(item) for item in value)
        case str() if _needs_quotes(value):
            return _toml_quoted(value)
        case str():
            return value
    raise TypeError(f"no operator syntax for {type(value).__name__}")


def _needs_quotes(text: str) -> bool:
    return (
        text.startswith('"')
        or text != text.strip()
        or any(unicodedata.category(ch) == "Cc" for ch in text)
    )


def _toml_quoted(text: str) -> str:
    escaped = "".join(
        "\\" + ch
        if ch in '"\\'
        else f"\\u{ord(ch):04x}"
        if unicodedata.category(ch) == "Cc"
        else ch
        for ch in text
    )
    return f'"{escaped}"'


def parse_setting(key: str, text: str) -> Any:
    """Read the text an operator typed for the setting ``key`` as that setting's type.

    Booleans are ``true``/``false``; numbers are whole numbers; ``bulk_sync_hours`` is a comma
    list (``3,15``, also ``[3, 15]``; empty for none); text is taken as typed, or decoded when
    it is a TOML double-quoted string; empty text clears an optional setting (``ftp_url=``).
    Raises SettingsError naming ``key`` with what is allowed.
    """
    annotation = SETTING_TYPES[key]
    if annotation not in (str, str | None):
        text = text.strip()  # text settings are taken as typed; other values may have spaces
    if choices := _choices(annotation):
        value = _unquoted(text)
        if value not in choices:
            raise SettingsError(key, _unknown_value(repr(value), choices))
        return value
    if annotation is bool:
        if text.lower() not in ("true", "false"):
            raise SettingsError(key, f"{text!r} is not true or false")
        return text.lower() == "true"
    if annotation is int:
        return _whole_number(key, text)
    if annotation == int | None:  # empty: the default, worked out from other settings
        text = _unquoted(text)
        return _whole_number(key, text, " (empty: the default)") if text else None
    if annotation == tuple[int, ...]:
        parts = [
            part.strip() for part in text.strip().removeprefix("[").removesuffix("]").split(",")
        ]
        if not all(re.fullmatch(r"[0-9]{1,2}", part) for part in parts if part):
            raise SettingsError(key, f"{text!r} is not a comma list of hours 0–23 (e.g. 3,15)")
        return tuple(int(part) for part in parts if part)
    if annotation == str | None:
        return _unquoted(text) or None
    if annotation is str:
        return _unquoted(text)
    raise SettingsError(key, "cannot be changed with shops set")


def _whole_number(key: str, text: str, hint: str = "") -> int:
    if not re.fullmatch(r"[+-]?[0-9]{1,9}", text):
        raise SettingsError(key, f"{text!r} is not a whole number of at most 9 digits{hint}")
    return int(text)


def _unquoted(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            value = msgspec.toml.decode(f"v = {text}")["v"]
        except msgspec.DecodeError:
            return text
        if isinstance(value, str):
            return value
    return text


def apply_changes(shop: ShopSettings, changes: dict[str, str]) -> ShopSettings:
    """Apply ``KEY=VALUE`` texts (as typed by an operator) to a shop and validate the result.

    Only the settings of the shop's mall kind (``mall_settings``) are accepted; each value is
    read as its setting's type (``parse_setting``), so ``order_intake=active`` needs no quotes.
    """
    current: dict[str, Any] = msgspec.to_builtins(shop)
    available = mall_settings(shop.mall)
    for key, text in changes.items():
        if key in FIXED_SETTINGS:
            raise SettingsError(key, "cannot be changed; apply a new shop instead")
        if key not in SETTING_TYPES:
            raise SettingsError(
                key, _unknown(key, list(available), f"setting for {shop.mall} shops")
            )
        if key not in available:
            raise SettingsError(
                key, f"not a setting of {shop.mall} shops: the mall {_not_for_mall(shop.mall, key)}"
            )
        *parents, name = key.split(".")
        target = current
        for part in parents:
            target = target[part]
        target[name] = parse_setting(key, text)
    try:
        updated = msgspec.convert(current, type=ShopSettings)
    except msgspec.ValidationError as exc:  # e.g. a number beyond 64 bits
        parsed = _MSGSPEC_ERROR.fullmatch(str(exc))
        assert parsed is not None  # the pattern matches any text
        raise SettingsError(parsed["path"] or "settings", parsed["what"]) from exc
    return validate_shop(updated)
