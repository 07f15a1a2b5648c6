"""Which actors a shop runs, from its settings, each bound to what it needs.

A shop's actors (intake, interval reflector, bulk sync, trickle release) are listed here,
each an ``ActorSpec`` whose ``run`` gets a ledger send end of its own per attempt; the
shop's settings and the wiring's clocks, bus and paths are bound when it is listed. The
supervisor restarts the list whenever the shop's settings change.
"""

from __future__ import annotations

from functools import partial

from daemon.actors.intake import MailIntakeSettings, mail_intake
from daemon.actors.supervisor import ActorSpec
from daemon.wiring import ShopWiring
from protocols.malls import capability, module
from protocols.settings import ShopSettings


def actors_for(shop: ShopSettings, wiring: ShopWiring) -> list[ActorSpec]:
    actors = []
    if "mail" in capability(shop.mall).intake:
        # it runs while intake is stopped too: it counts the backlog then
        actors.append(
            ActorSpec(
                "intake",
                partial(
                    mail_intake,
                    shop,
                    module(shop.mall).parse_order_mail,
                    wiring.paths.maildir_root,
                    wiring.board,
                    wiring.clock,
                    MailIntakeSettings(),
                ),
            )
        )
    return actors
