"""The job queue's order and positions, and the progress edits, without Discord."""

from __future__ import annotations

import asyncio

import pytest

from bot.jobs.queue import JobQueue, Updates
from bot.jobs.state import JobState, Left


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


async def test_a_closed_queue_sends_every_waiter_away():
    queue = JobQueue(slots=1)
    await queue.acquire(1, lambda _: None)
    waiter = asyncio.ensure_future(queue.acquire(2, lambda _: None))
    await asyncio.sleep(0)
    queue.close()
    with pytest.raises(Left):
        await waiter
    with pytest.raises(Left):
        await queue.acquire(3, lambda _: None)
    queue.release()
    assert queue.running == 0


class Recorder:
    """A reporter that takes `hold` to answer, so tests see edits overlap (or not)."""

    def __init__(self) -> None:
        self.shown: list[JobState] = []
        self.active = 0
        self.peak = 0
        self.gate: asyncio.Event | None = None

    async def update(self, state: JobState) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if self.gate is not None:
                await self.gate.wait()
            self.shown.append(state)
        finally:
            self.active -= 1


class Time:
    """Time that passes only when the test says so; sleepers wake when it has."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        self.sleepers.append((self.now + seconds, future))
        await future

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        for at, future in list(self.sleepers):
            if at <= self.now and not future.done():
                future.set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)


def queued(place: int) -> JobState:
    return JobState(1, "queued", position=place)


async def test_a_burst_of_positions_shows_the_first_and_the_latest_only():
    reporter, time = Recorder(), Time()
    updates = Updates(reporter, 2.0, time.clock, time.sleep)
    for place in range(40, 0, -1):  # a long queue moving fast: one edit each would be 40
        updates.show(queued(place))
        await asyncio.sleep(0)
    assert [s.position for s in reporter.shown] == [40]
    await time.advance(1.9)
    assert [s.position for s in reporter.shown] == [40]
    await time.advance(0.1)  # the interval is out: the latest place, and only it
    assert [s.position for s in reporter.shown] == [40, 1]
    await updates.close()


async def test_a_new_stage_shows_at_once_and_edits_never_overlap():
    reporter, time = Recorder(), Time()
    reporter.gate = asyncio.Event()
    updates = Updates(reporter, 2.0, time.clock, time.sleep)
    updates.show(queued(3))
    await asyncio.sleep(0)
    updates.show(JobState(1, "starting"))
    updates.show(JobState(1, "processing"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert reporter.peak == 1 and reporter.shown == []  # the second waits for the first
    reporter.gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert [s.stage for s in reporter.shown] == ["queued", "processing"]
    assert time.now == 0.0  # a new stage does not wait for the interval
    await updates.close()


async def test_close_lets_the_edit_under_way_land_and_drops_the_rest():
    reporter, time = Recorder(), Time()
    reporter.gate = asyncio.Event()
    updates = Updates(reporter, 2.0, time.clock, time.sleep)
    updates.show(queued(2))
    await asyncio.sleep(0)
    updates.show(queued(1))
    closing = asyncio.ensure_future(updates.close())
    await asyncio.sleep(0)
    assert not closing.done()  # waits for the edit on its way: nothing lands after close
    reporter.gate.set()
    await closing
    assert [s.position for s in reporter.shown] == [2]
    updates.show(queued(9))
    await asyncio.sleep(0)
    assert [s.position for s in reporter.shown] == [2]


async def test_a_state_shown_with_after_is_dropped_when_a_later_one_comes_first():
    reporter, time = Recorder(), Time()
    updates = Updates(reporter, 2.0, time.clock, time.sleep)
    updates.show(JobState(1, "starting"), after=1.5)  # a job whose images come at once
    await asyncio.sleep(0)
    await time.advance(1.0)
    assert reporter.shown == []
    updates.show(JobState(1, "processing"))  # replaced before 1.5 s: "starting" never shown
    for _ in range(3):
        await asyncio.sleep(0)
    assert [s.stage for s in reporter.shown] == ["processing"]

    updates.show(JobState(1, "starting"), after=1.5)
    await time.advance(1.5)  # nothing came: it is shown once the wait is out
    assert [s.stage for s in reporter.shown] == ["processing", "starting"]
    await updates.close()
