"""Running jobs: queue, create, follow, deliver, settle. No Discord here: a `Reporter` shows the
job wherever it lives (a Discord message, a terminal), so the flow is the same for every front end.

    reserve (quota) -> start -> queued -> creating -> running -> delivering -> commit / refund

What holds whatever happens, at every step (tests/test_fault_matrix.py walks them):
- a job ends settled: the images it posted are charged, everything else is refunded;
- a prediction that Replicate bills ends posted once or canceled: before the create is sent, the
  job's input (with a seed the bot chose) and the instant are written down, so a prediction
  whose id never came back (a crash, a reset, a cancel while `Prefer: wait` holds the create)
  is found again in the account's list;
- a cancel (member or moderator) stops the prediction at Replicate; one that had finished
  before the cancel arrived is posted and charged. Once the images are in, cancels are refused:
  the job is delivering;
- a stop lets held creates and deliveries finish within a grace period, creates nothing new, and
  leaves every other job as it is for the next start, which follows it again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping

import aiohttp

from bot.errors import UserError
from bot.generation import GenerationResult, collect, estimate_cost, finish_generation
from bot.jobs.queue import JobQueue, Updates
from bot.jobs.state import (
    CREATING,
    DELIVERING,
    QUEUED,
    RUNNING,
    Canceled,
    CancelOutcome,
    Job,
    JobState,
    Left,
    Reporter,
    Resume,
    Settled,
)
from bot.jobs.steps import ReplicateSteps
from bot.logs import current_job
from bot.metrics import Metrics
from bot.replicate.client import ReplicateClient, ensure_succeeded, outputs_ready
from bot.replicate.errors import (
    PredictionCanceled,
    PredictionError,
    PredictionTimeout,
    ReplicateError,
)
from bot.replicate.prediction import Prediction
from bot.storage import Storage
from bot.storage.history import Generation, InFlightJob
from bot.work import IMAGINE, Model, Work

log = logging.getLogger("bot.jobs")

EDIT_INTERVAL = 2.0
STARTING_EDIT_AFTER = 1.5  # a job whose images come sooner never shows "Starting…"
STOP_GRACE = 25.0  # seconds a stop waits for held creates and deliveries (compose: 30 s)


class JobRunner:
    """Starts, follows, cancels and resumes jobs of every kind (`bot.work`); every outcome
    settles the credits. `models` gives each kind its model version and price (the image
    model defaults to the client's, at `cost_per_second`)."""

    def __init__(self, storage: Storage, client: ReplicateClient,
                 session: aiohttp.ClientSession, *, cost_per_second: float = 0.0,
                 models: Mapping[str, Model] | None = None,
                 edit_interval: float = EDIT_INTERVAL, metrics: Metrics | None = None,
                 image_hosts: Iterable[str] = (), grace: float = STOP_GRACE,
                 pace: Callable[[], Awaitable[float]] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 rand: random.Random | None = None) -> None:
        self.storage = storage
        self.client = client
        self.session = session
        self.models = {IMAGINE: Model(client.version_ref, cost_per_second), **(models or {})}
        self.edit_interval = edit_interval
        self.grace = grace
        self.pace = pace  # seconds to wait before the next create (the account's pacing)
        self.clock = clock
        self.rand = rand or random.SystemRandom()
        self.queue = JobQueue(client.max_concurrent)
        self.metrics = metrics
        if metrics is not None:
            metrics.watch_queue(lambda: self.queue.waiting, lambda: self.queue.running)
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.jobs: dict[int, Job] = {}
        self.closing = False
        self._phase_changed = asyncio.Event()
        self.steps = ReplicateSteps(client, session, on_created=self._created,
                                    image_hosts=image_hosts, clock=clock,
                                    taken=storage.history.known_predictions)

    # -- control ----------------------------------------------------------------------------

    def job(self, job_id: int, work: Work, reporter: Reporter,
            resume: Resume | None = None) -> Job:
        """A job of any kind, on its kind's model."""
        return Job(job_id, work, self.models[work.kind], reporter, resume)

    def start(self, job_id: int, work: Work, reporter: Reporter, *,
              resume: Resume | None = None) -> asyncio.Task[None]:
        job = self.job(job_id, work, reporter, resume)
        task = asyncio.create_task(self._run(job), name=f"job-{job_id}")
        self.jobs[job_id] = job
        self.tasks[job_id] = task
        task.add_done_callback(lambda _: self._forget(job_id))
        return task

    def _forget(self, job_id: int) -> None:
        """A job's task ended: drop what was kept for it (the bot runs for months)."""
        self.tasks.pop(job_id, None)
        self.jobs.pop(job_id, None)
        self._phase(None)

    def _phase(self, job: Job | None, phase: str | None = None) -> None:
        if job is not None and phase is not None:
            job.phase = phase
        self._phase_changed.set()
        self._phase_changed = asyncio.Event()

    def phase(self, job_id: int) -> str | None:
        job = self.jobs.get(job_id)
        return job.phase if job is not None else None

    async def cancel(self, job_id: int) -> CancelOutcome:
        """Ask a job to stop and wait for its end: canceled at Replicate and refunded, or
        posted and charged when it had finished before the cancel arrived."""
        job, task = self.jobs.get(job_id), self.tasks.get(job_id)
        if job is None or task is None or task.done():
            return CancelOutcome.NOT_RUNNING
        if job.phase == DELIVERING:
            return CancelOutcome.FINISHING
        job.cancel_asked.set()
        await asyncio.wait({task})
        return job.outcome

    async def cancel_stored(self, entry: InFlightJob, reporter: Reporter,
                            work: Work) -> CancelOutcome:
        """Cancel a job in flight that has no task here: one canceled between its
        reservation and its start (refunded, and it will not start), or one whose prediction
        exists (followed again, so that the cancel ends it the usual way)."""
        g = entry.generation
        if g.id in self.jobs:
            return await self.cancel(g.id)
        if g.prediction_id is None and entry.create_sent_at is None:
            # settled only if its create has not left; should its task start after all, its
            # claim finds it settled and creates nothing
            if await self._refund(self.job(g.id, work, reporter),
                                  UserError("replicate.canceled"), unless_claimed=True):
                return CancelOutcome.CANCELED
            if g.id in self.jobs:  # it started meanwhile: cancel it the usual way
                return await self.cancel(g.id)
            return CancelOutcome.NOT_RUNNING
        self.start(g.id, work, reporter, resume=Resume(g.prediction_id, entry.create_sent_at))
        return await self.cancel(g.id)

    async def shutdown(self, grace: float | None = None) -> None:
        """Stop taking jobs and create nothing more. Held creates get `grace` seconds to
        answer (their ids are kept) and deliveries to finish; then every job still running is
        left as it is, its prediction running on Replicate, for the next start to follow."""
        self.closing = True
        self.client.stop_creating()
        self.queue.close()
        deadline = self.clock() + (self.grace if grace is None else grace)
        while any(j.phase in (CREATING, DELIVERING) for j in self.jobs.values()):
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(self._phase_changed.wait(), remaining)
            except TimeoutError:
                break
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

    async def _run(self, job: Job) -> None:
        current_job.set(job.id)  # this task only: its log lines name the job
        shown = Updates(job.reporter, self.edit_interval, self.clock)
        try:
            try:
                result = await self._produce(job, shown)
            finally:
                if job.slot:
                    job.slot = False
                    self.queue.release()
                await shown.close()  # no progress edit may land over what follows
        except (asyncio.CancelledError, Left):
            log.info("job %d left for the next start", job.id, extra={"job": job.id})
            job.outcome = CancelOutcome.NOT_RUNNING
            return
        except Settled:
            return
        except UserError as error:
            await self._fail(job, error)
            return
        except Exception:
            log.exception("job %d failed unexpectedly", job.id, extra={"job": job.id})
            await self._fail(job, UserError("error.unexpected"))
            return
        await self._deliver(job, result)

    async def _produce(self, job: Job, shown: Updates) -> GenerationResult:
        """From the queue to a prediction whose images are all there, downloaded."""
        def on_position(place: int) -> None:
            shown.show(JobState(job.id, "queued", position=place))

        started = self.clock()
        try:
            await self.steps.unless_canceled(job, self.queue.acquire(job.id, on_position))
            job.slot = True
            if self.closing:
                raise Left
            started = self.clock()
            prediction = await self._prediction(job, shown, started)
            if not _ready(prediction):
                prediction = await self.steps.unless_canceled(
                    job, self._follow(job, prediction, shown, started))
        except Canceled as canceled:
            prediction = await self.steps.end_at_replicate(job, canceled.pending)
        prediction = prediction if outputs_ready(prediction) else ensure_succeeded(prediction)
        self._phase(job, DELIVERING)  # the images are in: cancels are refused from here
        if job.slot:
            job.slot = False
            self.queue.release()
        return await collect(self.client, job.work, prediction, started=started,
                             cost_per_second=job.model.cost_per_second,
                             max_bytes=job.model.max_output_bytes, clock=self.clock)

    async def _prediction(self, job: Job, shown: Updates, started: float) -> Prediction:
        """The job's prediction: followed again, found again, or created now."""
        job.deadline = started + (job.model.timeout_seconds or self.client.timeout_seconds)
        resume = job.resume
        if resume is not None and resume.prediction_id is not None:
            job.prediction_id = resume.prediction_id
            self._phase(job, RUNNING)
            posted = await job.reporter.already_delivered()
            if posted is not None:  # posted before a crash, not yet settled
                await self._commit(job, posted)
                raise Settled
            return await self.steps.unless_canceled(
                job, self.client.get(resume.prediction_id, deadline=job.deadline,
                                     collection=job.model.collection))
        if resume is not None and resume.create_sent_at is not None:
            # created (or not) while nobody was looking: the account's list tells
            job.create_sent_at = resume.create_sent_at
            try:
                found = await self.steps.unless_canceled(job, self.steps.find(job), keep=True)
            except ReplicateError as error:
                log.warning("job %d: cannot look for its prediction (%s); refunding", job.id,
                            error.describe(), extra={"job": job.id})
                raise UserError("imagine.restart_unknown") from error
            if found is None:
                raise UserError("imagine.restart_refund")
            log.info("job %d: found its prediction %s after a restart", job.id, found.id,
                     extra={"job": job.id})
            await self._created(job, found)
            return found
        shown.show(JobState(job.id, "starting"), after=STARTING_EDIT_AFTER)
        if job.work.input_image:  # the model fetches it: it must be an image it can take
            size = await self.steps.unless_canceled(
                job, self.steps.check_image(job.work.input_image))
            job.work.check_size(*size)
        work = job.work.unique(self.rand)  # an input that tells this job from any other
        sent_at = await self.storage.history.claim(job.id, work.to_dict())
        if sent_at is None:  # settled meanwhile (a moderator's cancel): say so, create nothing
            await self._tell_canceled(job)
            raise Settled
        job.work, job.create_sent_at = work, sent_at
        if self.pace is not None:  # the account's rate; drawn last, so the create keeps to it
            wait = await self.steps.unless_canceled(job, self.pace())
            if wait > 0:
                await self.steps.unless_canceled(job, asyncio.sleep(wait))
        if job.cancel_asked.is_set():
            raise Canceled
        self._phase(job, CREATING)
        prediction = await self.steps.create(job)
        await self._created(job, prediction)
        return prediction

    async def _created(self, job: Job, prediction: Prediction) -> None:
        """Its id is known: write it down first, so that a crash can resume it."""
        job.prediction_id = prediction.id
        job.ended = prediction.terminal
        job.record = await self.storage.history.mark_running(job.id, prediction.id)
        if job.phase in (QUEUED, CREATING):
            self._phase(job, RUNNING)

    async def _follow(self, job: Job, prediction: Prediction, shown: Updates,
                      started: float) -> Prediction:
        def on_update(current: Prediction) -> None:
            job.ended = current.terminal
            if current.output:
                return  # the images follow at once: an edit now would only cost a call
            stage = "processing" if current.status == "processing" else "starting"
            shown.show(JobState(job.id, stage, progress=current.progress,
                                elapsed=self.clock() - started))

        on_update(prediction)
        return await self.client.follow(prediction, deadline=job.deadline, on_update=on_update,
                                        until_outputs=True, collection=job.model.collection)

    # -- endings ----------------------------------------------------------------------------

    async def _deliver(self, job: Job, result: GenerationResult) -> None:
        record = job.record or await self.storage.history.get(job.id)
        assert record is not None
        try:
            posted = await job.reporter.deliver(record, result)
        except UserError as error:
            await self._refund(job, error, predict_time=result.predict_time, cost=result.cost)
            return
        except Exception:
            log.exception("job %d could not be delivered", job.id, extra={"job": job.id})
            await self._refund(job, UserError("imagine.cannot_post"))
            return
        if not result.prediction.terminal:  # posted on its outputs: now its end, and cost
            try:
                result = await finish_generation(self.client, result,
                                                 job.model.cost_per_second)
                await job.reporter.annotate(record, result)
            except Exception as error:  # the images are out; only the figures are lost
                log.warning("job %d: no final figures (%s)", job.id,
                            error.describe() if isinstance(error, ReplicateError) else
                            type(error).__name__, extra={"job": job.id})
        await self._commit(job, posted, result)

    async def _commit(self, job: Job, posted: int, result: GenerationResult | None = None
                      ) -> None:
        charge = job.work.charge(posted)
        settled = await self.storage.quota.commit(
            job.id, posted, seed=result.seed if result else None,
            predict_time=result.predict_time if result else None,
            cost=result.cost if result else None, charge=charge)
        if job.cancel_asked.is_set():
            job.outcome = CancelOutcome.DELIVERED
        if settled and self.metrics is not None:
            self.metrics.job_ended(job.work.kind, "succeeded", posted, charge,
                                   max(0, job.work.charge(job.work.outputs) - charge))
        log.info("job %d (%s) delivered %d of %d images", job.id, job.work.kind, posted,
                 job.work.outputs, extra={"job": job.id})

    async def _fail(self, job: Job, error: UserError) -> None:
        """The job ends without images: its prediction must not run on unseen, and every
        credit goes back; unless an earlier run had posted them before it stopped."""
        if job.resume is not None and (posted := await job.reporter.already_delivered()):
            await self._commit(job, posted)
            return
        if job.prediction_id is not None and not job.ended and \
                not isinstance(error, PredictionError):
            await self.client.cancel_quietly(job.prediction_id, job.model.collection)
        await self._refund(job, error)

    async def _refund(self, job: Job, error: UserError, *, predict_time: float | None = None,
                      cost: float | None = None, unless_claimed: bool = False) -> bool:
        status = "timed_out" if isinstance(error, PredictionTimeout) else \
            "canceled" if isinstance(error, PredictionCanceled) or \
            error.key == "replicate.canceled" else "failed"
        if isinstance(error, PredictionError) and predict_time is None:
            # a prediction that ran and failed is billed too: count it in the estimates
            predict_time = error.prediction.predict_time
            cost = estimate_cost(error.prediction, job.model.cost_per_second)
        if isinstance(error, ReplicateError):
            log.warning("job %d %s: %s", job.id, status, error.describe(), extra={"job": job.id})
        record = await self.storage.history.get(job.id)
        settled = await self.storage.quota.refund(job.id, status=status, error=str(error)[:500],
                                                  predict_time=predict_time, cost=cost,
                                                  unless_claimed=unless_claimed)
        if record is not None and settled:
            if self.metrics is not None:
                self.metrics.job_ended(job.work.kind, status, 0, 0, record.credits_reserved)
            await job.reporter.fail(record, error, record.credits_reserved)
        return settled

    async def _tell_canceled(self, job: Job) -> None:
        """The job was refunded by a cancel before it started; its message may have been
        posted only afterwards: make it say so."""
        record = await self.storage.history.get(job.id)
        if record is not None:
            await job.reporter.fail(record, UserError("replicate.canceled"),
                                    record.credits_reserved)

    # -- after a restart --------------------------------------------------------------------

    async def resume_all(self, make: Callable[[InFlightJob], Awaitable[Reporter]],
                         work_of: Callable[[Generation], Work],
                         which: Callable[[InFlightJob], bool] = lambda _: True) -> int:
        """Pick up the jobs a previous run left. Those whose prediction exists, or whose create
        had left, are followed again; the others never reached Replicate, so they are refunded
        and the member told."""
        resumed = 0
        for entry in await self.storage.history.in_flight():
            g = entry.generation
            if g.id in self.tasks or not which(entry):
                continue
            reporter = await make(entry)
            if g.prediction_id is None and entry.create_sent_at is None:
                await self._refund(self.job(g.id, work_of(g), reporter),
                                   UserError("imagine.restart_refund"))
                continue
            self.start(g.id, work_of(g), reporter, resume=Resume(
                prediction_id=g.prediction_id, create_sent_at=entry.create_sent_at))
            resumed += 1
        return resumed


def _ready(prediction: Prediction) -> bool:
    return prediction.terminal or outputs_ready(prediction)
