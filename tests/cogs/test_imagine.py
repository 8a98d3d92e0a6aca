"""/imagine end to end: the real bot, the loopback Discord, the local Replicate."""

from __future__ import annotations

import json

import pytest

from tests.fakes.discord_server import (
    CHANNEL_ID,
    NSFW_CHANNEL_ID,
    OTHER_CHANNEL_ID,
    User,
)
from tests.fakes.replicate_server import Scenario, make_image

EPHEMERAL = 64


def callback(sent):
    (call,) = sent.callbacks
    return call.json


async def test_answers_within_three_seconds_with_a_public_job_message(stack):
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    message = await stack.finished(sent)
    assert sent.answered_in is not None and sent.answered_in < 3
    first = callback(sent)
    assert first["type"] == 4 and not (first["data"].get("flags") or 0) & EPHEMERAL
    assert message["embeds"][0]["title"] == "Done"
    assert [c["components"][0]["custom_id"] for c in first["data"]["components"]] == [
        f"imagine:cancel:{message['embeds'][0]['footer']['text'].split()[-1]}"]


@pytest.mark.parametrize("count", [1, 4])
async def test_images_are_posted_and_decodable(stack, count):
    sent = await stack.discord.slash("imagine", {"prompt": "a castle", "num_outputs": count,
                                                 "output_format": "png"})
    message = await stack.finished(sent)
    images = stack.images(message)
    assert len(images) == count and all(i.format == "PNG" for i in images)
    fields = {f["name"]: f["value"] for f in message["embeds"][0]["fields"]}
    assert fields["Steps"] == "28" and fields["Aspect ratio"] == "1:1"
    assert fields["Estimated cost"] == "$0.0101"  # 7.25 s × 0.0014 = 0.01015
    buttons = [c["custom_id"] for row in message["components"] for c in row["components"]]
    upscales = ["upscale"] * count  # one U button per image, on a second row
    assert [b.split(":")[1] for b in buttons] == ["reroll", "vary", "remix", "delete", *upscales]
    labels = [c["label"] for row in message["components"][1:] for c in row["components"]]
    assert labels == (["Upscale"] if count == 1 else ["U1", "U2", "U3", "U4"])
    status = await stack.bot.storage.quota.status(message_guild(message), stack.discord.member.id)
    assert status.periods[0].used == count


def message_guild(message) -> int:
    return int(message["guild_id"])


async def test_every_option_reaches_the_prediction_under_its_api_name(stack):
    picture = make_image("png", (32, 32), 3)
    attachment = stack.discord.attachment("in.png", picture, "image/png", 32, 32)
    sent = await stack.discord.slash("imagine", {
        "prompt": "a castle", "lora": "frosting_lane", "lora_scale": 0.5,
        "aspect_ratio": "16:9", "num_outputs": 2, "seed": 1234, "steps": 20,
        "guidance": 4.5, "prompt_strength": 0.7, "output_format": "jpg",
        "output_quality": 90}, attachments={"image": attachment})
    await stack.finished(sent)
    (create,) = stack.replicate.creates
    assert create.body["input"] == {
        "prompt": "a castle, frstingln illustration", "hf_lora": "alvdansen/frosting_lane_flux",
        "lora_scale": 0.5, "aspect_ratio": "16:9", "num_outputs": 2, "seed": 1234,
        "num_inference_steps": 20, "guidance_scale": 4.5, "image": attachment["url"],
        "prompt_strength": 0.7, "output_format": "jpg", "output_quality": 90}
    assert create.path == "/replicate/v1/predictions"


