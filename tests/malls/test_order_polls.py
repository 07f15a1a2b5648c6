"""Every API-intake module's order poll, driven by a tiny in-test loop against the module's own
rendered answers: every page, every state, 429s, errors, stable line numbers."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import ModuleType

import pytest

from protocols.malls import KINDS, capability, module
from protocols.malls._api import ServedOrder
from protocols.malls.base import ApiAccount, MallApiError, MallOrderState, RateLimited
from tests.malls.order_api import T0, FakeMall, essence, order, run_poll, served

ACCOUNT = ApiAccount(base_url="https://mall.invalid", secret="svcSecret:licKey", seller_id="S1")
API_KINDS = [kind for kind in KINDS if "api" in capability(kind).intake]
# The states each mall reports, and how many lines its orders have.
STATES: dict[str, tuple[MallOrderState, ...]] = {
    "amazon": ("new", "pending", "cancelled"),
    "rakuten": ("new", "cancelled", "partially_cancelled"),
    "qoo10": ("new", "unpaid", "cancelled", "partially_cancelled"),
    "wowma_manager": ("new", "unpaid", "pending", "cancelled", "partially_cancelled"),
    "yahoo_auction": ("new", "cancelled"),
}
DAY = timedelta(days=1)


def test_every_api_intake_kind_is_covered() -> None:
    assert set(API_KINDS) == set(STATES)


def held_orders(kind: str, count: int = 7) -> list[ServedOrder]:
    """``count`` orders from T0, ten minutes apart, cycling through the mall's states; one
    before T0 and one a day later, outside the window the tests poll."""
    lines = 1 if kind == "yahoo_auction" else 3
    states = STATES[kind]
    held = [served(order("EARLY-1", T0 - timedelta(hours=1), lines=lines))]
    for n in range(count):
        status = states[n % len(states)]
        held.append(
            served(
                order(
                    f"{kind.upper()}-{n + 1:04d}",
                    T0 + timedelta(minutes=10 * n),
                    status=status,
                    lines=lines,
                    cancelled_lines=(2,) if status == "partially_cancelled" else (),
                )
            )
        )
    held.append(served(order("LATE-1", T0 + DAY + timedelta(hours=1), lines=lines)))
    return held


def in_window(held: list[ServedOrder]) -> list[ServedOrder]:
    return [s for s in held if s.order.order_no not in ("EARLY-1", "LATE-1")]


def poll(kind: str) -> tuple[ModuleType, object]:
    mod = module(kind)
    return mod, mod.start_order_poll(ACCOUNT, T0, T0 + DAY)


def by_number(orders):  # type: ignore[no-untyped-def]
    return sorted(essence(orders))


@pytest.mark.parametrize("kind", API_KINDS)
def test_poll_gets_every_order_of_the_window_over_several_pages(kind: str) -> None:
    held = held_orders(kind)
    mod, order_poll = poll(kind)
    mall = FakeMall(mod, held)
    assert run_poll(order_poll, mall) == []  # type: ignore[arg-type]
    assert by_number(order_poll.orders) == by_number([s.order for s in in_window(held)])  # type: ignore[attr-defined]
    assert order_poll.ignored == 0  # type: ignore[attr-defined]
    assert len(mall.requests) >= 4  # pages of two (and, for Amazon, every order's items)
    assert order_poll.next_request() is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", API_KINDS)
def test_429_is_rate_limited_and_the_same_request_goes_again(kind: str) -> None:
    held = held_orders(kind)
    mod, order_poll = poll(kind)
    mall = FakeMall(mod, held)
    mall.interrupt[2] = mall.throttled("3")
    mall.interrupt[4] = (429, {}, mod.render_error(429, "too many requests"))
    waits = run_poll(order_poll, mall)  # type: ignore[arg-type]
    assert [w.retry_after for w in waits] == [3.0, None]
    assert all("HTTP 429" in str(w) and "too many requests" in str(w) for w in waits)
    assert mall.requests[1] == mall.requests[2] and mall.requests[3] == mall.requests[4]
    assert by_number(order_poll.orders) == by_number([s.order for s in in_window(held)])  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", API_KINDS)
def test_an_error_answer_fails_the_poll_for_good(kind: str) -> None:
    mod, order_poll = poll(kind)
    mall = FakeMall(mod, held_orders(kind))
    mall.interrupt[2] = (500, {}, mod.render_error(500, "internal server error (simulated)"))
    with pytest.raises(MallApiError) as failed:
        run_poll(order_poll, mall)  # type: ignore[arg-type]
    message = str(failed.value)
    assert message.startswith("HTTP 500: ") and "internal server error (simulated)" in message
    assert "\n" not in message
    with pytest.raises(MallApiError, match="HTTP 500"):
        order_poll.next_request()  # type: ignore[attr-defined]
    with pytest.raises(MallApiError):
        order_poll.feed(200, {}, b"")  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="not done"):
        _ = order_poll.orders  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", API_KINDS)
def test_an_outage_page_and_an_unreadable_answer_are_mall_errors(kind: str) -> None:
    mod, order_poll = poll(kind)
    mall = FakeMall(mod, held_orders(kind))
    mall.interrupt[1] = (503, {"content-type": "text/plain"}, b"503 Service Unavailable\n")
    with pytest.raises(MallApiError, match=r"^HTTP 503: 503 Service Unavailable$"):
        run_poll(order_poll, mall)  # type: ignore[arg-type]
    mod, order_poll = poll(kind)
    mall = FakeMall(mod, held_orders(kind))
    mall.interrupt[2] = (200, {}, b"<html>maintenance</html")
    with pytest.raises(MallApiError, match="unreadable"):
        run_poll(order_poll, mall)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", API_KINDS)
def test_line_numbers_do_not_depend_on_paging(kind: str) -> None:
    held = held_orders(kind)
    results = []
    for page_size in (1, 5):
        mod, order_poll = poll(kind)
        run_poll(order_poll, FakeMall(mod, held, page_size=page_size, items_page_size=page_size))  # type: ignore[arg-type]
        results.append(by_number(order_poll.orders))  # type: ignore[attr-defined]
    assert results[0] == results[1]


@pytest.mark.parametrize("kind", API_KINDS)
def test_window_checks(kind: str) -> None:
    mod = module(kind)
    empty = mod.start_order_poll(ACCOUNT, T0, T0)
    assert empty.next_request() is None
    assert empty.orders == [] and empty.ignored == 0
    with pytest.raises(RuntimeError, match="done"):
        empty.feed(200, {}, b"")
    with pytest.raises(ValueError, match="aware"):
        mod.start_order_poll(ACCOUNT, datetime(2026, 6, 12), datetime(2026, 6, 13))
    with pytest.raises(ValueError, match="before it starts"):
        mod.start_order_poll(ACCOUNT, T0, T0 - DAY)
    assert mod.ORDER_SEARCH_DATE in ("ordered", "updated")


@pytest.mark.parametrize("kind", API_KINDS)
def test_orders_are_not_readable_before_the_poll_is_done(kind: str) -> None:
    _, order_poll = poll(kind)
    with pytest.raises(RuntimeError, match="not done"):
        _ = order_poll.orders  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", API_KINDS)
def test_an_error_page_in_no_known_shape_is_read_as_text(kind: str) -> None:
    _, order_poll = poll(kind)
    request = order_poll.next_request()  # type: ignore[attr-defined]
    for status, error in ((429, RateLimited), (502, MallApiError)):
        with pytest.raises(error, match=rf"^HTTP {status}: \[1, 2\] <oops>$"):
            order_poll.feed(status, {}, b"[1, 2]\n<oops>")  # type: ignore[attr-defined]
    with pytest.raises(MallApiError):
        order_poll.next_request()  # type: ignore[attr-defined]
    assert request is not None
