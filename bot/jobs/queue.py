"""Waiting for a turn and showing progress: the two pieces of a job's life that touch many jobs
at once. The queue hands out `max_concurrent` slots in arrival order; `Updates` keeps each job's
message edits to one at a time, at most one per interval, always the latest state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.jobs.state import JobState, Left

log = logging.getLogger(__name__)


class ShowsProgress(Protocol):
    async def update(self, state: JobState) -> None:
        """Show progress; never raises."""


class JobQueue:
    """At most `slots` jobs running; the rest wait in arrival order and hear their place."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.running = 0
        self.closed = False
        self._waiting: list[tuple[int, asyncio.Future[None], Callable[[int], None]]] = []

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def positions(self) -> dict[int, int]:
        return {job_id: i + 1 for i, (job_id, _, _) in enumerate(self._waiting)}

    async def acquire(self, job_id: int, on_position: Callable[[int], None]) -> None:
        """Take a slot, waiting for one if needed; `Left` once the queue is closed."""
        if self.closed:
            raise Left
        if self.running < self.slots and not self._waiting:
            self.running += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((job_id, future, on_position))
        on_position(len(self._waiting))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # we were handed a slot as we were canceled: pass it on
            else:
                self._waiting = [w for w in self._waiting if w[1] is not future]
                self._announce()
            raise

    def release(self) -> None:
        if self._waiting and not self.closed:
            _, future, _ = self._waiting.pop(0)
            future.set_result(None)
            self._announce()
        else:
            self.running -= 1

    def close(self) -> None:
        """Stopping: nobody waiting gets a slot any more; each is told to leave."""
        self.closed = True
        waiting, self._waiting = self._waiting, []
        for _, future, _ in waiting:
            if not future.done():
                future.set_exception(Left())

    def _announce(self) -> None:
        for place, (_, _, on_position) in enumerate(self._waiting, start=1):
            on_position(place)


class Updates:
    """One job's progress edits: one at a time, at most one per `interval` while the stage
    stays the same (a new stage shows at once), always the latest state, and none after
    `close`, so no progress edit can land over the result."""

    def __init__(self, reporter: ShowsProgress, interval: float, clock: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.reporter = reporter
        self.interval = interval
        self.clock = clock
        self.sleep = sleep
        self.latest: JobState | None = None
        self.shown_stage = ""
        self.last = -float("inf")
        self.closed = False
        self.due: float | None = None  # the latest state waits until then (`show(after=)`)
        self._sending = False
        self._task: asyncio.Task[None] | None = None

    def show(self, state: JobState, *, after: float = 0.0) -> None:
        """Show `state` (or a later one); with `after`, only if nothing replaces it within
        that many seconds: a job that starts at once then costs no edit."""
        if self.closed:
            return
        self.latest = state
        waiting = self.due is not None
        self.due = self.clock() + after if after else None
        if self._task is not None and not self._task.done() and not self._sending and \
                (state.stage != self.shown_stage or waiting):
            self._task.cancel()  # it waits out the interval; a new stage does not
            self._task = None
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        while self.latest is not None and not self.closed:
            if self.due is not None and self.due > self.clock():
                await self.sleep(self.due - self.clock())
                continue
            self.due = None
            wait = self.last + self.interval - self.clock()
            if wait > 0 and self.latest.stage == self.shown_stage:
                await self.sleep(wait)
                continue
            state, self.latest = self.latest, None
            self.last, self.shown_stage = self.clock(), state.stage
            self._sending = True
            try:
                await self.reporter.update(state)
            except Exception:  # a reporter must not raise; if it does, the job goes on
                log.exception("job %d: progress not shown", state.job_id)
            finally:
                self._sending = False

    async def close(self) -> None:
        """No more edits: let the one on its way land first, drop the rest."""
        self.closed = True
        task, self._task = self._task, None
        if task is None or task.done():
            return
        if not self._sending:
            task.cancel()
        await asyncio.wait({task})
