"""Two shard processes' worth of bots on one PostgreSQL database, through the loopback
Discord's sharded gateway: each answers and resumes its own servers only, and a cancel asked of
the other's job reaches it through the database. (Real processes and kill -9: test_shards.py.)"""

from __future__ import annotations

import asyncio

from bot.jobs.state import CancelOutcome
from tests.cogs.test_cancel import job_id_of, job_message
from tests.fakes.discord_server import (
    GUILD_ID,
    OTHER_GUILD_CHANNEL_ID,
    OTHER_GUILD_ID,
)
from tests.fakes.replicate_server import Scenario


def shard(number: int, database: str) -> dict:
    return {"discord": {"shard_count": 2, "shard_ids": [number]},
            "storage": {"database": database}, "replicate": {"wait_seconds": 60}}


async def both_shards(start_stack, discord, database):
    discord.servers.append(OTHER_GUILD_ID)
    first = await start_stack(**shard(0, database))
    second = await start_stack(**shard(1, database))
    first.replicate.scenario = Scenario(manual=True)
    return first, second


async def both_running(stack):
    """A job in each server, past its held create."""
    here = await stack.discord.slash("imagine", {"prompt": "shard zero"})
    there = await stack.discord.slash("imagine", {"prompt": "shard one"},
                                      channel_id=OTHER_GUILD_CHANNEL_ID)
    await stack.replicate.wait_for(lambda: len(stack.replicate.holding) == 2)
    stack.replicate.release_holds()
    await stack.replicate.wait_for(lambda: len({c.path for c in stack.replicate.calls(
        "GET", "/predictions/")}) == 2)
    return here, there


def prediction_of(stack, prompt: str) -> str:
    return next(p.id for p in stack.replicate.predictions.values() if p.input["prompt"] == prompt)


async def test_each_process_answers_and_resumes_its_own_servers(postgres_database, start_stack,
                                                                discord_fake):
    first, second = await both_shards(start_stack, discord_fake, postgres_database)
    assert discord_fake.identified_shards == [0, 1]  # IDENTIFY carried [shard, 2]
    assert [g.id for g in first.bot.guilds] == [GUILD_ID]
    assert [g.id for g in second.bot.guilds] == [OTHER_GUILD_ID]
    here, there = await both_running(first)
    here_id = job_id_of(await job_message(first, here))
    there_id = job_id_of(await job_message(first, there))
    assert set(first.bot.runner.jobs) == {here_id}
    assert set(second.bot.runner.jobs) == {there_id}

    await second.stop()  # shard 1's process restarts while shard 0's job runs on
    second = await start_stack(**shard(1, postgres_database))
    assert set(second.bot.runner.jobs) == {there_id}  # its own job resumed, not the other
    assert set(first.bot.runner.jobs) == {here_id}
    for prompt in ("shard zero", "shard one"):
        first.replicate.finish(prediction_of(first, prompt))
    done_here, done_there = await first.finished(here), await second.finished(there)
    assert len(done_here["attachments"]) == len(done_there["attachments"]) == 1
    assert done_there["guild_id"] == str(OTHER_GUILD_ID)
    posted = [mid for mid, _ in discord_fake.uploads]
    assert sorted(posted) == sorted({int(done_here["id"]), int(done_there["id"])})  # once each
    await first.bot.runner.idle()
    await second.bot.runner.idle()
    assert await first.bot.storage.history.in_flight() == []


async def test_a_cancel_reaches_the_process_that_runs_the_job(postgres_database, start_stack,
                                                              discord_fake):
    first, second = await both_shards(start_stack, discord_fake, postgres_database)
    second.bot.get_cog("Jobs").poll_interval = 0.05
    first.bot.get_cog("Jobs").poll_interval = 0.05
    _, there = await both_running(first)
    there_id = job_id_of(await job_message(first, there))
    jobs = first.bot.get_cog("Jobs")  # what /mod cancel calls, in the process without the job
    outcome = await jobs.cancel(there_id, OTHER_GUILD_ID, discord_fake.moderator.id)
    assert outcome is CancelOutcome.CANCELED
    message = await second.finished(there)
    assert message["embeds"][0]["title"] == "Canceled"
    assert first.replicate.predictions[prediction_of(first, "shard one")].status == "canceled"
    assert first.replicate.predictions[prediction_of(first, "shard zero")].status != "canceled"
    status = await first.bot.storage.quota.status(OTHER_GUILD_ID, discord_fake.member.id)
    assert status.periods[0].used == 0  # refunded
    assert await first.bot.storage.processes.open_cancels() == []


async def test_a_cancel_asked_while_the_owner_is_down_is_done_when_it_is_back(
        postgres_database, start_stack, discord_fake, monkeypatch):
    import cogs.jobs

    first, second = await both_shards(start_stack, discord_fake, postgres_database)
    _, there = await both_running(first)
    there_id = job_id_of(await job_message(first, there))
    await second.stop()  # shard 1's process is down, its job left in flight
    monkeypatch.setattr(cogs.jobs, "CANCEL_WAIT", 0.0)  # no owner to wait for
    outcome = await first.bot.get_cog("Jobs").cancel(there_id, OTHER_GUILD_ID,
                                                     discord_fake.moderator.id)
    assert outcome is CancelOutcome.REQUESTED  # "it will cancel it as soon as it answers"
    assert first.replicate.predictions[prediction_of(first, "shard one")].status != "canceled"
    second = await start_stack(**shard(1, postgres_database))  # back: resumes, then answers
    message = await second.finished(there)
    assert message["embeds"][0]["title"] == "Canceled"
    assert first.replicate.predictions[prediction_of(first, "shard one")].status == "canceled"
    assert await answered(first, there_id) == "canceled"  # written just after the message
    status = await first.bot.storage.quota.status(OTHER_GUILD_ID, discord_fake.member.id)
    assert status.periods[0].used == 0


async def answered(stack, job_id: int, timeout: float = 10.0) -> str | None:
    """The owner's answer to a cancel, once it has written it (just after the message)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (outcome := await stack.bot.storage.processes.cancel_outcome(job_id)) is None:
        if loop.time() > deadline:
            return None
        await asyncio.sleep(0.02)
    return outcome
