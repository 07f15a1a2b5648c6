"""The simulator's TOML config: msgspec Structs that refuse unknown keys, plus the checks.

Every error is one line that names the key (``shops[2].items[0].sku: ...``).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import msgspec

from protocols.malls import KINDS, capability, module
from protocols.malls.base import MallKind

SHOP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ConfigError(ValueError):
    """The config does not load; the message is one line that names the key."""


class Faults(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Failure switches for one shop (also settable live: ``POST /_admin/faults``)."""

    down: bool = False  # HTTP 503; SFTP/FTPS refuse the login and close
    slow_s: float = 0.0  # delay before every HTTP answer, SFTP open and FTPS login
    error_5xx: bool = False  # HTTP 500 in the mall's error shape; uploads fail
    reject_auth: bool = False  # every credential is refused (401 / auth failure / 530)
    # the mall's file batch takes the uploaded stock files and applies none of them (drift)
    drop_files: bool = False


class Item(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One listing at a shop: the merchant's SKU and the mall's identifiers for it."""

    sku: str
    item_id: str = ""  # the mall's item id; default: the SKU
    variation: tuple[str, ...] = ()
    name: str = ""
    shown: int | None = None  # quantity the shop shows at start; default: the real stock


class Merchant(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One merchant: its REAL stock per SKU, shared by all of its shops."""

    id: str = "default"
    stock: dict[str, int] = {}


class Shop(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    id: str
    mall: MallKind
    merchant: str = "default"
    name: str = ""  # shop name in order mails; default: the id
    intake: Literal["mail", "api"] | None = None  # default: the mall's first intake mode
    items: list[Item] = []
    # customers
    seed: int | None = None  # default: derived from the shop id
    customers_per_hour: float = 0.0
    max_lines: int = 1  # distinct items per order, at most
    max_quantity: int = 1  # units per order line, at most
    cancel_fraction: float = 0.0  # share of orders cancelled later
    cancel_after_s: float = 600.0  # mean delay before a cancellation
    # share of orders placed waiting (Amazon Pending, Qoo10 unpaid) and paid later
    pending_fraction: float = 0.0
    pending_after_s: float = 600.0  # mean delay before a waiting order is paid
    foreign_fraction: float = 0.0  # share of orders of another marketplace (Amazon)
    # credentials (never logged, never served by /_admin/state)
    api_secret: str = ""
    seller_id: str = ""
    ftp_user: str = ""  # SFTP and FTPS user name; default: the shop id
    ftp_password: str = ""  # FTPS password (FTPS is off for the shop when empty)
    sftp_authorized_key: str = ""  # one OpenSSH public key line
    sftp_authorized_key_file: str = ""  # or a file of them (relative to the config file)
    faults: Faults = Faults()


class Sim(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    listen: str = "127.0.0.1"  # loopback only
    http_port: int = 0
    sftp_port: int = 0
    ftps_port: int = 0
    state_dir: str = "state/mallsim"  # host key, known_hosts, certificate, homes, addresses.json
    maildir_root: str = "state/maildir"  # one Maildir per mail-intake shop id below it
    known_hosts_file: str = ""  # also write the SFTP known_hosts line here (for the daemon)
    start_time: str = ""  # ISO 8601 time of the first simulated instant; default: now
    order_api_window: int = 1000  # the order API serves at most this many latest orders
    order_page_size: int = 100  # orders (or order numbers) per page of an order search, at most
    order_items_page_size: int = 100  # items per page of an order's items (Amazon), at most
    max_body_bytes: int = 32 * 1024 * 1024
    feed_processing_s: float = 2.0  # a submitted stock feed (Amazon) is processed after this


class Config(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    sim: Sim = Sim()
    merchants: list[Merchant] = []
    shops: list[Shop] = []
    # Where relative paths are resolved; set by load_config, not read from TOML.
    base_dir: str = ""


def load_config(path: str | Path) -> Config:
    """Read and check a config file; relative paths are taken from the file's folder."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    return parse_config(raw, base_dir=p.resolve().parent)


def parse_config(raw: bytes | str, *, base_dir: str | Path = ".") -> Config:
    try:
        cfg = msgspec.toml.decode(raw, type=Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"config: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"config: not valid TOML: {exc}") from None
    cfg = msgspec.structs.replace(cfg, base_dir=str(Path(base_dir).resolve()))
    check_config(cfg)
    return cfg


def resolve(cfg: Config, path: str) -> Path:
    """A config path: ``~`` is the home directory, relative ones start at the config file's folder."""
    p = Path(path).expanduser()
    return Path(os.path.normpath(p if p.is_absolute() else Path(cfg.base_dir or ".") / p))


def _fail(where: str, why: str) -> ConfigError:
    return ConfigError(f"{where}: {why}")


def _check_faults(where: str, f: Faults) -> None:
    if not 0 <= f.slow_s <= 600:
        raise _fail(f"{where}.slow_s", f"must be 0–600 seconds, got {f.slow_s}")


def _unique(where: str, values: Iterable[object], what: str) -> None:
    seen: set[object] = set()
    for v in values:
        if v in seen:
            raise _fail(where, f"duplicate {what} {v!r}")
        seen.add(v)


def check_config(cfg: Config) -> None:
    sim = cfg.sim
    try:
        addr = ipaddress.ip_address(sim.listen)
    except ValueError:
        raise _fail("sim.listen", f"must be a loopback IP address, got {sim.listen!r}") from None
    if not addr.is_loopback:
        raise _fail(
            "sim.listen", f"must be a loopback address (127.0.0.1 or ::1), got {sim.listen}"
        )
    for key in ("http_port", "sftp_port", "ftps_port"):
        port = getattr(sim, key)
        if not 0 <= port <= 65535:
            raise _fail(f"sim.{key}", f"must be 0–65535, got {port}")
    for key in ("order_api_window", "order_page_size", "order_items_page_size"):
        if getattr(sim, key) < 1:
            raise _fail(f"sim.{key}", f"must be ≥ 1, got {getattr(sim, key)}")
    if sim.start_time:
        from datetime import datetime

        try:
            t = datetime.fromisoformat(sim.start_time)
        except ValueError:
            raise _fail("sim.start_time", f"not an ISO 8601 time: {sim.start_time!r}") from None
        if t.tzinfo is None:
            raise _fail("sim.start_time", "needs a UTC offset, e.g. 2025-01-01T09:00:00+09:00")

    _unique("merchants", (m.id for m in cfg.merchants), "merchant id")
    merchants = {m.id: m for m in cfg.merchants}
    for i, m in enumerate(cfg.merchants):
        for sku, qty in m.stock.items():
            _check_sku(f"merchants[{i}].stock", sku)
            if qty < 0:
                raise _fail(f"merchants[{i}].stock.{sku}", f"must be ≥ 0, got {qty}")

    _unique("shops", (s.id for s in cfg.shops), "shop id")
    _unique("shops", (s.ftp_user or s.id for s in cfg.shops), "ftp_user")
    for i, shop in enumerate(cfg.shops):
        where = f"shops[{i}]"
        if not SHOP_ID.match(shop.id):
            raise _fail(
                f"{where}.id", f"{shop.id!r}: letters, digits, '_', '.', '-' (not first), ≤ 64"
            )
        if shop.mall not in KINDS:  # msgspec already checks; kept for direct callers
            raise _fail(f"{where}.mall", f"unknown mall kind {shop.mall!r}")
        cap = capability(shop.mall)
        if shop.intake is not None and shop.intake not in cap.intake:
            allowed = ", ".join(cap.intake) or "none"
            raise _fail(
                f"{where}.intake", f"{shop.mall} takes orders by {allowed}, not {shop.intake}"
            )
        if shop.merchant not in merchants and not (
            shop.merchant == "default" and not cfg.merchants
        ):
            raise _fail(f"{where}.merchant", f"unknown merchant {shop.merchant!r}")
        stock = merchants[shop.merchant].stock if shop.merchant in merchants else {}
        if shop.customers_per_hour < 0:
            raise _fail(f"{where}.customers_per_hour", "must be ≥ 0")
        if shop.max_lines < 1 or shop.max_quantity < 1:
            raise _fail(f"{where}.max_lines", "max_lines and max_quantity must be ≥ 1")
        if not 0 <= shop.cancel_fraction <= 1:
            raise _fail(f"{where}.cancel_fraction", f"must be 0–1, got {shop.cancel_fraction}")
        if shop.cancel_after_s <= 0:
            raise _fail(f"{where}.cancel_after_s", "must be > 0")
        for key in ("pending_fraction", "foreign_fraction"):
            if not 0 <= getattr(shop, key) <= 1:
                raise _fail(f"{where}.{key}", f"must be 0–1, got {getattr(shop, key)}")
        if shop.pending_after_s <= 0:
            raise _fail(f"{where}.pending_after_s", "must be > 0")
        if shop.pending_fraction and waiting_state(shop.mall) is None:
            raise _fail(f"{where}.pending_fraction", f"{shop.mall} has no pending or unpaid orders")
        if shop.foreign_fraction and not has_other_marketplaces(shop.mall):
            raise _fail(
                f"{where}.foreign_fraction", f"{shop.mall} shows no orders of other marketplaces"
            )
        if shop.sftp_authorized_key and shop.sftp_authorized_key_file:
            raise _fail(f"{where}.sftp_authorized_key", "give the key or the key file, not both")
        _check_faults(f"{where}.faults", shop.faults)
        _unique(f"{where}.items", (it.sku for it in shop.items), "sku")
        _unique(
            f"{where}.items",
            ((it.item_id or it.sku, it.variation) for it in shop.items),
            "item_id/variation",
        )
        for j, it in enumerate(shop.items):
            _check_sku(f"{where}.items[{j}].sku", it.sku)
            if it.sku not in stock:
                raise _fail(
                    f"{where}.items[{j}].sku",
                    f"{it.sku!r} is not in merchant {shop.merchant!r}'s stock",
                )
            if it.shown is not None and it.shown < 0:
                raise _fail(f"{where}.items[{j}].shown", f"must be ≥ 0, got {it.shown}")


def waiting_state(kind: str) -> Literal["pending", "unpaid"] | None:
    """The state a mall's not-yet-paid orders show, where zaiko can take them (SPEC §4's
    options): Amazon ``pending``, Qoo10 ``unpaid``."""
    options = capability(kind).options
    if "take_pending" in options:
        return "pending"
    if "take_unpaid" in options:
        return "unpaid"
    return None


def has_other_marketplaces(kind: str) -> bool:
    """Whether the mall's order API also shows the seller account's other marketplaces."""
    return hasattr(module(kind), "OTHER_MARKETPLACE")


def _check_sku(where: str, sku: str) -> None:
    if not sku or len(sku) > 64 or any(ord(c) < 32 or ord(c) == 127 for c in sku):
        raise _fail(where, f"SKU {sku!r} must be 1–64 characters without control characters")