async def test_catalogue_scale_and_personal_defaults_fill_what_is_left_out(stack):
    await stack.bot.storage.settings.update(stack.discord.member.id,
                                            {"aspect_ratio": "9:16", "steps": 12})
    sent = await stack.discord.slash("imagine", {"prompt": "a frstingln illustration of a cat",
                                                 "lora": "FROSTING_LANE"})
    await stack.finished(sent)
    sent_input = stack.replicate.creates[0].body["input"]
    assert sent_input["lora_scale"] == 0.6  # the catalogue entry's scale
    assert sent_input["prompt"] == "a frstingln illustration of a cat"  # trigger present once
    assert (sent_input["aspect_ratio"], sent_input["num_inference_steps"]) == ("9:16", 12)


async def test_a_too_big_output_is_delivered_within_the_limit(stack):
    stack.replicate.scenario = Scenario(duration=0.1, image_size=(600, 600))
    limit = 200_000
    sent = await stack.discord.slash("imagine", {"prompt": "noise", "output_format": "png",
                                                 "num_outputs": 2}, upload_limit=limit)
    message = await stack.finished(sent)
    images = stack.images(message)
    assert len(images) == 2
    sizes = [a["size"] for a in message["attachments"]]
    assert sum(sizes) <= limit
    assert all(i.width > 0 for i in images)
    raw = stack.replicate.files[f"{next(iter(stack.replicate.predictions))}/out-0.png"][0]
    assert len(raw) > limit  # it really was too big


REFUSALS = [
    ({"prompt": "x", "lora": "not a lora"}, {}, "is not a LoRA the model accepts"),
    ({"prompt": "a bad apple"}, {"limits": {"banned_words": ["Bad"]}}, "not allowed here"),
    ({"prompt": "x", "num_outputs": 3}, {"quota": {"daily": 2}}, "Not enough credits"),
    ({"prompt": "x"}, {"discord": {"allowed_channel_ids": [OTHER_CHANNEL_ID]}},
     f"Try <#{OTHER_CHANNEL_ID}>"),
    ({"prompt": "x", "steps": 40}, {"limits": {"max_steps": 30}}, "above the maximum 30"),
    ({"prompt": "x" * 50}, {"limits": {"max_prompt_length": 20}}, "the limit is 20"),
]


@pytest.mark.parametrize(("options", "config", "text"), REFUSALS)
async def test_refusals_are_ephemeral_and_free(start_stack, options, config, text):
    stack = await start_stack(**config)
    sent = await stack.discord.slash("imagine", options)
    await stack.discord.wait_for(lambda: sent.callbacks)
    answer = callback(sent)
    assert answer["data"]["flags"] & EPHEMERAL
    assert text in answer["data"]["content"]
    assert "Traceback" not in answer["data"]["content"]
    assert not stack.replicate.creates
    assert await stack.bot.storage.db.fetchone("SELECT * FROM ledger") is None
    # answered once: a later command's answer arrives, and no followup repeated the first
    barrier = await stack.discord.autocomplete("imagine", "lora", "")
    await stack.discord.wait_for(lambda: barrier.callbacks)
    assert not stack.discord.requests("POST", f"/webhooks/{sent.data['application_id']}")


async def test_cooldown_and_ban_refuse_without_charging(start_stack):
    stack = await start_stack(quota={"cooldown_seconds": 600})
    first = await stack.discord.slash("imagine", {"prompt": "one"})
    await stack.finished(first)
    second = await stack.discord.slash("imagine", {"prompt": "two"})
    await stack.discord.wait_for(lambda: second.callbacks)
    assert "you can generate again <t:" in callback(second)["data"]["content"]
    member = stack.discord.member
    await stack.bot.storage.moderation.ban(1, 0, 0)  # another server: no effect here
    from tests.fakes.discord_server import GUILD_ID
    await stack.bot.storage.moderation.ban(GUILD_ID, member.id, 99, "spamming")
    third = await stack.discord.slash("imagine", {"prompt": "three"})
    await stack.discord.wait_for(lambda: third.callbacks)
    assert "banned" in callback(third)["data"]["content"]
    assert "spamming" in callback(third)["data"]["content"]
    assert len(stack.replicate.creates) == 1
    assert (await stack.bot.storage.quota.status(GUILD_ID, member.id)).periods[0].used == 1


