"""Cancel (the button and /mod cancel) at every step of a job, with the default `wait_seconds`:
the prediction is stopped at Replicate (the cancel is seen there, not only told to the member),
or, when it had already made its images, they are posted and charged. Predictions move only
when a test says so (`Scenario(manual=True)`), so nothing here depends on timing."""

from __future__ import annotations

from tests.fakes.discord_server import GUILD_ID
from tests.fakes.replicate_server import Fault, Scenario

DEFAULTS = {"replicate": {"wait_seconds": 60}}  # the shipped default: creates are held


async def manual_stack(start_stack, **extra):
    stack = await start_stack(**{**DEFAULTS, **extra})
    stack.replicate.scenario = Scenario(manual=True)
    return stack


def job_id_of(message) -> int:
    return int(message["embeds"][0]["footer"]["text"].split()[-1])


async def job_message(stack, sent):
    return await stack.discord.wait_for(lambda: stack.discord.message_for(sent))


async def used(stack, user=None) -> int:
    user = user or stack.discord.member
    return (await stack.bot.storage.quota.status(GUILD_ID, user.id)).periods[0].used


async def settled(stack) -> None:
    """Every job has ended and nothing is left in flight."""
    await stack.bot.runner.idle()
    assert await stack.bot.storage.history.in_flight() == []


def cancels(stack) -> list:
    return stack.replicate.calls("POST", "/cancel")


async def running(stack, prompt: str = "a castle"):
    """A job past its held create: its prediction's id known, the bot polling it."""
    sent = await stack.discord.slash("imagine", {"prompt": prompt})
    await stack.replicate.wait_for(lambda: stack.replicate.holding)
    stack.replicate.release_holds()
    await stack.replicate.wait_for(lambda: stack.replicate.calls("GET", "/predictions/"))
    return sent


async def press_cancel(stack, sent, **kwargs):
    message = await job_message(stack, sent)
    click = await stack.discord.click(f"imagine:cancel:{job_id_of(message)}",
                                      int(message["id"]), **kwargs)
    await stack.discord.wait_for(lambda: click.callbacks)
    return click


def followup_text(stack, click) -> str | None:
    calls = stack.discord.requests("POST", f"/webhooks/{click.data['application_id']}/"
                                           f"{click.token}")
    return calls[-1].json["content"] if calls else None


async def test_cancel_while_queued_refunds_and_tells(start_stack):
    stack = await manual_stack(start_stack, replicate={"wait_seconds": 60, "max_concurrent": 1})
    first = await stack.discord.slash("imagine", {"prompt": "takes the slot"})
    await stack.replicate.wait_for(lambda: stack.replicate.holding)
    queued = await stack.discord.slash("imagine", {"prompt": "waits", "num_outputs": 2})
    await stack.discord.wait_for(lambda: (m := stack.discord.message_for(queued)) and
                                 m["embeds"][0]["title"].startswith("Queued"))
    await press_cancel(stack, queued)
    message = await stack.finished(queued)
    assert message["embeds"][0]["title"] == "Canceled"
    assert "2 credit(s) refunded" in message["embeds"][0]["description"]
    assert len(stack.replicate.creates) == 1  # never created
    stack.replicate.finish()
    await stack.finished(first)
    await settled(stack)
    assert await used(stack) == 1


async def test_cancel_while_the_create_is_held_stops_it_at_replicate(start_stack):
    stack = await manual_stack(start_stack)
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    await stack.replicate.wait_for(lambda: stack.replicate.holding)
    await press_cancel(stack, sent)
    message = await stack.finished(sent)
    assert message["embeds"][0]["title"] == "Canceled"
    (prediction,) = stack.replicate.predictions.values()
    assert prediction.status == "canceled"  # found in the list and canceled, not left running
    assert stack.replicate.lists and len(cancels(stack)) == 1
    await settled(stack)
    assert await used(stack) == 0


async def test_a_cancel_that_arrives_too_late_posts_and_charges(start_stack):
    stack = await manual_stack(start_stack)
    stack.replicate.faults.append(Fault("GET", path="/predictions", status=404, times=10,
                                               suffix=True))
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    await stack.replicate.wait_for(lambda: stack.replicate.holding)
    click = await press_cancel(stack, sent)  # the list cannot tell: the bot waits for the create
    await stack.replicate.wait_for(lambda: stack.replicate.lists)
    stack.replicate.finish()  # it ends, billed, before the cancel could reach it
    message = await stack.finished(sent)
    assert message["embeds"][0]["title"] == "Done" and len(message["attachments"]) == 1
    assert "Too late" in await stack.discord.wait_for(lambda: followup_text(stack, click))
    await settled(stack)
    assert await used(stack) == 1


