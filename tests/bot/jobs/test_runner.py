"""The job runner without Discord, as any front end drives it: a reporter that keeps what it
is told, a real SQLite file, the local Replicate."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from bot.config import QuotaSettings
from bot.errors import UserError
from bot.generation import GenerationResult
from bot.jobs import CancelOutcome, JobRunner, JobState
from bot.model import GenerationOptions
from bot.replicate.client import ReplicateClient
from bot.storage import Storage
from bot.storage.history import Generation
from bot.storage.quota import JobRequest
from tests.fakes.replicate_server import TOKEN, FakeReplicate, Scenario


class Told:
    """A front end that writes down what the runner tells it (a terminal would print it)."""

    def __init__(self) -> None:
        self.states: list[JobState] = []
        self.failed: list[tuple[str, int]] = []
        self.posted = 0

    async def update(self, state: JobState) -> None:
        self.states.append(state)

    async def already_delivered(self) -> int | None:
        return None

    async def deliver(self, job: Generation, result: GenerationResult) -> int:
        self.posted += len(result.outputs.files)
        return len(result.outputs.files)

    async def annotate(self, job: Generation, result: GenerationResult) -> None:
        return None

    async def fail(self, job: Generation, error: UserError, refunded: int) -> None:
        self.failed.append((error.key, refunded))


@pytest.fixture
async def runner(tmp_path: Path, fake: FakeReplicate):
    fake.wait_scale = 1.0
    fake.scenario = Scenario(manual=True)
    storage = await Storage.open(tmp_path / "bot.db", QuotaSettings(daily=10,
                                                                   per_user_concurrent=0))
    async with aiohttp.ClientSession() as session:
        client = ReplicateClient(session, api_token=TOKEN, api_base=fake.api_base,
                                 max_concurrent=1)
        runner = JobRunner(storage, client, session, edit_interval=0.0)
        yield runner
        await runner.shutdown(grace=0)
    await storage.close()


async def job(runner: JobRunner, prompt: str, told: Told) -> int:
    reservation = await runner.storage.quota.reserve(JobRequest(
        guild_id=1, channel_id=2, user_id=3, prompt=prompt, options={"prompt": prompt},
        images=1))
    runner.start(reservation.job_id, GenerationOptions(prompt=prompt), told)
    return reservation.job_id


async def test_a_job_canceled_while_queued_is_refunded_and_told(runner, fake):
    first, second = Told(), Told()
    await job(runner, "takes the slot", first)
    await fake.wait_for(lambda: fake.holding)
    queued = await job(runner, "waits", second)
    await fake.wait_for(lambda: second.states)
    assert second.states[-1].stage == "queued"
    assert await runner.cancel(queued) is CancelOutcome.CANCELED
    assert second.failed == [("replicate.canceled", 1)]
    assert (await runner.storage.quota.status(1, 3)).periods[0].used == 1  # the first only
    assert len(fake.creates) == 1


async def test_a_job_settled_elsewhere_while_queued_never_reaches_replicate(runner, fake):
    first, second = Told(), Told()
    await job(runner, "takes the slot", first)
    await fake.wait_for(lambda: fake.holding)
    queued = await job(runner, "waits", second)
    await fake.wait_for(lambda: second.states)
    # another process (or a moderator's cancel racing its start) refunds it in the database
    assert await runner.storage.quota.refund(queued, status="canceled", unless_claimed=True)
    fake.finish()
    await runner.idle()
    assert first.posted == 1
    assert second.failed == [("replicate.canceled", 1)] and second.posted == 0
    assert len(fake.creates) == 1  # its claim found it settled: nothing created


async def test_a_refund_unless_claimed_leaves_a_job_whose_create_left(runner, fake):
    told = Told()
    job_id = await job(runner, "on its way", told)
    await fake.wait_for(lambda: fake.holding)
    assert not await runner.storage.quota.refund(job_id, status="canceled",
                                                 unless_claimed=True)
    assert await runner.cancel(job_id) is CancelOutcome.CANCELED
    assert next(iter(fake.predictions.values())).status == "canceled"
