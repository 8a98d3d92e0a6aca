"""Running jobs: queue, follow, deliver, settle. No Discord here: a `Reporter` shows the job
wherever it lives (a Discord message, a terminal), so the flow is the same for every front end.

    reserve (quota) -> JobRunner.start -> queue slot -> Replicate -> reporter.deliver
                    -> commit delivered / refund the rest

A job always ends settled: delivered images are charged, everything else refunded. A job
interrupted by a shutdown keeps its state and is resumed at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from bot.errors import OptionError, UserError
from bot.generation import GenerationResult, estimate_cost, finish_generation, generate
from bot.images import sniff
from bot.logs import current_job
from bot.metrics import Metrics
from bot.model import GenerationOptions
from bot.replicate.client import ReplicateClient
from bot.replicate.errors import (
    PredictionCanceled,
    PredictionError,
    PredictionTimeout,
    ReplicateError,
)
from bot.replicate.prediction import Prediction, Progress
from bot.storage import Storage
from bot.storage.history import Generation, InFlightJob

log = logging.getLogger(__name__)

EDIT_INTERVAL = 2.0
MAX_INPUT_IMAGE = 20 * 1024 * 1024


@dataclass(frozen=True)
class JobState:
    """What a reporter shows while a job runs."""

    job_id: int
    stage: str  # queued | starting | processing
    position: int = 0
    progress: Progress = field(default_factory=Progress)
    elapsed: float = 0.0


class Reporter(Protocol):
    async def update(self, state: JobState) -> None:
        """Show progress; may be skipped, never raises."""

    async def already_delivered(self) -> int | None:
        """Images already posted for this job by an earlier run (None: not posted)."""

    async def deliver(self, job: Generation, result: GenerationResult) -> int:
        """Post the images; returns how many were posted. Raises `UserError` when nothing
        could be posted."""

    async def annotate(self, job: Generation, result: GenerationResult) -> None:
        """The images are posted; show the figures known only at the prediction's end."""

    async def fail(self, job: Generation, error: UserError, refunded: int) -> None:
        """Tell the member the job ended without images and what was refunded."""


