"""Which actors a shop runs, from its settings, each bound to what it needs.

A shop's actors (intake, interval reflector, bulk sync, trickle release) are listed here,
each an ``ActorSpec`` whose ``run`` gets a ledger send end of its own per attempt; the
shop's settings and the wiring's clocks, bus and paths are bound when it is listed. The
supervisor restarts the list whenever the shop's settings change.
"""

from __future__ import annotations

from daemon.actors.supervisor import ActorSpec
from daemon.wiring import ShopWiring
from protocols.settings import ShopSettings


def actors_for(shop: ShopSettings, wiring: ShopWiring) -> list[ActorSpec]:
    return []
