"""When a file mall's batch picks up the stock file: its rhythm, learned from what zaiko sees
of its own file. Pure: no I/O, no clock; times are the caller's (the reflector's trio clock).

A file mall applies an uploaded file at its next batch run, every few minutes at a phase no
mall publishes. The reflector tells ``PickupRhythm`` when its file was there (an upload, a
refused upload, a probe that found it) and when it was gone (a probe, an upload the mall
took): each pickup lies between the last "there" and the first "gone" after it, and while
the file waited (from the first "there" to the last) no batch ran. From the recent pickups
it estimates the batch period and phase: consecutive pickups are a whole number of periods
apart (several when nothing was uploaded for a while), and no period is shorter than the
longest wait. A mall that is not periodic, or whose rhythm just changed, has none:
``next_pickup`` says None, and the reflector uploads at once.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Pickup:
    """One file's stay at the mall: there from ``since`` to ``last_there`` at least, gone by
    ``gone``; the batch that took it ran in (``last_there``, ``gone``]."""

    since: float
    last_there: float
    gone: float

    @property
    def mid(self) -> float:
        return (self.last_there + self.gone) / 2

    @property
    def half_width(self) -> float:
        return (self.gone - self.last_there) / 2


@dataclass(frozen=True)
class Rhythm:
    period: float
    phase: float  # one pickup time: the others are phase + k × period


class PickupRhythm:
    """Pickups seen, and the rhythm they show (``rhythm``, None while unknown).

    ``jitter_s``: how far a batch may run from its slot; ``min_pickups``: how many pickups
    must agree before a rhythm is believed; ``keep``: how many recent pickups count (older
    ones belong to the rhythm the mall may have had before); ``max_width_s``: a pickup seen
    less precisely (nobody looked for minutes) says too little to be kept;
    ``min_period_s`` / ``max_period_s``: what a mall's batch cycle may be; ``chance``: how
    likely pickups at random times may fit a candidate period (a fit likelier than this
    proves nothing); ``min_wait_s``: a file seen waiting less than this was taken as it came
    (it says nothing of a batch)."""

    def __init__(
        self,
        *,
        jitter_s: float = 5.0,
        min_pickups: int = 4,
        keep: int = 12,
        max_width_s: float = 60.0,
        min_period_s: float = 120.0,
        max_period_s: float = 6 * 3600.0,
        chance: float = 0.001,
        min_wait_s: float = 10.0,
    ) -> None:
        self._min_wait_s = min_wait_s
        self._jitter_s = jitter_s
        self._min_pickups = max(3, min_pickups)
        self._max_width_s = max_width_s
        self._min_period_s = min_period_s
        self._max_period_s = max_period_s
        self._chance = chance
        self._pickups: deque[Pickup] = deque(maxlen=max(keep, self._min_pickups))
        self._since: float | None = None  # the file waiting now: first seen there
        self._last_there: float | None = None
        self.rhythm: Rhythm | None = None

    def observe(self, at: float, there: bool) -> None:
        """The file was there at ``at`` (uploaded, refused as still there, probed), or gone
        (probed, or an upload the mall took: the name was free)."""
        if there:
            if self._since is None:
                self._since = at
            self._last_there = at if self._last_there is None else max(self._last_there, at)
            return
        if self._since is None or self._last_there is None or at <= self._last_there:
            return
        pickup = Pickup(self._since, self._last_there, at)
        self._since = self._last_there = None
        if pickup.last_there < pickup.since + self._min_wait_s:
            # gone within seconds of the upload: a mall that takes files as they come looks
            # like this, and its pickups would only echo zaiko's own upload rhythm back; such
            # a pickup away from every slot of the rhythm believed says the rhythm is not the
            # mall's
            if self.rhythm is not None and not self._near_slot(pickup, self.rhythm):
                self._pickups.clear()
                self.rhythm = None
            return
        if pickup.gone - pickup.last_there <= self._max_width_s:
            self._pickups.append(pickup)
            self.rhythm = self._estimate()

    def _near_slot(self, pickup: Pickup, rhythm: Rhythm) -> bool:
        slot = self._slot_after(pickup.last_there - self._jitter_s, rhythm)
        return slot <= pickup.gone + self._jitter_s

    @staticmethod
    def _slot_after(now: float, rhythm: Rhythm) -> float:
        cycles = math.floor((now - rhythm.phase) / rhythm.period) + 1
        return rhythm.phase + cycles * rhythm.period

    def next_pickup(self, now: float) -> float | None:
        """The first batch run strictly after ``now``, or None while the rhythm is unknown."""
        rhythm = self.rhythm
        if rhythm is None:
            return None
        return self._slot_after(now, rhythm)

    def _estimate(self) -> Rhythm | None:
        """The rhythm of the longest run of recent pickups that has one: a pickup that breaks
        the old rhythm leaves it unknown until enough pickups agree on a new one."""
        pickups = list(self._pickups)
        for first in range(len(pickups) - self._min_pickups + 1):
            rhythm = self._fit(pickups[first:])
            if rhythm is not None:
                return rhythm
        return None

    def _fit(self, pickups: Sequence[Pickup]) -> Rhythm | None:
        gaps = [b.mid - a.mid for a, b in itertools.pairwise(pickups)]
        slack = max(p.half_width for p in pickups) + self._jitter_s
        shortest = min(gaps)
        # no period is shorter than a wait (no batch ran while the file was there)
        floor_ = max(self._min_period_s, max(p.last_there - p.since for p in pickups) - slack)
        if shortest < floor_ - 2 * slack:
            return None
        # the shortest gap is a whole number of periods: the longest candidate that fits
        # every pickup wins (its divisors fit too, but they would need batches nobody saw)
        most = max(1, math.floor((shortest + 2 * slack) / floor_))
        for cycles in range(1, most + 1):
            rhythm = self._least_squares(pickups, shortest / cycles)
            if rhythm is not None and self._fits(pickups, rhythm):
                return rhythm
        return None

    @staticmethod
    def _least_squares(pickups: Sequence[Pickup], guess: float) -> Rhythm | None:
        """Each pickup's cycle number by ``guess``, then the period and phase that fit the
        pickups best (refined once with the period found)."""
        origin = pickups[0].mid
        period = guess
        for _ in range(2):
            cycles = [round((p.mid - origin) / period) for p in pickups]
            if len(set(cycles)) < len(cycles):
                return None  # two pickups in one cycle: not this period
            n = len(pickups)
            mean_k = sum(cycles) / n
            mean_t = sum(p.mid for p in pickups) / n
            spread = sum((k - mean_k) ** 2 for k in cycles)
            if spread == 0:
                return None
            period = (
                sum((k - mean_k) * (p.mid - mean_t) for k, p in zip(cycles, pickups, strict=True))
                / spread
            )
            if period <= 0:
                return None
        phase = mean_t + (cycles[-1] - mean_k) * period
        return Rhythm(period, phase)

    def _fits(self, pickups: Sequence[Pickup], rhythm: Rhythm) -> bool:
        if not self._min_period_s <= rhythm.period <= self._max_period_s:
            return False
        tolerance = 0.0
        for pickup in pickups:
            allowed = pickup.half_width + self._jitter_s
            cycles = round((pickup.mid - rhythm.phase) / rhythm.period)
            slot = rhythm.phase + cycles * rhythm.period
            if abs(slot - pickup.mid) > allowed:
                return False
            if slot - rhythm.period > pickup.since + self._jitter_s:
                return False  # a batch ran while the file waited, and did not take it
            tolerance += allowed
        # pickups at random times fall within the tolerance of some slot with this chance
        # each; the first two set the rhythm, the others are the evidence
        per_pickup = min(1.0, 2 * tolerance / len(pickups) / rhythm.period)
        return bool(per_pickup ** (len(pickups) - 2) <= self._chance)
