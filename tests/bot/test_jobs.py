"""The job queue's order and positions, and the progress throttle, without Discord."""

from __future__ import annotations

import asyncio

from bot.jobs import JobQueue, Throttle


async def test_queue_runs_in_order_and_tells_positions():
    queue = JobQueue(slots=1)
    heard: dict[int, list[int]] = {1: [], 2: [], 3: []}
    await queue.acquire(1, heard[1].append)
    second = asyncio.ensure_future(queue.acquire(2, heard[2].append))
    third = asyncio.ensure_future(queue.acquire(3, heard[3].append))
    await asyncio.sleep(0)
    assert queue.positions() == {2: 1, 3: 2} and heard == {1: [], 2: [1], 3: [2]}
    queue.release()
    await second
    assert heard[3] == [2, 1] and not third.done()
    queue.release()
    await third
    queue.release()
    assert queue.running == 0


async def test_a_canceled_waiter_gives_up_its_place():
    queue = JobQueue(slots=1)
    await queue.acquire(1, lambda _: None)
    heard: list[int] = []
    second = asyncio.ensure_future(queue.acquire(2, lambda _: None))
    third = asyncio.ensure_future(queue.acquire(3, heard.append))
    await asyncio.sleep(0)
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    assert heard == [2, 1] and queue.positions() == {3: 1}
    queue.release()
    await third


def test_throttle_passes_at_most_one_update_per_interval():
    now = [100.0]
    throttle = Throttle(2.0, lambda: now[0])
    assert throttle.ready()
    now[0] += 1.0
    assert not throttle.ready()
    assert throttle.ready(force=True)  # queue moves and the end are always shown
    now[0] += 1.9
    assert not throttle.ready()
    now[0] += 0.2
    assert throttle.ready()
