"""Amazon's bulk sync through the Feeds API, sent by ``FeedStockSender`` against a scripted
mall on a virtual clock: the polls' waits to the second, a 429 waits without holding the
shop's pace, a 5xx is retried where it was, a pre-signed URL takes no API turn, a failure
after the feed was submitted says the mall may still apply it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import trio
import trio.testing

from daemon.transports.http import HttpAnswer, HttpTransportError, TokenBucket
from daemon.transports.stock import (
    ApiStockReader,
    ApiStockSender,
    FeedStockSender,
    MallLink,
    PushFailed,
)
from protocols.malls import amazon
from protocols.malls.base import ApiAccount, HttpRequest, StockUpdate

ACCOUNT = ApiAccount(base_url="https://sp.example", secret="Atza|t", seller_id="SELLER")
CREATED = datetime(2026, 12, 1, tzinfo=UTC)
Step = Callable[[HttpRequest], HttpAnswer]


def ok(body: bytes, status: int = 200, **headers: str) -> HttpAnswer:
    return HttpAnswer(status=status, headers=headers, body=body)


class ScriptedMall:
    """Answers each call by the Feeds API step it is, after the scripted surprises."""

    def __init__(self, surprises: list[HttpAnswer | Exception] | None = None) -> None:
        self.calls: list[tuple[float, str, str]] = []
        self.surprises = surprises or []
        self.polls = 0

    async def send(self, request: HttpRequest) -> HttpAnswer:
        self.calls.append((trio.current_time(), request.method, request.path))
        if self.surprises:
            surprise = self.surprises.pop(0)
            if isinstance(surprise, Exception):
                raise surprise
            return surprise
        if request.path.startswith("https://"):
            return ok(amazon.render_processing_report("SELLER", "9", 2, [(2, "90220", "no")]))
        call = amazon.read_feed_call(request)
        match call.kind:
            case "create_document":
                return ok(amazon.render_feed_document("d1", "https://s3.example/d1?sig=1"), 201)
            case "create_feed":
                return ok(amazon.render_created_feed("9"), 202)
            case "get_feed":
                self.polls += 1
                state = "DONE" if self.polls >= 3 else "IN_PROGRESS"
                return ok(amazon.render_feed("9", state, CREATED, "r1" if state == "DONE" else ""))
            case _:
                return ok(amazon.render_feed_document("r1", "https://s3.example/r1?sig=2"))

    async def aclose(self) -> None:
        pass


def sender(mall: ScriptedMall, bucket: TokenBucket, **options: float) -> FeedStockSender:
    items = ApiStockSender(
        amazon.build_stock_requests,
        amazon.parse_stock_response,
        1,
        MallLink(ACCOUNT, mall, bucket),
    )
    return FeedStockSender(
        items,
        amazon.start_stock_feed,
        amazon.FEED_MAX_MESSAGES,
        trio.current_time,
        **options,  # type: ignore[arg-type]
    )


UPDATES = [StockUpdate("A", (), 3), StockUpdate("B", (), 0)]


async def test_a_feed_is_polled_after_1_2_4_s_and_its_refusals_come_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    mall = ScriptedMall()
    bucket = TokenBucket(5.0, trio.current_time)
    refused = await sender(mall, bucket).send_bulk(UPDATES)
    assert refused == {1: "90220: no"}
    polls = [at for at, method, path in mall.calls if path.startswith("/feeds/2021-06-30/feeds/")]
    # created at 0.42 (three API turns of 0.21 s): polled 1, 2 and 4 s after
    assert [round(at - polls[0], 2) for at in polls] == [0.0, 2.0, 6.0]
    presigned = [call for call in mall.calls if call[2].startswith("https://")]
    assert [method for _, method, _ in presigned] == ["PUT", "GET"]


async def test_a_429_waits_its_retry_after_and_a_5xx_is_asked_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    surprises: list[HttpAnswer | Exception] = [
        ok(amazon.render_error(429, "slow"), 429, **{"retry-after": "7"}),
        ok(b"oops", 503),
        HttpTransportError("connection reset"),
    ]
    mall = ScriptedMall(surprises)
    refused = await sender(mall, TokenBucket(5.0, trio.current_time)).send_bulk(UPDATES)
    assert refused == {1: "90220: no"}
    first_three = [round(at, 2) for at, *_ in mall.calls[:4]]
    # the 429 at 0, the same call 7 s later (503), again 2 s later (reset), again 4 s later
    assert first_three == [0.0, 7.0, 9.0, 13.0]
    assert [path for *_, path in mall.calls[:4]] == ["/feeds/2021-06-30/documents"] * 4


async def test_a_failure_after_the_feed_was_submitted_may_still_apply(
    autojump_clock: trio.testing.MockClock,
) -> None:
    mall = ScriptedMall()
    mall.polls = -10_000  # processed for ever
    with pytest.raises(PushFailed) as failed:
        await sender(mall, TokenBucket(5.0, trio.current_time), max_wait_s=100).send_bulk(UPDATES)
    assert failed.value.maybe_applied and not failed.value.permanent
    assert "not done within 100s" in str(failed.value)
    assert trio.current_time() <= 100.0


async def test_a_refused_document_fails_for_good_and_was_never_submitted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    mall = ScriptedMall([ok(amazon.render_error(400, "bad content type"), 400)])
    with pytest.raises(PushFailed) as failed:
        await sender(mall, TokenBucket(5.0, trio.current_time)).send_bulk(UPDATES)
    assert failed.value.permanent and not failed.value.maybe_applied
    assert "bad content type" in str(failed.value)


class ReadMall:
    """Answers Amazon getListingsItem from ``shows`` by seller SKU (404 when absent)."""

    def __init__(self, shows: dict[str, int]) -> None:
        self.shows = shows

    async def send(self, request: HttpRequest) -> HttpAnswer:
        ((sku, _),) = amazon.read_stock_read_request(request)
        found = [StockUpdate(sku, (), self.shows[sku])] if sku in self.shows else []
        answer = amazon.render_stock_read_response(found)
        status, body = answer if isinstance(answer, tuple) else (200, answer)
        return ok(body, status)

    async def aclose(self) -> None:
        pass


async def test_a_read_answer_is_matched_to_the_listing_asked_by_its_sku(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reader = ApiStockReader(
        amazon.build_stock_read_requests,
        amazon.parse_stock_read_response,
        amazon.join_sku,
        MallLink(ACCOUNT, ReadMall({"ABC-RED": 4}), TokenBucket(5.0, trio.current_time)),
    )
    read = await reader.read([("ABC", ("-RED",)), ("GONE", ())])
    assert read == [("ABC", ("-RED",), 4), ("GONE", (), None)]


async def test_an_item_the_api_cannot_name_is_marked_and_the_others_are_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from protocols.malls import yahoo

    class YahooMall:
        async def send(self, request: HttpRequest) -> HttpAnswer:
            keys = yahoo.read_stock_read_request(request)
            return ok(yahoo.render_stock_read_response([StockUpdate(k[0], k[1], 2) for k in keys]))

        async def aclose(self) -> None:
            pass

    reader = ApiStockReader(
        yahoo.build_stock_read_requests,
        yahoo.parse_stock_read_response,
        yahoo.join_sku,
        MallLink(
            ApiAccount(base_url="https://circus.example", secret="t", seller_id="s"),
            YahooMall(),
            TokenBucket(1.0, trio.current_time),
        ),
    )
    read = await reader.read([("a,b", ()), ("code-1", ())])
    assert read == [("a,b", (), -1), ("code-1", (), 2)]
