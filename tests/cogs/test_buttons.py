"""Buttons on a result: Reroll, Vary, Remix, Delete; each new job charged to who pressed."""

from __future__ import annotations

from tests.fakes.discord_server import GUILD_ID, User
from tests.fakes.replicate_server import Scenario

EPHEMERAL = 64
BOB = User(950000000000000001, "bob")


async def result(stack, **options):
    sent = await stack.discord.slash("imagine", {"prompt": "a castle", "seed": 7, **options})
    message = await stack.finished(sent)
    job_id = int(message["embeds"][0]["footer"]["text"].split()[-1])
    return message, job_id


async def new_job_from(stack, click):
    await stack.discord.wait_for(lambda: click.callbacks)
    return await stack.finished(click)


async def test_reroll_repeats_the_options_with_a_new_seed_charged_to_the_presser(stack):
    message, job_id = await result(stack, lora="frosting_lane", steps=20, aspect_ratio="3:2")
    click = await stack.discord.click(f"imagine:reroll:{job_id}", int(message["id"]), user=BOB)
    rerolled = await new_job_from(stack, click)
    assert len(stack.images(rerolled)) == 1
    first, second = (c.body["input"] for c in stack.replicate.creates)
    assert first["seed"] == 7 and second["seed"] != 7  # a new seed, chosen by the bot
    assert {k: v for k, v in first.items() if k != "seed"} == \
        {k: v for k, v in second.items() if k != "seed"}
    assert (await stack.bot.storage.quota.status(GUILD_ID, BOB.id)).periods[0].used == 1
    assert (await stack.bot.storage.quota.status(GUILD_ID, stack.discord.member.id)
            ).periods[0].used == 1
    new_id = int(rerolled["embeds"][0]["footer"]["text"].split()[-1])
    assert (await stack.bot.storage.history.get(new_id)).parent_id == job_id


async def test_vary_one_image_starts_image_to_image_from_it(stack):
    message, job_id = await result(stack)
    click = await stack.discord.click(f"imagine:vary:{job_id}", int(message["id"]))
    await new_job_from(stack, click)
    varied = stack.replicate.creates[-1].body["input"]
    assert varied["image"] == message["attachments"][0]["url"]
    assert varied["prompt_strength"] == 0.8 and varied["seed"] != 7


async def test_vary_several_images_asks_which(stack):
    message, job_id = await result(stack, num_outputs=3)
    click = await stack.discord.click(f"imagine:vary:{job_id}", int(message["id"]))
    await stack.discord.wait_for(lambda: click.callbacks)
    picker = click.callbacks[0].json["data"]
    assert picker["flags"] & EPHEMERAL
    select = picker["components"][0]["components"][0]
    assert select["custom_id"] == f"imagine:varypick:{job_id}"
    assert [o["label"] for o in select["options"]] == ["Image 1", "Image 2", "Image 3"]
    picker_message = stack.discord.message_for(click)
    pick = await stack.discord.click(f"imagine:varypick:{job_id}", int(picker_message["id"]),
                                     values=["2"])
    await new_job_from(stack, pick)
    assert stack.replicate.creates[-1].body["input"]["image"] == \
        message["attachments"][2]["url"]


async def test_remix_opens_a_prefilled_form_and_runs_what_was_submitted(stack):
    message, job_id = await result(stack, lora="frosting_lane")
    click = await stack.discord.click(f"imagine:remix:{job_id}", int(message["id"]))
    await stack.discord.wait_for(lambda: click.callbacks)
    form = click.callbacks[0].json
    assert form["type"] == 9 and form["data"]["custom_id"] == f"imagine:remixform:{job_id}"
    inputs = [row["components"][0] for row in form["data"]["components"]]
    assert inputs[0]["value"] == "a castle, frstingln illustration"
    assert inputs[1]["value"] == "alvdansen/frosting_lane_flux" and inputs[2]["value"] == "0.6"
    submit = await stack.discord.submit(f"imagine:remixform:{job_id}", {
        inputs[0]["custom_id"]: "a lighthouse", inputs[1]["custom_id"]: "",
        inputs[2]["custom_id"]: ""})
    await new_job_from(stack, submit)
    remixed = stack.replicate.creates[-1].body["input"]
    assert remixed["prompt"] == "a lighthouse" and "hf_lora" not in remixed


async def test_remix_with_a_bad_scale_is_refused_plainly(stack):
    message, job_id = await result(stack)
    click = await stack.discord.click(f"imagine:remix:{job_id}", int(message["id"]))
    await stack.discord.wait_for(lambda: click.callbacks)
    inputs = [row["components"][0] for row in click.callbacks[0].json["data"]["components"]]
    submit = await stack.discord.submit(f"imagine:remixform:{job_id}", {
        inputs[0]["custom_id"]: "x", inputs[1]["custom_id"]: "owner/name",
        inputs[2]["custom_id"]: "lots"})
    await stack.discord.wait_for(lambda: submit.callbacks)
    answer = submit.callbacks[0].json["data"]
    assert answer["flags"] & EPHEMERAL and "`lora_scale`: lots is not a number" in answer["content"]
    assert len(stack.replicate.creates) == 1


async def test_delete_by_the_requester_or_a_moderator_only(stack):
    message, job_id = await result(stack)
    refused = await stack.discord.click(f"imagine:delete:{job_id}", int(message["id"]), user=BOB)
    await stack.discord.wait_for(lambda: refused.callbacks)
    assert refused.callbacks[0].json["data"]["flags"] & EPHEMERAL
    assert int(message["id"]) in stack.discord.messages
    deleted = await stack.discord.click(f"imagine:delete:{job_id}", int(message["id"]),
                                        user=stack.discord.moderator)
    await stack.discord.wait_for(lambda: int(message["id"]) not in stack.discord.messages)
    await stack.discord.wait_for(lambda: stack.discord.requests("POST", "/webhooks/"))
    assert deleted.callbacks[0].json["type"] == 6


async def test_buttons_of_a_failed_job_are_gone(stack):
    stack.replicate.scenario = Scenario(duration=0.05, outcome="failed")
    sent = await stack.discord.slash("imagine", {"prompt": "x"})
    message = await stack.finished(sent)
    assert message["components"] == []
