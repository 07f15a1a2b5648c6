"""A mall's HTTP API over httpx (native on trio), and the rate limit zaiko keeps for it.

Requests are pure data (``protocols.malls.base.HttpRequest``), built and read by the mall
modules; this module only sends them. The base URL is the shop's ``api_base_url``: a
request's path is appended to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx
import trio

from protocols.malls.base import HttpRequest


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]
    body: bytes


class HttpTransportError(Exception):
    """The mall could not be reached or did not answer (no HTTP status): tried again later."""


class HttpTransport:
    def __init__(self, base_url: str, timeout_s: float = 30.0) -> None:
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/") + "/", timeout=timeout_s)

    async def send(self, request: HttpRequest) -> HttpAnswer:
        try:
            response = await self._client.request(
                request.method,
                request.path.lstrip("/"),
                # no params at all when there are none: an empty list would drop the query
                # a pre-signed URL carries in its path
                params=list(request.query) or None,
                headers=list(request.headers),
                content=request.body or None,
            )
        except httpx.HTTPError as exc:
            raise HttpTransportError(
                f"{request.method} {request.path}: {exc or type(exc).__name__}"
            ) from exc
        return HttpAnswer(
            status=response.status_code,
            headers={key.lower(): value for key, value in response.headers.items()},
            body=response.content,
        )

    async def aclose(self) -> None:
        await self._client.aclose()


# Requests are spaced this much wider than the mall's limit: a request's arrival at the mall
# jitters by the network's latency, and two arriving closer than the limit's spacing is a 429.
RATE_MARGIN = 1.05


class TokenBucket:
    """At most ``rate_per_s`` requests a second (a little under: ``RATE_MARGIN``), evenly
    spaced, on trio's clock (a MockClock under test): each caller gets the next free moment
    and sleeps until it."""

    def __init__(self, rate_per_s: float, clock: Callable[[], float]) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate must be above 0, not {rate_per_s}")
        self._interval = RATE_MARGIN / rate_per_s
        self._clock = clock
        self._next = clock()
        self._last = -math.inf

    async def take(self) -> None:
        moment = max(self._clock(), self._next)
        self._next = moment + self._interval
        await trio.sleep_until(moment)
        # woken late (a busy moment): the next call still keeps the interval from this one,
        # or the two would reach the mall closer together than its limit
        if self._clock() < self._last + self._interval:
            await trio.sleep_until(self._last + self._interval)
        now = self._clock()
        self._last = now
        self._next = max(self._next, now + self._interval)

    def hold(self, seconds: float) -> None:
        """The mall asked for a pause (429 Retry-After): nobody sends before it ends."""
        self._next = max(self._next, self._clock() + seconds)