async def test_cancel_while_running_is_seen_at_replicate(start_stack):
    stack = await manual_stack(start_stack)
    sent = await running(stack)
    stack.replicate.advance()  # processing
    await press_cancel(stack, sent)
    message = await stack.finished(sent)
    assert message["embeds"][0]["title"] == "Canceled"
    assert next(iter(stack.replicate.predictions.values())).status == "canceled"
    assert len(cancels(stack)) == 1 and not stack.replicate.lists
    await settled(stack)
    assert await used(stack) == 0


async def test_a_cancel_that_fails_at_replicate_is_tried_until_it_lands(start_stack):
    stack = await manual_stack(start_stack)
    sent = await running(stack)
    stack.replicate.faults.append(Fault("POST", path="/cancel", status=500, times=12))
    stack.bot.replicate.sleep = _no_wait  # the bot's own backoff between cancels
    await press_cancel(stack, sent)
    message = await stack.finished(sent)
    assert message["embeds"][0]["title"] == "Canceled"
    assert next(iter(stack.replicate.predictions.values())).status == "canceled"
    assert len(cancels(stack)) == 13
    await settled(stack)
    assert await used(stack) == 0


async def _no_wait(_seconds: float) -> None:
    return None


async def test_cancel_while_images_upload_is_refused_and_the_job_ends_once(start_stack):
    stack = await manual_stack(start_stack)
    upload = stack.discord.gate("PATCH", "/messages/", lambda call: bool(call.files))
    sent = await stack.discord.slash("imagine", {"prompt": "a castle", "num_outputs": 2})
    await stack.replicate.wait_for(lambda: stack.replicate.holding)
    stack.replicate.finish()
    await stack.discord.wait_for(lambda: upload.waiting)
    click = await press_cancel(stack, sent)
    assert "being posted right now" in await stack.discord.wait_for(
        lambda: followup_text(stack, click))
    upload.open()
    message = await stack.finished(sent)
    assert message["embeds"][0]["title"] == "Done" and len(message["attachments"]) == 2
    assert not cancels(stack)
    await settled(stack)
    assert await used(stack) == 2


async def test_cancel_of_a_resumed_job_cancels_its_prediction(start_stack):
    stack = await manual_stack(start_stack)
    sent = await running(stack)
    await stack.stop()

    again = await start_stack(**DEFAULTS)
    await press_cancel(again, sent)
    message = await again.finished(sent)
    assert message["embeds"][0]["title"] == "Canceled"
    assert next(iter(again.replicate.predictions.values())).status == "canceled"
    assert len(cancels(again)) == 1
    await settled(again)
    assert await used(again) == 0


async def test_mod_cancel_before_the_job_starts_means_it_never_starts(start_stack):
    stack = await manual_stack(start_stack)
    answer = stack.discord.gate("POST", "/callback", lambda call: "embeds" in str(call.json))
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    await stack.discord.wait_for(lambda: answer.waiting)  # reserved; the answer is on its way
    job_id = (await stack.bot.storage.history.in_flight())[0].generation.id
    mod = await stack.discord.slash("mod", {"job": job_id}, subcommand="cancel",
                                    user=stack.discord.moderator)
    await stack.discord.wait_for(lambda: followup_text(stack, mod))
    assert "was canceled and its credits refunded" in followup_text(stack, mod)
    answer.open()
    message = await stack.finished(sent)
    assert message["embeds"][0]["title"] == "Canceled"
    await settled(stack)
    assert not stack.replicate.creates  # no free images: it never reached Replicate
    assert await used(stack) == 0


async def test_mod_cancel_of_a_running_job(start_stack):
    stack = await manual_stack(start_stack)
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    await stack.replicate.wait_for(lambda: stack.replicate.holding)
    job_id = job_id_of(await job_message(stack, sent))
    mod = await stack.discord.slash("mod", {"job": job_id}, subcommand="cancel",
                                    user=stack.discord.moderator)
    await stack.discord.wait_for(lambda: followup_text(stack, mod))
    assert "was canceled" in followup_text(stack, mod)
    assert next(iter(stack.replicate.predictions.values())).status == "canceled"
    message = await stack.finished(sent)
    assert message["embeds"][0]["title"] == "Canceled"
    await settled(stack)
    assert await used(stack) == 0
