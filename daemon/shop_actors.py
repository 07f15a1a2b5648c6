"""Which actors a shop runs, from its settings, each bound to what it needs.

A shop's actors (intake, interval reflector, bulk sync, trickle release) are listed here,
each an ``ActorSpec`` whose ``run`` gets a ledger send end of its own per attempt; the
shop's settings and the wiring's clocks, bus and paths are bound when it is listed. The
supervisor restarts the list whenever the shop's settings change.
"""

from __future__ import annotations

from functools import partial
from types import ModuleType

from daemon.actors.api_intake import ApiIntakeSettings, MallApi, api_intake
from daemon.actors.auditor import AuditSettings, auditor
from daemon.actors.intake import MailIntakeSettings, mail_intake
from daemon.actors.reflector import ReflectSettings, StockSender, reflector
from daemon.actors.supervisor import ActorSpec
from daemon.credentials import CredentialError, mall_account, read_credential
from daemon.transports.files import FileUploader, FtpsUploader, SftpUploader, parse_ftp_url
from daemon.transports.http import HttpTransport, TokenBucket
from daemon.transports.pickup import PickupRhythm
from daemon.transports.stock import (
    ApiStockReader,
    ApiStockSender,
    FeedStockSender,
    FileStockSender,
    MallLink,
)
from daemon.wiring import ShopWiring
from protocols.malls import capability, module
from protocols.settings import ShopSettings

# How far back the order API of a mall that searches by order date is asked again: Qoo10
# takes cancellations up to 7 days after the order, and unpaid orders are paid within days.
ORDER_DATE_LOOKBACK_S = 8 * 24 * 3600.0


# How long an order API's newest changes are left to settle, unless the config says: each
# poll asks up to this long before now, and the overlap asks again what was late to show.
DEFAULT_ORDER_SETTLE_S = 10.0


def order_settle_s(mall: ModuleType, configured: float | None) -> float:
    if configured is not None:
        return configured
    settle: float = getattr(mall, "ORDER_SETTLE_S", DEFAULT_ORDER_SETTLE_S)
    return settle


def actors_for(shop: ShopSettings, wiring: ShopWiring) -> list[ActorSpec]:
    actors = []
    cap = capability(shop.mall)
    mall = module(shop.mall)
    # one pace for every call of the shop to its mall's API (intake and stock alike)
    bucket = TokenBucket(cap.api_requests_per_s or 1.0, wiring.clock)
    if "mail" not in cap.intake and "api" in cap.intake and hasattr(mall, "start_order_poll"):
        api = MallApi(
            account=partial(mall_account, shop, wiring.paths.credentials_dir),
            connect=partial(HttpTransport, shop.api_base_url or ""),
        )
        actors.append(
            ActorSpec(
                "intake",
                partial(
                    api_intake,
                    shop,
                    mall.start_order_poll,
                    api,
                    bucket,
                    wiring.board,
                    wiring.clock,
                    wiring.wall_clock,
                    ApiIntakeSettings(
                        poll_s=wiring.intake.api_poll_s,
                        overlap_s=wiring.intake.api_overlap_s,
                        settle_s=order_settle_s(mall, wiring.intake.api_settle_s),
                        lookback_s=ORDER_DATE_LOOKBACK_S
                        if mall.ORDER_SEARCH_DATE == "ordered"
                        else 0.0,
                    ),
                ),
            )
        )
    if cap.stock_out and shop.reflect == "active":
        actors.append(
            ActorSpec(
                "reflector",
                partial(
                    reflector,
                    shop,
                    partial(stock_sender, shop, wiring, bucket),
                    wiring.bus,
                    wiring.board,
                    wiring.clock,
                    wiring.wall_clock,
                    ReflectSettings(),
                    wiring.paths.database,
                    rhythm=wiring.pickup_rhythms.setdefault(
                        (shop.id, shop.ftp_url or "", shop.ftp_dir or ""), PickupRhythm()
                    )
                    if shop.transport == "ftp"
                    else None,
                ),
            )
        )
    if cap.stock_read and shop.api_base_url and shop.api_credential:
        actors.append(
            ActorSpec(
                "auditor",
                partial(
                    auditor,
                    shop,
                    partial(stock_reader, shop, wiring, bucket),
                    wiring.bus,
                    wiring.clock,
                    wiring.wall_clock,
                    AuditSettings(),
                    wiring.paths.database,
                ),
            )
        )
    if "mail" in cap.intake:
        # it runs while intake is stopped too: it counts the backlog then
        actors.append(
            ActorSpec(
                "intake",
                partial(
                    mail_intake,
                    shop,
                    mall.parse_order_mail,
                    wiring.paths.maildir_root,
                    wiring.board,
                    wiring.clock,
                    MailIntakeSettings(),
                    wiring.mail_parsers,
                ),
            )
        )
    return actors


