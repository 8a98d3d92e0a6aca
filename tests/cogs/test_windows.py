"""The windows between a job's steps, with the default `wait_seconds`: a stop while a create is
held or retried, Discord calls that fail with something other than an HTTP answer, a proxy that
drops the message id, a poll answered 404, a token refused at posting, answers too large to read.
Each ends with the images posted once and charged, or everything refunded and nothing running."""

from __future__ import annotations

import asyncio
import io

from PIL import Image

from tests.cogs.test_cancel import DEFAULTS, manual_stack, settled, used
from tests.fakes.discord_server import CHANNEL_ID, Drop
from tests.fakes.replicate_server import Fault, Scenario, make_image


async def test_a_stop_lets_a_held_create_answer_and_the_next_start_posts_it(start_stack):
    stack = await manual_stack(start_stack)
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    await stack.replicate.wait_for(lambda: stack.replicate.holding)
    stopping = asyncio.ensure_future(stack.stop())
    await stack.discord.wait_for(lambda: stack.bot.runner.closing)
    assert not stopping.done()  # it waits for the held create
    stack.replicate.release_holds()  # the hold ends within the grace: its id is kept
    await stopping
    (prediction,) = stack.replicate.predictions.values()
    stack.replicate.finish(prediction.id)  # billed while the bot is down

    again = await start_stack(**DEFAULTS)
    message = await again.finished(sent)
    assert len(message["attachments"]) == 1
    assert len(again.replicate.creates) == 1 and not again.replicate.lists
    await settled(again)
    assert await used(again) == 1


async def test_a_stop_whose_grace_runs_out_is_found_again_at_the_next_start(start_stack):
    stack = await manual_stack(start_stack)
    stack.bot.runner.grace = 0.0  # the create is still held when the grace is over
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    await stack.replicate.wait_for(lambda: stack.replicate.holding)
    await stack.stop()
    (prediction,) = stack.replicate.predictions.values()
    stack.replicate.finish(prediction.id)

    again = await start_stack(**DEFAULTS)
    message = await again.finished(sent)
    assert len(message["attachments"]) == 1
    assert again.replicate.lists and len(again.replicate.creates) == 1
    await settled(again)
    assert await used(again) == 1


async def test_a_stopping_bot_creates_nothing_new(start_stack):
    stack = await manual_stack(start_stack)
    stack.replicate.faults.append(Fault("POST", path="/predictions", status=429,
                                        headers={"Retry-After": "30"}, suffix=True))
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    await stack.replicate.wait_for(lambda: stack.replicate.creates)  # throttled; retry in 30 s
    await stack.stop()
    assert len(stack.replicate.creates) == 1 and not stack.replicate.predictions

    again = await start_stack(**DEFAULTS)
    message = await again.finished(sent)
    assert message["embeds"][0]["title"] == "Failed"  # looked for, not there: refunded
    assert "1 credit(s) refunded" in message["embeds"][0]["description"]
    await settled(again)
    assert not again.replicate.predictions and await used(again) == 0


async def test_a_reset_before_the_first_answer_charges_nothing(start_stack):
    stack = await manual_stack(start_stack)
    stack.discord.drops.append(Drop("POST", "/callback"))
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    await stack.discord.wait_for(lambda: sent.callbacks)  # the error, once Discord is back
    assert "Nothing was charged" in sent.callbacks[0].json["data"]["content"]
    await settled(stack)
    assert not stack.replicate.creates and await used(stack) == 0


async def test_a_first_answer_that_landed_but_never_came_back_still_runs(start_stack):
    stack = await manual_stack(start_stack)
    stack.replicate.scenario = Scenario(duration=0.05)
    stack.discord.drops.append(Drop("POST", "/callback", after=True))
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    message = await stack.finished(sent)
    assert message["embeds"][0]["title"] == "Done" and len(message["attachments"]) == 1
    await settled(stack)
    assert await used(stack) == 1


async def test_a_reset_on_the_upload_that_landed_is_not_posted_twice(start_stack):
    stack = await manual_stack(start_stack)
    stack.replicate.scenario = Scenario(duration=0.05)
    stack.discord.drops.append(Drop("PATCH", "/messages/", after=True,
                                    match=lambda call: bool(call.files)))
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    message = await stack.finished(sent)
    await settled(stack)
    assert len(message["attachments"]) == 1
    assert len([c for c in stack.discord.calls if c.files]) == 1
    assert await used(stack) == 1


