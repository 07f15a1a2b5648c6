"""Which actors a shop runs, from its settings.

Intake, the interval reflector, hourly bulk sync and trickle release join this list as
their issues land; until then a shop is supervised with no actors.
"""

from __future__ import annotations

from daemon.actors.supervisor import ActorSpec
from protocols.settings import ShopSettings


def actors_for(shop: ShopSettings) -> list[ActorSpec]:
    return []