def stock_reader(shop: ShopSettings, wiring: ShopWiring, bucket: TokenBucket) -> ApiStockReader:
    """What the shop's mall shows, read through its stock API (the audit)."""
    mall = module(shop.mall)
    account = mall_account(shop, wiring.paths.credentials_dir)
    return ApiStockReader(
        mall.build_stock_read_requests,
        mall.parse_stock_read_response,
        mall.join_sku,
        MallLink(account, HttpTransport(account.base_url), bucket),
    )


def stock_sender(shop: ShopSettings, wiring: ShopWiring, bucket: TokenBucket) -> StockSender:
    """How the shop's quantities go out: its ``transport`` where the mall offers it, else
    the mall's one way. Credentials are read here, when the reflector starts: a missing
    file fails the actor (shown in ``zaiko status``, retried by its supervisor)."""
    cap = capability(shop.mall)
    mall = module(shop.mall)
    transport = shop.transport if shop.transport in cap.stock_out else cap.stock_out[0]
    credentials = wiring.paths.credentials_dir
    if transport == "api":
        account = mall_account(shop, credentials)
        items = ApiStockSender(
            mall.build_stock_requests,
            mall.parse_stock_response,
            cap.api_batch_size,
            MallLink(account, HttpTransport(account.base_url), bucket),
        )
        if not hasattr(mall, "start_stock_feed"):
            return items
        # a bulk sync through the mall's feeds (Amazon: not 100,000 calls at 5/s)
        return FeedStockSender(items, mall.start_stock_feed, mall.FEED_MAX_MESSAGES, wiring.clock)
    if not shop.ftp_url:
        raise CredentialError(f"shop {shop.id}: ftp_url is not set")
    target = parse_ftp_url(shop.ftp_url)
    secret = read_credential(credentials, shop.ftp_credential, "ftp_credential")
    uploader: FileUploader
    if target.scheme == "sftp":
        if wiring.aio is None:
            raise RuntimeError("SFTP needs the daemon's asyncio thread")
        known_hosts = read_credential(credentials, shop.known_hosts, "known_hosts")
        uploader = SftpUploader(target, secret, known_hosts, wiring.aio)
    else:
        ca = (
            read_credential(credentials, shop.known_hosts, "known_hosts")
            if shop.known_hosts
            else None
        )
        uploader = FtpsUploader(target, secret, ca)
    directory = shop.ftp_dir or target.path.rstrip("/") or cap.ftp_dir or "/"
    # the shop's file names instead of the mall's: its stock file, then its variation file
    renamed = {
        mall_name: name
        for mall_name, name in zip(
            cap.stock_files, (shop.stock_file_name, shop.variation_file_name), strict=False
        )
        if name
    }
    return FileStockSender(
        mall.write_stock_files,
        uploader,
        directory,
        renamed,
        rows_per_file=getattr(mall, "UPLOAD_MAX_UPDATES", 10_000),
    )