class JobQueue:
    """At most `slots` jobs running; the rest wait in arrival order and hear their place."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.running = 0
        self._waiting: list[tuple[int, asyncio.Future[None], Callable[[int], None]]] = []

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def positions(self) -> dict[int, int]:
        return {job_id: i + 1 for i, (job_id, _, _) in enumerate(self._waiting)}

    async def acquire(self, job_id: int, on_position: Callable[[int], None]) -> None:
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
        if self._waiting:
            _, future, _ = self._waiting.pop(0)
            future.set_result(None)
            self._announce()
        else:
            self.running -= 1

    def _announce(self) -> None:
        for place, (_, _, on_position) in enumerate(self._waiting, start=1):
            on_position(place)


class Throttle:
    """Pass an update through at most once per `interval`, always the latest."""

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self.interval = interval
        self.clock = clock
        self.last = -float("inf")

    def ready(self, force: bool = False) -> bool:
        now = self.clock()
        if force or now - self.last >= self.interval:
            self.last = now
            return True
        return False


class JobRunner:
    """Starts, follows, cancels and resumes jobs; every outcome settles the credits."""

    def __init__(self, storage: Storage, client: ReplicateClient,
                 session: aiohttp.ClientSession, *, cost_per_second: float = 0.0,
                 edit_interval: float = EDIT_INTERVAL, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.storage = storage
        self.client = client
        self.session = session
        self.cost_per_second = cost_per_second
        self.edit_interval = edit_interval
        self.clock = clock
        self.queue = JobQueue(client.max_concurrent)
        self.metrics = metrics
        if metrics is not None:
            metrics.watch_queue(lambda: self.queue.waiting, lambda: self.queue.running)
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.closing = False
        self._canceled: set[int] = set()
        self._predictions: dict[int, str] = {}
        self._delivering: set[int] = set()

    # -- control ----------------------------------------------------------------------------

    def start(self, job_id: int, options: GenerationOptions, reporter: Reporter, *,
              resume_id: str | None = None) -> asyncio.Task[None]:
        task = asyncio.create_task(self._run(job_id, options, reporter, resume_id),
                                   name=f"job-{job_id}")
        self.tasks[job_id] = task
        task.add_done_callback(lambda _: self._forget(job_id))
        return task

    def _forget(self, job_id: int) -> None:
        """A job's task ended: drop what was kept for it (the bot runs for months)."""
        self.tasks.pop(job_id, None)
        self._predictions.pop(job_id, None)
        self._canceled.discard(job_id)

    async def cancel(self, job_id: int) -> bool:
        """Cancel a queued or running job (credits refunded); False if it is not running."""
        task = self.tasks.get(job_id)
        if task is None or task.done():
            return False
        self._canceled.add(job_id)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
        return True

    async def shutdown(self, grace: float = 15.0) -> None:
        """Stop taking jobs and stop following the running ones, keeping their state (and
        their predictions running on Replicate) so the next start resumes them. Jobs already
        posting their images are given `grace` seconds to finish and settle."""
        self.closing = True
        delivering = [t for job, t in self.tasks.items() if job in self._delivering]
        if delivering:
            await asyncio.wait(delivering, timeout=grace)
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def idle(self) -> None:
        """Wait for every job running now to end (or be left for the next start)."""
        while self.tasks:
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    def position(self, job_id: int) -> int:
        return self.queue.positions().get(job_id, 0)

    # -- one job ----------------------------------------------------------------------------

    async def _check_image(self, url: str) -> None:
        """The model fetches the image itself; make sure it is one first."""
        try:
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=30)) as resp:
                if resp.status != 200:
                    raise OptionError("check.image_unreadable")
                data = await resp.content.read(MAX_INPUT_IMAGE + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OptionError("check.image_unreadable") from exc
        if len(data) > MAX_INPUT_IMAGE:
            raise OptionError("check.image_too_large", size=len(data) // 2**20,
                              limit=MAX_INPUT_IMAGE // 2**20)
        if sniff(data) is None:
            raise OptionError("check.image_not_image")

    async def _run(self, job_id: int, options: GenerationOptions, reporter: Reporter,
                   resume_id: str | None) -> None:
        current_job.set(job_id)  # this task only: its log lines name the job
        started = self.clock()
        throttle = Throttle(self.edit_interval, self.clock)
        pending: set[asyncio.Task[None]] = set()

        def show(state: JobState, force: bool = False) -> None:
            if throttle.ready(force):
                update = asyncio.ensure_future(reporter.update(state))
                pending.add(update)
                update.add_done_callback(pending.discard)

        def on_position(place: int) -> None:
            show(JobState(job_id, "queued", position=place), force=True)

        def on_update(prediction: Prediction) -> None:
            if prediction.output:
                return  # the images follow at once: an edit now would only cost a call
            stage = "processing" if prediction.status == "processing" else "starting"
            show(JobState(job_id, stage, progress=prediction.progress,
                          elapsed=self.clock() - started), force=prediction.terminal)

        async def on_created(prediction: Prediction) -> None:
            self._predictions[job_id] = prediction.id
            await self.storage.history.mark_running(job_id, prediction.id)

        try:
            await self.queue.acquire(job_id, on_position)
        except asyncio.CancelledError:
            await self._interrupted(job_id, reporter)
            return
        try:
            if resume_id is not None:
                posted = await reporter.already_delivered()
                if posted is not None:  # posted before a crash, not yet settled
                    await self.storage.quota.commit(job_id, posted)
                    return
            else:
                show(JobState(job_id, "starting", elapsed=0.0), force=True)
            if options.image and options.image.startswith("http") and resume_id is None:
                await self._check_image(options.image)
            result = await generate(self.client, options, cost_per_second=self.cost_per_second,
                                    on_created=on_created, on_update=on_update,
                                    resume_id=resume_id, early=True)
        except asyncio.CancelledError:
            await self._interrupted(job_id, reporter)
            return
        except UserError as error:
            await self._refund(job_id, reporter, error)
            return
        except Exception:
            log.exception("job %d failed unexpectedly", job_id, extra={"job": job_id})
            await self._refund(job_id, reporter, UserError("error.unexpected"))
            return
        finally:
            self.queue.release()
            for update in list(pending):
                update.cancel()
        self._delivering.add(job_id)
        try:
            await self._deliver(job_id, reporter, result)
        finally:
            self._delivering.discard(job_id)

    async def _deliver(self, job_id: int, reporter: Reporter, result: GenerationResult) -> None:
        job = await self.storage.history.get(job_id)
        assert job is not None
        try:
            posted = await reporter.deliver(job, result)
        except UserError as error:
            await self._refund(job_id, reporter, error, predict_time=result.predict_time,
                               cost=result.cost)
            return
        except Exception:
            log.exception("job %d could not be delivered", job_id, extra={"job": job_id})
            await self._refund(job_id, reporter, UserError("error.unexpected"))
            return
        if not result.prediction.terminal:  # posted on its outputs: now its end, and cost
            try:
                result = await finish_generation(self.client, result, self.cost_per_second)
                await reporter.annotate(job, result)
            except ReplicateError as error:  # the images are out; only the figures are lost
                log.warning("job %d: no final status (%s)", job_id, error.describe(),
                            extra={"job": job_id})
        settled = await self.storage.quota.commit(job_id, posted, seed=result.seed,
                                                  predict_time=result.predict_time,
                                                  cost=result.cost)
        if settled and self.metrics is not None:
            self.metrics.job_ended("succeeded", posted, job.images_requested - posted)
        log.info("job %d delivered %d of %d images", job_id, posted, job.images_requested,
                 extra={"job": job_id})

    async def _interrupted(self, job_id: int, reporter: Reporter) -> None:
        if job_id not in self._canceled:
            log.info("job %d left for the next start", job_id, extra={"job": job_id})
            raise asyncio.CancelledError  # a shutdown: keep the job as it is
        self._canceled.discard(job_id)
        prediction_id = self._predictions.get(job_id)
        if prediction_id is not None:
            await self.client.cancel_quietly(prediction_id)
        await self._refund(job_id, reporter, UserError("replicate.canceled"),
                           status="canceled")

    async def _refund(self, job_id: int, reporter: Reporter, error: UserError, *,
                      status: str | None = None, predict_time: float | None = None,
                      cost: float | None = None) -> None:
        if status is None:
            status = "timed_out" if isinstance(error, PredictionTimeout) else \
                "canceled" if isinstance(error, PredictionCanceled) else "failed"
        if isinstance(error, PredictionError) and predict_time is None:
            # a prediction that ran and failed is billed too: count it in the estimates
            predict_time = error.prediction.predict_time
            cost = estimate_cost(error.prediction, self.cost_per_second)
        if isinstance(error, ReplicateError):
            log.warning("job %d %s: %s", job_id, status, error.describe(), extra={"job": job_id})
        job = await self.storage.history.get(job_id)
        settled = await self.storage.quota.refund(job_id, status=status, error=str(error)[:500],
                                                  predict_time=predict_time, cost=cost)
        if job is not None and settled:
            if self.metrics is not None:
                self.metrics.job_ended(status, 0, job.images_requested)
            await reporter.fail(job, error, job.images_requested)

    async def resume_all(self, make: Callable[[InFlightJob], Awaitable[Reporter]],
                         options_of: Callable[[Generation], GenerationOptions]) -> int:
        """Pick up the jobs a previous run left. Those whose prediction exists are followed
        again; the others never started, so they are refunded and the member told."""
        resumed = 0
        for job in await self.storage.history.in_flight():
            g = job.generation
            if g.id in self.tasks:
                continue  # started by this run
            reporter = await make(job)
            if g.prediction_id is None:
                await self._refund(g.id, reporter, UserError("imagine.restart_refund"))
                continue
            self.start(g.id, options_of(g), reporter, resume_id=g.prediction_id)
            resumed += 1
        return resumed