async def test_a_reset_on_the_upload_that_did_not_land_posts_in_the_channel(start_stack):
    stack = await manual_stack(start_stack)
    stack.replicate.scenario = Scenario(duration=0.05)
    stack.discord.drops.append(Drop("PATCH", "/messages/", match=lambda c: bool(c.files)))
    stack.discord.drops.append(Drop("POST", f"/channels/{CHANNEL_ID}/messages"))
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    await stack.finished(sent)
    await settled(stack)
    posts = stack.discord.requests("POST", f"/channels/{CHANNEL_ID}/messages")
    assert len(posts) == 2 and posts[0].json["nonce"] == posts[1].json["nonce"]
    (posted,) = [m for m in stack.discord.channel_messages() if m["attachments"]]
    assert posted["content"].startswith(f"<@{stack.discord.member.id}>")
    assert stack.discord.message_for(sent)["embeds"][0]["title"] == "Done"
    assert await used(stack) == 1


async def test_a_reset_on_the_figures_after_posting_still_charges(start_stack):
    stack = await manual_stack(start_stack)
    stack.replicate.scenario = Scenario(duration=0.3, output_while_processing=True,
                                        finish_lag=0.05)
    stack.discord.drops.append(Drop("PATCH", "/messages/", match=lambda c: not c.files and
                                    "Estimated cost" in str(c.json)))
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    await stack.finished(sent)
    await settled(stack)
    assert not stack.discord.drops  # the figures' edit was cut
    assert await used(stack) == 1


async def test_no_message_id_in_the_first_answer_still_posts_the_images(start_stack):
    stack = await manual_stack(start_stack)
    stack.replicate.scenario = Scenario(duration=0.05)
    stack.discord.omit_message_id = True
    sent = await stack.discord.slash("imagine", {"prompt": "a castle", "num_outputs": 2})
    message = await stack.finished(sent)
    assert len(message["attachments"]) == 2
    await settled(stack)
    assert await used(stack) == 2


async def test_a_poll_answered_404_cancels_the_prediction_and_refunds(start_stack):
    stack = await manual_stack(start_stack)
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    await stack.replicate.wait_for(lambda: stack.replicate.holding)
    stack.replicate.faults.append(Fault("GET", path="/predictions/", status=404,
                                        body={"detail": "Not found."}))
    stack.replicate.release_holds()
    message = await stack.finished(sent)
    assert message["embeds"][0]["title"] == "Failed"
    assert next(iter(stack.replicate.predictions.values())).status == "canceled"
    await settled(stack)
    assert await used(stack) == 0


async def test_a_refused_token_at_posting_posts_real_images_through_the_channel(start_stack):
    stack = await manual_stack(start_stack)
    sent = await stack.discord.slash("imagine", {"prompt": "a castle", "num_outputs": 2,
                                                 "output_format": "png"})
    await stack.replicate.wait_for(lambda: stack.replicate.holding)
    stack.discord.expired_tokens.add(sent.token)  # Discord drops it early
    stack.replicate.finish()
    await stack.finished(sent)
    await settled(stack)
    # the images are on the job's message, or on a new channel message if a progress edit
    # found the token dead first (the job's message then says they are below)
    (message,) = [m for m in stack.discord.channel_messages() if m["attachments"]]
    assert len(message["attachments"]) == 2
    for image in stack.images(message):
        assert image.format == "PNG" and image.width > 0  # not 0-byte files
    assert await used(stack) == 2


async def test_an_input_image_larger_than_it_claims_is_refused_unread(start_stack):
    stack = await manual_stack(start_stack)
    big = make_image("png", (8, 8), 1) + b"\0" * (25 * 1024 * 1024)
    attachment = stack.discord.attachment("in.png", big, "image/png", 8, 8)
    attachment["size"] = 1000  # what the forged payload claims
    sent = await stack.discord.slash("imagine", {"prompt": "x"},
                                     attachments={"image": attachment})
    message = await stack.finished(sent)
    assert "the limit is 20 MB" in message["embeds"][0]["description"]
    await settled(stack)
    assert not stack.replicate.creates and await used(stack) == 0


async def test_an_input_image_from_elsewhere_is_never_fetched(start_stack, fake):
    stack = await manual_stack(start_stack)
    attachment = stack.discord.attachment("in.png", make_image("png", (8, 8), 1), "image/png",
                                          8, 8)
    attachment["url"] = f"{fake.url}/files/secret/x.png"  # another host: a forged payload
    sent = await stack.discord.slash("imagine", {"prompt": "x"},
                                     attachments={"image": attachment})
    await stack.discord.wait_for(lambda: sent.callbacks)
    assert "uploaded to Discord" in sent.callbacks[0].json["data"]["content"]
    assert not fake.calls("GET", "/files/") and await used(stack) == 0


