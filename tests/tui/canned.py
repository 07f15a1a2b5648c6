"""A fixed daemon for the snapshot tests only (a screenshot needs the same data every run):
``CannedLink`` answers each request from canned replies and sends no event. Every other TUI
test talks to the real daemon."""

from __future__ import annotations

import asyncio
from typing import Any

from protocols import control
from tui.link import LinkChanged, Post

AT = "2026-11-30T01:02:03.000+00:00"


def shop(
    shop_id: str, mall: str, order_intake: str, reflect: str, **status: Any
) -> control.ShopStatus:
    return control.ShopStatus(
        id=shop_id,
        mall=mall,
        order_intake=order_intake,
        reflect=reflect,
        actors=(
            control.ActorStatus(name="intake", state="running"),
            control.ActorStatus(name="reflector", state="running"),
        ),
        **status,
    )


STATUS = control.StatusReply(
    id=0,
    version="0.1.0",
    started_at=AT,
    database="/var/lib/zaiko/zaiko.sqlite3",
    skus=100_000,
    oversells=1,
    shops=(
        shop(
            "rakuten-main",
            "rakuten",
            "active",
            "active",
            intake=control.IntakeStatus(last_intake=AT, taken_today=12, unmatched=2),
            reflection=control.ReflectStatus(last_push=AT, pending=3, urgent=1),
            audit=control.AuditStatus(job=7, at=AT, checked=100, drift=1),
        ),
        shop(
            "yahoo-main",
            "yahoo",
            "suspended",
            "active",
            intake=control.IntakeStatus(warnings=4, quarantined=1),
        ),
        control.ShopStatus(
            id="amazon-main",
            mall="amazon",
            order_intake="stopped",
            reflect="stopped",
            actors=(
                control.ActorStatus(
                    name="intake",
                    state="restarting",
                    restarts=3,
                    last_error="CredentialError: api_credential: no file amazon-main.token",
                ),
            ),
            intake=control.IntakeStatus(backlog=5, backlog_oldest=AT),
        ),
    ),
)

SKUS = (
    control.SkuSummary("000123", "靴下 赤 ① ㈱", 12, 10, 2, False),
    control.SkuSummary("MUG-001", "マグカップ 髙島屋限定", -1, 0, 0, False),
    control.SkuSummary("SET-A", "靴下セット", 4, 0, 0, True),
    control.SkuSummary("TSHIRT-RED-M", "Tシャツ red M", 100, 98, 20, False),
)


class CannedLink:
    async def run(self, post: Post) -> None:
        post(LinkChanged(True, ""))
        await asyncio.Event().wait()  # connected until the app ends

    async def request(self, message: Any) -> Any:
        match message:
            case control.GetStatus():
                return STATUS
            case control.SkuList():
                return control.SkuListReply(id=message.id, skus=SKUS, next_after=None)
            case control.JobsList():
                return control.JobsReply(id=message.id, jobs=())
        raise AssertionError(f"no canned reply to {message}")

    async def job_done(self, job: control.Job) -> control.Job:
        raise AssertionError("no canned jobs")
