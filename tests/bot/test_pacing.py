"""The account's buckets: a burst is let through at once, the rest paced at the minute's rate."""

from __future__ import annotations

import pytest

from bot.pacing import LeasedPacer, LocalPacer, burst_of, draw


def test_draw_lets_a_burst_through_then_spaces_the_rest():
    tokens, at = 60.0, 0.0
    waits = []
    for _ in range(62):
        tokens, wait = draw(tokens, at, 0.0, per_minute=600, burst=60)
        waits.append(wait)
    assert waits[:60] == [0.0] * 60
    assert waits[60:] == pytest.approx([0.1, 0.2])  # 600 a minute: one every 0.1 s


def test_draw_refills_but_never_above_the_burst():
    tokens, wait = draw(0.0, 0.0, 3600.0, per_minute=600, burst=60, count=60)
    assert (tokens, wait) == (0.0, 0.0)
    tokens, wait = draw(0.0, 0.0, 0.0, per_minute=3000, burst=300, count=10)
    assert wait == pytest.approx(0.2)  # ten slots at 50 a second


def test_our_burst_stays_inside_replicates_tenth_of_the_minute():
    assert (burst_of(600), burst_of(3000), burst_of(5)) == (54, 270, 1)


async def test_a_local_bucket_keeps_any_minute_under_its_limit():
    now = [0.0]
    pacer = LocalPacer(600, clock=lambda: now[0])
    sent_at = []
    for _ in range(1500):
        wait = await pacer.pace()
        sent_at.append(now[0] + wait)
        now[0] += 0.01  # a request every 10 ms: 6,000 a minute asked for
    sent_at.sort()
    for i, start in enumerate(sent_at):
        within = sum(1 for t in sent_at[i:i + 800] if t < start + 60)
        assert within <= 600 + 60


async def test_a_leased_bucket_takes_ten_slots_per_trip():
    trips: list[int] = []

    async def take(n: int) -> float:
        trips.append(n)
        return 0.0

    pacer = LeasedPacer(take, lease=10, clock=lambda: 0.0)
    for _ in range(25):
        assert await pacer.pace() == 0.0
    assert trips == [10, 10, 10]