async def test_an_attachment_that_is_not_an_image_is_refused(stack):
    attachment = stack.discord.attachment("notes.txt", b"hello", "text/plain")
    sent = await stack.discord.slash("imagine", {"prompt": "x"},
                                     attachments={"image": attachment})
    await stack.discord.wait_for(lambda: sent.callbacks)
    assert callback(sent)["data"]["flags"] & EPHEMERAL
    assert "not an image" in callback(sent)["data"]["content"]
    assert not stack.replicate.creates


async def test_an_attachment_lying_about_its_type_fails_free(stack):
    attachment = stack.discord.attachment("fake.png", b"<html>no</html>", "image/png", 10, 10)
    sent = await stack.discord.slash("imagine", {"prompt": "x"},
                                     attachments={"image": attachment})
    message = await stack.finished(sent)
    assert message["embeds"][0]["title"] == "Failed"
    assert "not an image" in message["embeds"][0]["description"]
    assert not stack.replicate.creates
    from tests.fakes.discord_server import GUILD_ID
    assert (await stack.bot.storage.quota.status(GUILD_ID, stack.discord.member.id)
            ).periods[0].used == 0


async def test_a_failure_is_refunded_and_explained(stack):
    stack.replicate.scenario = Scenario(duration=0.1, outcome="failed", error="CUDA error")
    sent = await stack.discord.slash("imagine", {"prompt": "x", "num_outputs": 2})
    message = await stack.finished(sent)
    embed = message["embeds"][0]
    assert embed["title"] == "Failed"
    assert "The model failed: CUDA error" in embed["description"]
    assert "2 credit(s) refunded" in embed["description"]
    assert message["components"] == []
    from tests.fakes.discord_server import GUILD_ID
    status = await stack.bot.storage.quota.status(GUILD_ID, stack.discord.member.id)
    assert status.periods[0].used == 0 and status.in_flight == 0


async def test_filtered_images_are_refunded(stack):
    stack.replicate.scenario = Scenario(duration=0.1, filtered=(1, 2))
    sent = await stack.discord.slash("imagine", {"prompt": "x", "num_outputs": 4})
    message = await stack.finished(sent)
    assert len(message["attachments"]) == 2
    fields = {f["name"]: f["value"] for f in message["embeds"][0]["fields"]}
    assert "2 image(s) could not be delivered" in fields["Filtered"]
    from tests.fakes.discord_server import GUILD_ID
    assert (await stack.bot.storage.quota.status(GUILD_ID, stack.discord.member.id)
            ).periods[0].used == 2


async def test_cancel_refunds(stack):
    stack.replicate.scenario = Scenario(manual=True)  # held by Prefer: wait until it ends
    sent = await stack.discord.slash("imagine", {"prompt": "x"})
    await stack.discord.wait_for(lambda: stack.replicate.predictions)
    message = stack.discord.message_for(sent)
    job_id = message["embeds"][0]["footer"]["text"].split()[-1]
    click = await stack.discord.click(f"imagine:cancel:{job_id}", int(message["id"]))
    done = await stack.finished(sent)
    assert done["embeds"][0]["title"] == "Canceled"
    assert click.callbacks and click.callbacks[0].json["type"] == 6  # acknowledged quietly
    prediction = next(iter(stack.replicate.predictions.values()))
    # canceled on Replicate too, even though the create was still held by Prefer: wait
    await stack.discord.wait_for(lambda: prediction.status == "canceled")
    assert len(stack.replicate.calls("POST", "/cancel")) == 1
    from tests.fakes.discord_server import GUILD_ID
    assert (await stack.bot.storage.quota.status(GUILD_ID, stack.discord.member.id)
            ).periods[0].used == 0


