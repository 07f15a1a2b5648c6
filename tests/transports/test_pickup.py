"""The file mall's batch rhythm, learned from when zaiko's file was seen there and gone
(``PickupRhythm``): a periodic mall, one whose pickups skip cycles (nothing was uploaded), a
batch that runs a few seconds off its slot, a mall that is not periodic, and one whose period
changes."""

from __future__ import annotations

import random

import pytest

from daemon.transports.pickup import PickupRhythm

POLL_S = 15.0


def see(rhythm: PickupRhythm, uploaded: float, pickup: float) -> None:
    """One file: uploaded, looked at every POLL_S while it waits, seen gone after ``pickup``."""
    rhythm.observe(uploaded, there=True)
    look = uploaded + POLL_S
    while look < pickup:
        rhythm.observe(look, there=True)
        look += POLL_S
    rhythm.observe(look, there=False)


def test_a_periodic_mall_is_learned_after_enough_pickups_and_predicted() -> None:
    rhythm = PickupRhythm()
    rng = random.Random(1)
    for cycle in range(1, 6):
        pickup = 17.0 + 300.0 * cycle
        assert rhythm.next_pickup(pickup) is None  # not yet: too few pickups agree
        see(rhythm, pickup - rng.uniform(20, 280), pickup)
    # each pickup is known within a look (15 s): the period within a few seconds
    assert rhythm.rhythm is not None
    assert rhythm.rhythm.period == pytest.approx(300.0, abs=3.0)
    upcoming = rhythm.next_pickup(5 * 300.0 + 100.0)
    assert upcoming == pytest.approx(17.0 + 6 * 300.0, abs=10.0)
    # strictly after now: at a pickup's moment the next one is a period later
    assert upcoming is not None
    assert rhythm.next_pickup(upcoming) == pytest.approx(upcoming + rhythm.rhythm.period)


def test_missed_cycles_are_multiples_of_the_period_not_a_longer_one() -> None:
    rhythm = PickupRhythm()
    for cycle in (1, 3, 4, 7, 9, 10):  # nothing was uploaded for the cycles between
        pickup = 40.0 + 300.0 * cycle
        see(rhythm, pickup - 100.0, pickup)
    assert rhythm.rhythm is not None
    assert rhythm.rhythm.period == pytest.approx(300.0, abs=1.0)


def test_a_file_that_waited_longer_than_half_the_gaps_rules_out_their_divisors() -> None:
    # pickups 600 s apart: 600 or 300 or 200 would all fit the gaps, but a file waited
    # 500 s, so no batch ran every 300 s
    rhythm = PickupRhythm()
    for cycle in range(1, 6):
        pickup = 600.0 * cycle
        see(rhythm, pickup - (500.0 if cycle == 3 else 40.0), pickup)
    assert rhythm.rhythm is not None
    assert rhythm.rhythm.period == pytest.approx(600.0, abs=1.0)


def test_a_batch_a_few_seconds_off_its_slot_keeps_the_rhythm() -> None:
    rhythm = PickupRhythm(jitter_s=5.0)
    rng = random.Random(2)
    for cycle in range(1, 13):
        pickup = 600.0 * cycle + rng.uniform(-4.0, 4.0)
        see(rhythm, pickup - rng.uniform(30, 500), pickup)
        if cycle >= 5:
            assert rhythm.rhythm is not None, cycle
            assert rhythm.rhythm.period == pytest.approx(600.0, abs=2.0)


def test_a_mall_that_is_not_periodic_has_no_rhythm() -> None:
    rhythm = PickupRhythm()
    pickup = 0.0
    for gap in (430, 180, 710, 260, 545, 335, 820, 150, 615, 290, 480, 375, 700, 205):
        pickup += gap
        see(rhythm, pickup - 60.0, pickup)
        assert rhythm.next_pickup(pickup) is None, pickup


def test_a_pickup_seen_imprecisely_teaches_nothing() -> None:
    rhythm = PickupRhythm(max_width_s=60.0)
    for cycle in range(1, 8):
        pickup = 300.0 * cycle
        rhythm.observe(pickup - 100.0, there=True)
        rhythm.observe(pickup + 100.0, there=False)  # nobody looked in between
    assert rhythm.rhythm is None


def test_a_period_change_is_unknown_until_the_new_one_is_learned() -> None:
    rhythm = PickupRhythm()
    for cycle in range(1, 9):
        see(rhythm, 300.0 * cycle - 45.0, 300.0 * cycle)
    assert rhythm.rhythm is not None
    assert rhythm.rhythm.period == pytest.approx(300.0, abs=1.0)
    # the mall now runs every 600 s, on every other old slot: a file uploaded just before
    # an old slot waits 345 s, which no 300 s rhythm allows
    see(rhythm, 3000.0 - 45.0, 3300.0)
    assert rhythm.rhythm is None
    for pickup in (3900.0, 4500.0, 5100.0, 5700.0):
        see(rhythm, pickup - 345.0, pickup)
    assert rhythm.rhythm is not None
    assert rhythm.rhythm.period == pytest.approx(600.0, abs=1.0)
    assert rhythm.next_pickup(5800.0) == pytest.approx(6300.0, abs=8.0)


def test_a_mall_that_takes_files_as_they_come_has_no_rhythm() -> None:
    """Every file gone at the first look after its upload: the pickups would only echo
    zaiko's own upload interval, so they teach nothing."""
    rhythm = PickupRhythm()
    for n in range(10):
        uploaded = 300.0 * n  # the interval pass, exactly every 5 minutes
        see(rhythm, uploaded, uploaded + 3.0)
    assert rhythm.rhythm is None
    assert rhythm.next_pickup(3000.0) is None


def test_a_file_taken_away_from_every_slot_drops_the_rhythm_believed() -> None:
    rhythm = PickupRhythm()
    for cycle in range(1, 6):
        pickup = 17.0 + 300.0 * cycle
        see(rhythm, pickup - 100.0, pickup)
    assert rhythm.rhythm is not None
    # a file gone within a look, half a period away from any slot: not the rhythm's batch
    see(rhythm, 6 * 300.0 + 160.0, 6 * 300.0 + 165.0)
    assert rhythm.rhythm is None
    # one gone at the first look but at a slot (a batch just due) keeps it
    for cycle in range(7, 12):
        pickup = 17.0 + 300.0 * cycle
        see(rhythm, pickup - 100.0, pickup)
    assert rhythm.rhythm is not None
    see(rhythm, 17.0 + 12 * 300.0 - 5.0, 17.0 + 12 * 300.0)
    assert rhythm.rhythm is not None
