"""A job's calls to Replicate, each of which a cancel can interrupt, and how a cancel ends a
prediction whose id may not be known yet (its create still held by `Prefer: wait`): found in
the account's list, or read from the create's own answer, whichever comes first."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import aiohttp

from bot.errors import OptionError, UserError
from bot.images import dimensions, fetchable, sniff
from bot.jobs.state import Canceled, CancelOutcome, Job, Left
from bot.replicate.client import ReplicateClient, outputs_ready
from bot.replicate.errors import (
    AnswerTooLarge,
    NotFoundError,
    PredictionCanceled,
    ReplicateError,
    may_have_created,
)
from bot.replicate.lookup import find_created
from bot.replicate.prediction import Prediction
from bot.replicate.transport import read_capped

log = logging.getLogger("bot.jobs")

T = TypeVar("T")
MAX_INPUT_IMAGE = 20 * 1024 * 1024


class ReplicateSteps:
    """The calls; `on_created` writes a prediction's id down the moment it is known."""

    def __init__(self, client: ReplicateClient, session: aiohttp.ClientSession, *,
                 on_created: Callable[[Job, Prediction], Awaitable[None]],
                 image_hosts: Iterable[str] = (), clock: Callable[[], float],
                 taken: Callable[[float], Awaitable[set[str]]] | None = None) -> None:
        self.client = client
        self.session = session
        self.clock = clock
        self.on_created = on_created
        self.image_hosts = tuple(image_hosts)
        self.taken = taken  # the prediction ids jobs created since then already own

    async def unless_canceled(self, job: Job, work: Awaitable[T], *, keep: bool = False) -> T:
        """`work`'s result, unless a cancel is asked first: then stop it (or, with `keep`,
        let it go on: a held create) and raise `_Canceled`."""
        task = asyncio.ensure_future(work)
        asked = asyncio.ensure_future(job.cancel_asked.wait())
        try:
            await asyncio.wait({task, asked}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            if not keep:
                task.cancel()
            raise
        finally:
            asked.cancel()
        if task.done():
            return task.result()
        if keep:
            raise Canceled(task)  # type: ignore[arg-type]
        task.cancel()
        await asyncio.wait({task})
        raise Canceled

    async def create(self, job: Job) -> Prediction:
        model = job.model
        create = asyncio.ensure_future(
            self.client.create_training(job.work.api_input(), version=model.ref,
                                        destination=model.destination)
            if model.destination else self.client.create(job.work.api_input(),
                                                          version=model.ref))
        create.add_done_callback(consume)
        try:
            return await self.unless_canceled(job, create, keep=True)
        except ReplicateError as error:
            if self.client.stopping and not may_have_created(error):
                raise Left from error  # a stop cut a create short: the next start looks
            if not may_have_created(error):
                raise
            log.warning("job %d: create answered %s; looking for its prediction", job.id,
                        error.describe(), extra={"job": job.id})
            try:
                found = await self.find(job)
            except ReplicateError as lookup_error:
                log.warning("job %d: cannot look (%s)", job.id, lookup_error.describe(),
                            extra={"job": job.id})
                found = None
            if found is None:
                raise
            return found

    async def find(self, job: Job) -> Prediction | None:
        assert job.create_sent_at is not None
        taken: set[str] = set()
        if not job.work.unique_input and self.taken is not None:  # alike jobs: one each
            taken = await self.taken(job.create_sent_at - 3600)
        return await find_created(self.client, job.work.api_input(), job.create_sent_at,
                                  version=job.model.ref, match_image=not job.work.unique_input,
                                  taken=taken, collection=job.model.collection)

    async def end_at_replicate(self, job: Job, create: asyncio.Future[Prediction] | None
                                ) -> Prediction:
        """A cancel was asked: stop the prediction (finding its id first if its create is
        still held). Returns it if it had already made its images (billed either way, so they
        are posted and charged); raises `PredictionCanceled` otherwise."""
        if job.prediction_id is None and create is not None:
            held = await self.held(job, create)
            if held is not None:
                await self.on_created(job, held)
        if job.prediction_id is None:  # never created
            raise UserError("replicate.canceled")
        ended = await self.cancel_until_ended(job, job.prediction_id)
        if ended is not None and (ended.status == "succeeded" or outputs_ready(ended)):
            log.info("job %d: canceled too late, delivering", job.id, extra={"job": job.id})
            job.outcome = CancelOutcome.DELIVERED
            return ended
        raise PredictionCanceled(ended) if ended is not None else UserError("replicate.canceled")

    async def held(self, job: Job, pending: asyncio.Future[Any]) -> Prediction | None:
        """The prediction of a create still held by `Prefer: wait` (or of a lookup under
        way): from the account's list at once, or from `pending`, whichever comes first."""
        lookup = asyncio.ensure_future(self.find(job))
        lookup.add_done_callback(consume)
        try:
            await asyncio.wait({pending, lookup}, return_when=asyncio.FIRST_COMPLETED)
            if found(lookup):
                return lookup.result()
            try:
                answer = await pending
            except ReplicateError as error:
                if not may_have_created(error):
                    return None
                answer = None
            if isinstance(answer, Prediction):
                return answer
            await asyncio.wait({lookup})
            return lookup.result() if found(lookup) else None
        finally:
            lookup.cancel()

    async def cancel_until_ended(self, job: Job, prediction_id: str) -> Prediction | None:
        """Cancel until Replicate confirms an end (or the images are there); a cancel that
        fails is tried again until the job's deadline, after which `Cancel-After` has ended
        the prediction on Replicate's side anyway."""
        delay = 0.5
        last: Prediction | None = None
        while True:
            try:
                last = await self.client.cancel(prediction_id, job.model.collection)
            except NotFoundError:
                return last  # it does not exist (any more): nothing runs
            except ReplicateError as error:
                log.warning("job %d: cancel of %s failed: %s", job.id, prediction_id,
                            error.describe(), extra={"job": job.id})
            if last is not None and (last.terminal or outputs_ready(last)):
                job.ended = last.terminal
                return last
            if self.clock() + delay > job.deadline:
                return last
            await self.client.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def check_image(self, url: str) -> tuple[int, int]:
        """The model fetches the image itself; make sure it is one first, reading at most
        `MAX_INPUT_IMAGE` bytes, and only from Discord's own hosts. Returns its size."""
        if not fetchable(url, self.image_hosts):
            raise OptionError("check.image_host")
        try:
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=30),
                                        allow_redirects=False) as resp:
                if resp.status != 200:
                    raise OptionError("check.image_unreadable")
                data = await read_capped(resp, MAX_INPUT_IMAGE)
        except AnswerTooLarge as exc:
            raise OptionError("check.image_too_large", size=f"> {MAX_INPUT_IMAGE // 2**20}",
                              limit=MAX_INPUT_IMAGE // 2**20) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise OptionError("check.image_unreadable") from exc
        size = dimensions(data) if sniff(data) is not None else None
        if size is None:
            raise OptionError("check.image_not_image")
        return size


def found(lookup: asyncio.Future[Prediction | None]) -> bool:
    return lookup.done() and not lookup.cancelled() and lookup.exception() is None \
        and lookup.result() is not None


def consume(future: asyncio.Future[Any]) -> None:
    """A create or lookup nobody awaits any more: its failure is not news."""
    if not future.cancelled():
        future.exception()