async def test_someone_else_cannot_cancel(stack):
    stack.replicate.scenario = Scenario(manual=True)  # held by Prefer: wait until it ends
    sent = await stack.discord.slash("imagine", {"prompt": "x"})
    await stack.discord.wait_for(lambda: stack.replicate.predictions)
    message = stack.discord.message_for(sent)
    job_id = message["embeds"][0]["footer"]["text"].split()[-1]
    other = User(950000000000000001, "bob")
    click = await stack.discord.click(f"imagine:cancel:{job_id}", int(message["id"]),
                                      user=other)
    await stack.discord.wait_for(lambda: click.callbacks)
    assert click.callbacks[0].json["data"]["flags"] & EPHEMERAL
    assert "Only the member who asked" in click.callbacks[0].json["data"]["content"]
    assert next(iter(stack.replicate.predictions.values())).status != "canceled"
    assert not stack.replicate.calls("POST", "/cancel")


async def test_progress_is_shown_from_the_logs(stack):
    stack.replicate.scenario = Scenario(frames=4)  # one step per poll
    sent = await stack.discord.slash("imagine", {"prompt": "x", "steps": 20})
    await stack.finished(sent)
    edits = [c.json for c in stack.discord.requests("PATCH", "/messages/")
             if c.json and c.json.get("embeds")]
    described = [e["embeds"][0]["description"] for e in edits]
    assert any("10/20 (50%)" in d for d in described)
    assert any("s elapsed" in d for d in described)
    assert any(e["embeds"][0]["title"] == "Generating…" for e in edits)


async def test_mentions_in_the_prompt_ping_nobody(stack):
    prompt = "@everyone look <@123456789012345678> and <@&930000000000000001>"
    sent = await stack.discord.slash("imagine", {"prompt": prompt})
    message = await stack.finished(sent)
    member = str(stack.discord.member.id)
    payloads = [callback(sent)["data"]] + [
        c.json for c in stack.discord.calls
        if c.method in ("PATCH", "POST") and c.json and "allowed_mentions" in c.json]
    assert len(payloads) >= 2  # the reply and the finished message
    for payload in payloads:
        mentions = payload["allowed_mentions"]
        assert mentions["parse"] == []
        assert {str(u) for u in mentions.get("users", [])} <= {member}
        assert not mentions.get("roles")
    assert message["content"] == f"<@{member}>"


async def test_a_chinese_member_is_answered_in_chinese(stack):
    zh = User(960000000000000001, "li", locale="zh-CN")
    refused = await stack.discord.slash("imagine", {"prompt": "x", "lora": "nope"}, user=zh)
    await stack.discord.wait_for(lambda: refused.callbacks)
    assert "不是模型接受的 LoRA" in callback(refused)["data"]["content"]
    sent = await stack.discord.slash("imagine", {"prompt": "一座城堡"}, user=zh)
    message = await stack.finished(sent)
    assert message["embeds"][0]["title"] == "完成"
    labels = [c["label"] for row in message["components"] for c in row["components"]]
    assert labels == ["重新生成", "变体", "混合", "删除", "放大"]


async def test_an_expired_token_falls_back_to_a_channel_message(stack):
    stack.replicate.scenario = Scenario(frames=2)
    sent = await stack.discord.slash("imagine", {"prompt": "x"})
    await stack.discord.wait_for(lambda: sent.callbacks)
    stack.discord.expired_tokens.add(sent.token)
    await stack.discord.wait_for(lambda: stack.discord.requests("POST", f"/channels/{CHANNEL_ID}"
                                                                        "/messages"))
    post = stack.discord.requests("POST", f"/channels/{CHANNEL_ID}/messages")[-1]
    member = stack.discord.member.id
    assert post.json["content"].startswith(f"<@{member}>")
    assert post.json["allowed_mentions"]["parse"] == []
    assert [str(u) for u in post.json["allowed_mentions"]["users"]] == [str(member)]
    assert len(post.files) == 1
    original = await stack.discord.wait_for(
        lambda: (m := stack.discord.message_for(sent)) and m["embeds"][0]["title"] == "Done"
        and m)
    assert original["attachments"] == []  # the images are in the new message
    assert stack.discord.requests("PATCH", f"/channels/{CHANNEL_ID}/messages/")