async def test_a_huge_answer_from_the_api_is_refused_and_the_prediction_canceled(start_stack):
    stack = await manual_stack(start_stack)
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    await stack.replicate.wait_for(lambda: stack.replicate.holding)
    stack.replicate.faults.append(Fault("GET", path="/predictions/", status=200,
                                        body="x" * (17 * 1024 * 1024)))
    stack.replicate.release_holds()
    message = await stack.finished(sent, timeout=30)
    assert "too large to read" in message["embeds"][0]["description"]
    assert next(iter(stack.replicate.predictions.values())).status == "canceled"
    await settled(stack)
    assert await used(stack) == 0


async def test_an_image_that_decodes_to_billions_of_pixels_is_refused(start_stack):
    stack = await manual_stack(start_stack)
    bomb = io.BytesIO()
    Image.new("1", (9000, 9000)).save(bomb, "PNG")  # 81 MP in a few kB
    stack.replicate.scenario = Scenario(duration=0.05, file_body=bomb.getvalue(),
                                        file_content_type="image/png")
    sent = await stack.discord.slash("imagine", {"prompt": "x", "output_format": "png"})
    message = await stack.finished(sent)
    assert "larger than the bot accepts" in message["embeds"][0]["description"]
    await settled(stack)
    assert await used(stack) == 0


async def test_an_unexpected_failure_refunds_and_stops_the_prediction(start_stack):
    stack = await manual_stack(start_stack)

    async def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    stack.bot.replicate.follow = broken  # type: ignore[method-assign]
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    await stack.replicate.wait_for(lambda: stack.replicate.holding)
    stack.replicate.release_holds()
    message = await stack.finished(sent)
    assert "went wrong on our side" in message["embeds"][0]["description"]
    assert next(iter(stack.replicate.predictions.values())).status == "canceled"
    await settled(stack)
    assert await used(stack) == 0


async def test_the_final_status_lost_after_early_delivery_still_charges(start_stack):
    stack = await manual_stack(start_stack)
    stack.replicate.scenario = Scenario(duration=0.3, output_while_processing=True,
                                        finish_lag=5)
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    await stack.replicate.wait_for(lambda: any(p.output for p in
                                               stack.replicate.predictions.values()))
    stack.replicate.faults.append(Fault("GET", path="/predictions/", status=404, times=20))
    message = await stack.finished(sent)
    await settled(stack)
    assert len(message["attachments"]) == 1 and await used(stack) == 1


async def test_queue_places_are_edited_at_most_once_per_interval(start_stack):
    stack = await manual_stack(start_stack, replicate={"wait_seconds": 60, "max_concurrent": 1})
    stack.bot.runner.edit_interval = 3600.0  # only a new stage shows before the test ends
    first = await stack.discord.slash("imagine", {"prompt": "takes the slot"})
    await stack.replicate.wait_for(lambda: stack.replicate.holding)
    waiting = [await stack.discord.slash("imagine", {"prompt": f"waits {n}"}) for n in range(8)]
    await stack.discord.wait_for(lambda: stack.bot.runner.queue.waiting == 8)
    stack.replicate.scenario = Scenario(duration=0.02)
    stack.replicate.finish()
    for sent in (first, *waiting):
        await stack.finished(sent, timeout=30)
    await settled(stack)
    for sent in waiting:
        message = stack.discord.message_for(sent)
        places = [c for c in stack.discord.calls if c.method == "PATCH" and
                  f"/messages/{message['id']}" in c.path and "Queued: position" in str(c.json)]
        assert len(places) <= 1, len(places)  # before: one edit per job ahead of it


async def test_a_channel_post_that_landed_unanswered_is_found_not_posted_again(start_stack):
    """Found by the soak: the upload cut, then the channel post landed but its answer was
    lost, then the retry was cut too: the member was refunded for images that were there."""
    stack = await manual_stack(start_stack)
    stack.replicate.scenario = Scenario(duration=0.05)
    stack.discord.drops += [Drop("PATCH", "/messages/", match=lambda c: bool(c.files)),
                            Drop("POST", f"/channels/{CHANNEL_ID}/messages", after=True),
                            Drop("POST", f"/channels/{CHANNEL_ID}/messages")]
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    await stack.finished(sent)
    await settled(stack)
    # the history showed the post: no retry was needed (the third cut was never used)
    assert len(stack.discord.requests("POST", f"/channels/{CHANNEL_ID}/messages")) == 1
    assert len({m for m, _ in stack.discord.uploads}) == 1  # posted once
    assert await used(stack) == 1  # and charged
