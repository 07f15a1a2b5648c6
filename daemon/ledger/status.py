"""``zaiko status``: the database and its shops at a glance (the control server adds the
daemon's version and each shop's actors)."""

from __future__ import annotations

from daemon.ledger import shops
from daemon.ledger.tx import Tx
from protocols import control


def status(tx: Tx, command: control.GetStatus) -> control.StatusReply:
    (skus,) = tx.db.execute("SELECT count(*) FROM skus").fetchone()
    (oversells,) = tx.db.execute("SELECT count(*) FROM oversells").fetchone()
    return control.StatusReply(
        id=command.id,
        version="",
        started_at="",
        database="",
        skus=skus,
        shops=tuple(shops.status_of(tx, shop) for shop in shops.all_shops(tx)),
        oversells=oversells,
    )