async def test_safety_checker_is_off_only_in_age_restricted_channels(start_stack):
    stack = await start_stack(limits={"disable_safety_checker": True})
    await stack.finished(await stack.discord.slash("imagine", {"prompt": "x"}))
    await stack.finished(await stack.discord.slash("imagine", {"prompt": "y"},
                                                   channel_id=NSFW_CHANNEL_ID))
    first, second = (c.body["input"] for c in stack.replicate.creates)
    assert "disable_safety_checker" not in first
    assert second["disable_safety_checker"] is True


async def test_direct_messages_are_refused_unless_allowed(stack):
    sent = await stack.discord.slash("imagine", {"prompt": "x"}, dm=True,
                                     channel_id=970000000000000001)
    await stack.discord.wait_for(lambda: sent.callbacks)
    assert "direct messages" in callback(sent)["data"]["content"]


async def test_lora_autocomplete_offers_the_catalogue_and_recent_loras(stack):
    await stack.finished(await stack.discord.slash("imagine", {"prompt": "x",
                                                               "lora": "someone/pixel_art"}))
    sent = await stack.discord.autocomplete("imagine", "lora", "")
    await stack.discord.wait_for(lambda: sent.callbacks)
    answer = callback(sent)
    assert answer["type"] == 8
    values = [c["value"] for c in answer["data"]["choices"]]
    assert values == ["frosting_lane", "someone/pixel_art"]
    narrowed = await stack.discord.autocomplete("imagine", "lora", "PIX")
    await stack.discord.wait_for(lambda: narrowed.callbacks)
    assert [c["value"] for c in callback(narrowed)["data"]["choices"]] == ["someone/pixel_art"]
    assert narrowed.answered_in < 3


async def test_commands_sync_with_chinese_localizations(start_stack):
    stack = await start_stack(sync_commands=True,
                              discord={"guild_ids": [910000000000000001]})
    commands = stack.discord.commands["910000000000000001"]
    imagine = next(c for c in commands if c["name"] == "imagine")
    assert imagine["name_localizations"]["zh-CN"] == "生成图像"
    options = {o["name"]: o for o in imagine["options"]}
    assert options["num_outputs"]["max_value"] == 4
    assert options["prompt"]["description_localizations"]["zh-CN"] == "图像要表现的内容"
    assert [c["value"] for c in options["aspect_ratio"]["choices"]][:2] == ["1:1", "16:9"]
    mod = next(c for c in commands if c["name"] == "mod")
    cancel = next(o for o in mod["options"] if o["name"] == "cancel")
    assert cancel["options"][0]["max_value"] == 2**53 - 1  # Discord's largest integer bound
    # the sync went through Discord's OpenAPI document: every command was taken as it is
    assert stack.discord.schema_problems == [] and len(commands) == 8
    upscale = next(c for c in commands if c["name"] == "Upscale")
    assert upscale["type"] == 3 and upscale["name_localizations"]["zh-CN"] == "放大"


async def test_the_loopback_discord_refuses_a_sync_real_discord_would_refuse(discord_fake):
    """The check the sync above passed is a real one: the bound the bot once declared."""
    discord_fake.refusals_expected = True
    import aiohttp

    from tests.fakes.discord_server import APP_ID, BOT_TOKEN
    command = {"name": "mod", "description": "d", "type": 1, "options": [
        {"type": 4, "name": "job", "description": "j", "min_value": 1, "max_value": 2**62}]}
    async with aiohttp.ClientSession() as http, http.put(
            f"{discord_fake.api_base}/applications/{APP_ID}/commands", json=[command],
            headers={"Authorization": f"Bot {BOT_TOKEN}"}) as resp:
        assert resp.status == 400 and (await resp.json())["code"] == 50035
    assert discord_fake.schema_problems and not discord_fake.commands


