"""Which actors a shop runs, from its settings, each bound to what it needs.

A shop's actors (intake, interval reflector, bulk sync, trickle release) are listed here,
each an ``ActorSpec`` whose ``run`` gets a ledger send end of its own per attempt; the
shop's settings and the wiring's clocks, bus and paths are bound when it is listed. The
supervisor restarts the list whenever the shop's settings change.
"""

from __future__ import annotations

from functools import partial

from daemon.actors.api_intake import ApiIntakeSettings, MallApi, api_intake
from daemon.actors.intake import MailIntakeSettings, mail_intake
from daemon.actors.supervisor import ActorSpec
from daemon.credentials import mall_account
from daemon.transports.http import HttpTransport, TokenBucket
from daemon.wiring import ShopWiring
from protocols.malls import capability, module
from protocols.settings import ShopSettings

# How far back the order API of a mall that searches by order date is asked again: Qoo10
# takes cancellations up to 7 days after the order, and unpaid orders are paid within days.
ORDER_DATE_LOOKBACK_S = 8 * 24 * 3600.0


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
                        settle_s=wiring.intake.api_settle_s,
                        lookback_s=ORDER_DATE_LOOKBACK_S
                        if mall.ORDER_SEARCH_DATE == "ordered"
                        else 0.0,
                    ),
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
