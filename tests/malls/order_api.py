"""A tiny in-test mall for order polls, and the loop that drives a poll the way the daemon
does: the module's own simulator renderers answer, in pages of a few, and a 429 or an error
can be put in the way of any call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import ModuleType

from protocols.malls._api import ServedOrder, answer_order_call
from protocols.malls.base import (
    HttpRequest,
    MallOrder,
    MallOrderState,
    OrderLine,
    OrderPoll,
    RateLimited,
)

JST = timezone(timedelta(hours=9))
T0 = datetime(2026, 6, 12, 10, 0, tzinfo=JST)

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class FakeMall:
    """Answers a module's order calls from ``held``; ``interrupt`` maps a call's number
    (1-based) to what is answered instead, once."""

    module: ModuleType
    held: Sequence[ServedOrder]
    page_size: int = 2
    items_page_size: int = 2
    interrupt: dict[int, Answer] = field(default_factory=dict)
    requests: list[HttpRequest] = field(default_factory=list)

    def answer(self, request: HttpRequest) -> Answer:
        self.requests.append(request)
        instead = self.interrupt.pop(len(self.requests), None)
        if instead is not None:
            return instead
        call = self.module.read_order_call(request)
        answer = answer_order_call(
            call, self.held, page_size=self.page_size, items_page_size=self.items_page_size
        )
        return 200, {}, self.module.render_order_answer(call, answer)

    def throttled(self, retry_after: str = "3") -> Answer:
        return 429, {"Retry-After": retry_after}, self.module.render_error(429, "too many requests")


def run_poll(poll: OrderPoll, mall: FakeMall) -> list[RateLimited]:
    """Send every request the poll asks for; after a 429 send the same one again."""
    waits = []
    while (request := poll.next_request()) is not None:
        status, headers, body = mall.answer(request)
        try:
            poll.feed(status, headers, body)
        except RateLimited as exc:
            waits.append(exc)
            assert poll.next_request() == request  # the same call, again
    return waits


def order(
    number: str,
    at: datetime,
    *,
    status: MallOrderState = "new",
    lines: int = 3,
    cancelled_lines: tuple[int, ...] = (),
    variation: tuple[str, ...] = (),
) -> MallOrder:
    return MallOrder(
        order_no=number,
        ordered_at=at.isoformat(),
        status=status,
        lines=tuple(
            OrderLine(
                line_no=n,
                item_id=f"item-{n}",
                variation=variation,
                sku=f"item-{n}" + "".join(variation),
                quantity=n,
                name=f"商品{n} ㈱髙①～",
            )
            for n in range(1, lines + 1)
        ),
        cancelled_lines=cancelled_lines,
    )


def served(mall_order: MallOrder, *, updated: datetime | None = None, foreign: bool = False):  # type: ignore[no-untyped-def]
    return ServedOrder(
        order=mall_order,
        updated_at=updated or datetime.fromisoformat(mall_order.ordered_at),
        foreign=foreign,
    )


def essence(orders: Sequence[MallOrder]) -> list[tuple[object, ...]]:
    """What a poll must get right, comparable across modules: number, state, lines
    (number, item, variation, quantity) and the cancelled lines (all, for a cancelled order)."""
    return [
        (
            o.order_no,
            o.status,
            tuple((ln.line_no, ln.item_id, ln.variation, ln.quantity) for ln in o.lines),
            tuple(ln.line_no for ln in o.lines) if o.status == "cancelled" else o.cancelled_lines,
        )
        for o in orders
    ]