async def test_a_queued_job_shows_its_position_then_runs(start_stack):
    stack = await start_stack(replicate={"max_concurrent": 1})
    stack.replicate.next_scenarios = [Scenario(manual=True), Scenario(duration=0.05)]
    first = await stack.discord.slash("imagine", {"prompt": "first"})
    await stack.replicate.wait_for(lambda: stack.replicate.predictions)
    second = await stack.discord.slash("imagine", {"prompt": "second"})
    queued = await stack.discord.wait_for(
        lambda: (m := stack.discord.message_for(second)) and
        m["embeds"][0]["title"] == "Queued: position 1" and m)
    assert queued["components"]  # it can be canceled while it waits
    assert len(stack.replicate.creates) == 1
    job_id = stack.discord.message_for(first)["embeds"][0]["footer"]["text"].split()[-1]
    await stack.discord.click(f"imagine:cancel:{job_id}",
                              int(stack.discord.message_for(first)["id"]))
    done = await stack.finished(second)
    assert done["embeds"][0]["title"] == "Done" and len(stack.replicate.creates) == 2


async def test_an_unexpected_error_is_told_plainly_and_logged(stack, caplog):
    await stack.bot.storage.db.connection.close()  # the database goes away under the bot
    zh = User(960000000000000001, "li", locale="zh-CN")
    sent = await stack.discord.slash("imagine", {"prompt": "x"}, user=zh)
    await stack.discord.wait_for(lambda: sent.callbacks)
    answer = callback(sent)["data"]
    assert answer["flags"] & EPHEMERAL
    assert answer["content"] == "我们这边出了点问题。没有扣除额度,请重试。"
    assert "Traceback" not in json.dumps(stack.discord.calls[-1].json)
    assert any("unexpected error in /imagine" in r.message and r.exc_info
               for r in caplog.records)


async def test_server_limits_shape_the_command(start_stack):
    stack = await start_stack(sync_commands=True,
                              limits={"max_num_outputs": 2, "max_steps": 30,
                                      "max_prompt_length": 500})
    (imagine,) = [c for c in stack.discord.commands["global"] if c["name"] == "imagine"]
    options = {o["name"]: o for o in imagine["options"]}
    assert options["num_outputs"]["max_value"] == 2
    assert options["steps"]["max_value"] == 30
    assert options["prompt"]["max_length"] == 500
    assert options["image"]["type"] == 11


async def test_images_are_posted_on_their_outputs_and_the_cost_added_after(stack):
    # like the real API: `Prefer: wait` answers with every output while still `processing`
    stack.replicate.scenario = Scenario(duration=0.1, output_while_processing=True,
                                        finish_lag=0.002)  # ends before the next poll
    sent = await stack.discord.slash("imagine", {"prompt": "x", "num_outputs": 2})
    posted = await stack.discord.wait_for(
        lambda: (m := stack.discord.message_for(sent)) and m["attachments"] and m)
    (prediction,) = stack.replicate.predictions.values()
    await stack.bot.runner.idle()
    message = stack.discord.message_for(sent)
    fields = {f["name"]: f["value"] for f in message["embeds"][0]["fields"]}
    assert fields["Estimated cost"] == "$0.0101"
    assert message["attachments"] == posted["attachments"]  # kept by the cost edit
    assert [r.method for r in stack.replicate.requests if "/predictions" in r.path] == [
        "POST", "GET"]  # two calls per generation
    job = (await stack.bot.storage.history.page(message_guild(message),
                                                stack.discord.member.id)).items[0]
    assert job.status == "succeeded" and job.predict_time == 7.25 and job.cost is not None
    assert prediction.status == "succeeded"
