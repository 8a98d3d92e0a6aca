"""Faults through the whole stack: Replicate storms and breakage, vanished outputs, Discord
rate limits, a gateway drop mid-job, no permission to post, an interaction already dead."""

from __future__ import annotations

import asyncio

from tests.fakes.discord_server import CHANNEL_ID, GUILD_ID
from tests.fakes.replicate_server import Fault, Scenario


async def used(stack) -> int:
    status = await stack.bot.storage.quota.status(GUILD_ID, stack.discord.member.id)
    return status.periods[0].used


async def test_a_429_storm_loses_no_job(start_stack):
    stack = await start_stack(replicate={"max_concurrent": 4})
    stack.replicate.scenario = Scenario(frames=2)  # followed by polling
    stack.replicate.faults += [
        Fault("POST", status=429, headers={"Retry-After": "0.05"}, times=8),
        Fault("GET", status=429, times=12, body={
            "title": "Request was throttled",
            "detail": "Request was throttled. Your rate limit resets in ~0.05s."}),
    ]
    jobs = [await stack.discord.slash("imagine", {"prompt": f"castle {n}"}) for n in range(10)]
    messages = await asyncio.gather(*(stack.finished(sent, timeout=30) for sent in jobs))
    assert [m["embeds"][0]["title"] for m in messages] == ["Done"] * 10
    assert all(len(m["attachments"]) == 1 for m in messages)
    assert len(stack.replicate.predictions) == 10  # every job once, none twice
    assert len(stack.replicate.creates) == 18  # 8 throttled tries were repeated
    assert not stack.replicate.faults
    assert await used(stack) == 10


async def test_a_broken_api_is_polled_through(stack):
    stack.replicate.scenario = Scenario(frames=3)
    stack.replicate.faults += [Fault("GET", kind="html", status=502, times=2),
                               Fault("GET", kind="malformed"), Fault("GET", kind="reset"),
                               Fault("GET", status=500, body="Internal Server Error")]
    message = await stack.finished(await stack.discord.slash("imagine", {"prompt": "x"}))
    assert message["embeds"][0]["title"] == "Done" and len(message["attachments"]) == 1
    assert len(stack.replicate.predictions) == 1 and await used(stack) == 1


async def test_a_replicate_timeout_on_create_is_told_and_refunded(start_stack):
    stack = await start_stack()
    stack.bot.replicate.request_timeout = 0.5
    stack.replicate.gate("POST", "/predictions")  # the create never answers
    stack.bot.replicate.wait_seconds = 0
    message = await stack.finished(await stack.discord.slash("imagine", {"prompt": "x"}))
    assert "could not be reached" in message["embeds"][0]["description"]
    assert await used(stack) == 0


async def test_the_replicate_deadline_cancels_and_refunds(start_stack):
    stack = await start_stack(replicate={"timeout_seconds": 5})
    stack.replicate.scenario = Scenario(outcome="stuck")
    stack.bot.replicate.timeout_seconds = 0.3  # the config's floor is 5 s; tests need less
    message = await stack.finished(await stack.discord.slash("imagine", {"prompt": "x"}))
    assert "took too long and was canceled" in message["embeds"][0]["description"]
    assert next(iter(stack.replicate.predictions.values())).status == "canceled"
    assert await used(stack) == 0
    job = (await stack.bot.storage.history.page(GUILD_ID, stack.discord.member.id)).items[0]
    assert job.status == "timed_out"


async def test_outputs_that_vanished_are_refunded(stack):
    stack.replicate.scenario = Scenario(duration=0.05, file_status=404)
    message = await stack.finished(await stack.discord.slash("imagine", {"prompt": "x",
                                                                         "num_outputs": 2}))
    assert "removed by the image service" in message["embeds"][0]["description"]
    assert "2 credit(s) refunded" in message["embeds"][0]["description"]
    stack.replicate.scenario = Scenario(duration=0.05, data_removed=True)
    message = await stack.finished(await stack.discord.slash("imagine", {"prompt": "y"}))
    assert "removed by the image service" in message["embeds"][0]["description"]
    assert await used(stack) == 0


async def test_discord_rate_limits_on_edits_are_waited_out(stack):
    stack.replicate.scenario = Scenario(frames=3)
    stack.discord.rate_limit_next["/messages/"] = 3
    message = await stack.finished(await stack.discord.slash("imagine", {"prompt": "x"}))
    assert len(message["attachments"]) == 1
    assert stack.discord.rate_limit_next["/messages/"] == 0  # all three were hit and retried
    assert await used(stack) == 1


async def test_a_gateway_drop_mid_job_resumes_and_the_job_finishes(stack):
    stack.replicate.scenario = Scenario(outcome="stuck")
    sent = await stack.discord.slash("imagine", {"prompt": "x"})
    await stack.replicate.wait_for(lambda: stack.replicate.calls("GET"))
    await stack.discord.disconnect(4000)
    await asyncio.wait_for(stack.discord.resumed.wait(), 15)
    (prediction,) = stack.replicate.predictions.values()
    prediction.scenario = Scenario(outcome="succeeded")
    stack.replicate.scenario = Scenario(duration=0.05)
    message = await stack.finished(sent)
    assert len(message["attachments"]) == 1
    again = await stack.finished(await stack.discord.slash("imagine", {"prompt": "after"}))
    assert len(again["attachments"]) == 1  # interactions arrive on the resumed session
    assert stack.discord.ready_count == 1  # resumed, not identified again


async def test_no_permission_to_post_tells_the_member_and_refunds(stack):
    stack.replicate.scenario = Scenario(frames=2)
    sent = await stack.discord.slash("imagine", {"prompt": "x", "num_outputs": 2})
    await stack.discord.wait_for(lambda: sent.callbacks)
    stack.discord.expired_tokens.add(sent.token)  # only the channel is left, and it is shut
    stack.discord.forbidden_channels.add(CHANNEL_ID)
    member = stack.discord.member.id
    dm = await stack.discord.wait_for(lambda: stack.discord.dm_channels.get(member) and [
        c for c in stack.discord.requests("POST", f"/channels/{stack.discord.dm_channels[member]}"
                                                  "/messages")])
    assert "can't post the images in this channel" in dm[0].json["content"]
    assert "2 credit(s) refunded" in dm[0].json["content"]
    await stack.bot.runner.idle()
    assert await used(stack) == 0


async def test_an_interaction_that_died_before_the_answer_charges_nothing(stack):
    stack.discord.deadline = 0.0  # every answer arrives too late
    await stack.discord.slash("imagine", {"prompt": "x"})
    told = await stack.discord.wait_for(
        lambda: stack.discord.requests("POST", f"/channels/{CHANNEL_ID}/messages"))
    assert told[0].json["content"].startswith(f"<@{stack.discord.member.id}>")
    assert "Nothing was charged" in told[0].json["content"]
    assert not stack.replicate.creates
    assert await used(stack) == 0
    job = (await stack.bot.storage.history.page(GUILD_ID, stack.discord.member.id)).items[0]
    assert job.status == "failed"
