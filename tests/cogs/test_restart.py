"""Restarts: buttons on old messages, jobs resumed and posted exactly once, jobs that never
reached Replicate refunded with the member told."""

from __future__ import annotations

from tests.fakes.discord_server import CHANNEL_ID, GUILD_ID
from tests.fakes.replicate_server import Scenario


async def back_in_flight(stack):
    """As if the bot died after posting the job's images and before settling them."""
    storage = stack.bot.storage
    job = (await storage.history.page(GUILD_ID, stack.discord.member.id)).items[0]
    await storage.db.execute("DELETE FROM ledger WHERE kind IN ('commit', 'refund')")
    await storage.db.execute("DELETE FROM spend WHERE kind IN ('release', 'cost')")  # the
    # settling is one transaction: its money rows were never written either
    await storage.db.execute(
        "INSERT INTO jobs (generation_id, guild_id, user_id, state, updated_at)"
        " VALUES (?, ?, ?, 'running', 0)", (job.id, GUILD_ID, job.user_id))
    return job


async def test_a_button_pressed_after_a_restart_still_works(start_stack):
    stack = await start_stack()
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    message = await stack.finished(sent)
    job_id = int(message["embeds"][0]["footer"]["text"].split()[-1])
    await stack.stop()

    again = await start_stack()
    click = await again.discord.click(f"imagine:reroll:{job_id}", int(message["id"]))
    rerolled = await again.finished(click)
    assert len(again.images(rerolled)) == 1
    assert len(again.replicate.creates) == 2


async def test_a_job_in_flight_is_resumed_and_posted_once(start_stack):
    stack = await start_stack()
    stack.replicate.scenario = Scenario(outcome="stuck")  # runs until the test lets it end
    sent = await stack.discord.slash("imagine", {"prompt": "a castle", "num_outputs": 2})
    member = stack.discord.member.id
    # the first poll comes after the prediction id was stored
    await stack.replicate.wait_for(lambda: stack.replicate.calls("GET"))
    await stack.stop()  # SIGTERM-like: the job stays in flight
    (prediction,) = stack.replicate.predictions.values()
    assert prediction.status == "processing"

    prediction.scenario = Scenario(outcome="succeeded")  # it ends while the bot is down
    again = await start_stack()
    message = await again.finished(sent)
    assert len(again.images(message)) == 2
    assert len(again.replicate.creates) == 1  # followed, not created again
    status = await again.bot.storage.quota.status(GUILD_ID, member)
    assert status.periods[0].used == 2 and status.in_flight == 0
    posts = [c for c in again.discord.calls if c.files]
    assert len(posts) == 1
    await again.stop()

    third = await start_stack()  # nothing left to resume, nothing posted again
    assert await third.bot.storage.history.in_flight() == []
    assert len([c for c in third.discord.calls if c.files]) == 1


async def test_a_result_posted_before_a_crash_is_not_posted_again(start_stack):
    stack = await start_stack()
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    await stack.finished(sent)
    job = await back_in_flight(stack)
    await stack.stop()

    again = await start_stack()
    await again.bot.resumed.wait()
    await again.bot.runner.idle()
    status = await again.bot.storage.quota.status(GUILD_ID, job.user_id)
    assert status.in_flight == 0 and status.periods[0].used == 1
    assert len([c for c in again.discord.calls if c.files]) == 1


async def test_a_job_that_never_reached_replicate_is_refunded_and_told(start_stack):
    stack = await start_stack()
    member = stack.discord.member
    from bot.storage.quota import JobRequest

    await stack.bot.storage.quota.reserve(JobRequest(
        guild_id=GUILD_ID, channel_id=CHANNEL_ID, user_id=member.id, prompt="lost",
        options={"prompt": "lost"}, images=3))
    await stack.stop()

    again = await start_stack()
    told = await again.discord.wait_for(
        lambda: again.discord.requests("POST", f"/channels/{CHANNEL_ID}/messages"))
    assert told[0].json["content"].startswith(f"<@{member.id}>")
    assert "restarted before this job started" in told[0].json["content"]
    assert "3 credit(s) refunded" in told[0].json["content"]
    status = await again.bot.storage.quota.status(GUILD_ID, member.id)
    assert status.periods[0].used == 0 and status.in_flight == 0
    assert not again.replicate.creates


async def test_a_posted_result_is_charged_even_if_resuming_it_fails(start_stack):
    """Found by the soak: after a crash between posting and settling, the restart's look at
    the message hit a reset, and the poll then failed: the member was refunded although the
    images were there (a billed prediction counted as never posted)."""
    from tests.fakes.discord_server import Drop
    from tests.fakes.replicate_server import Fault

    stack = await start_stack()
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    await stack.finished(sent)
    job = await back_in_flight(stack)
    await stack.stop()

    stack.discord.drops.append(Drop("GET", f"/messages/{job.message_id}"))  # unsure at first
    stack.replicate.faults.append(Fault("GET", path="/predictions/", status=404, times=20))
    again = await start_stack()
    await again.bot.resumed.wait()
    await again.bot.runner.idle()
    status = await again.bot.storage.quota.status(GUILD_ID, job.user_id)
    assert status.in_flight == 0 and status.periods[0].used == 1  # charged: it was posted
    assert len([c for c in again.discord.calls if c.files]) == 1


async def test_a_final_edit_lost_to_a_reset_is_made_again(start_stack):
    """Found by the soak: a job that ended while its message's edit was cut kept showing
    'Starting…'."""
    from tests.fakes.discord_server import Drop

    stack = await start_stack()
    stack.replicate.scenario = Scenario(outcome="failed", duration=0.05)
    stack.discord.drops.append(Drop("PATCH", "/messages/", match=lambda c: "Failed" in str(
        c.json)))
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    message = await stack.finished(sent)
    assert message["embeds"][0]["title"] == "Failed"
    assert not stack.discord.requests("POST", f"/channels/{CHANNEL_ID}/messages")
