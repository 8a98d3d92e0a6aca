"""Member commands end to end: /quota, /history, /settings, /lora list and info, /help."""

from __future__ import annotations

from bot.catalogue import LoraChoice
from tests.fakes.discord_server import GUILD_ID, User

EPHEMERAL = 64
BOB = User(950000000000000001, "bob")


async def answer(stack, sent):
    await stack.discord.wait_for(lambda: sent.callbacks)
    data = sent.callbacks[0].json["data"]
    assert data["flags"] & EPHEMERAL  # personal answers are private
    return data


async def test_quota_shows_used_left_bonus_and_resets(start_stack):
    stack = await start_stack(quota={"daily": 5, "weekly": 20})
    await stack.finished(await stack.discord.slash("imagine", {"prompt": "x", "num_outputs": 2}))
    await stack.bot.storage.quota.grant(GUILD_ID, stack.discord.member.id, 3, 99)
    data = await answer(stack, await stack.discord.slash("quota"))
    fields = {f["name"]: f["value"] for f in data["embeds"][0]["fields"]}
    assert fields["Today"].startswith("2 of 5 used, 3 left · resets <t:")
    assert fields["This week"].startswith("2 of 20 used, 18 left")
    assert fields["This month"] == "2 used (unlimited)"
    assert fields["Bonus credits"] == "3"


async def test_quota_of_another_member_is_for_moderators(stack):
    refused = await answer(stack, await stack.discord.slash("quota", {"user": BOB}))
    assert "Only moderators" in refused["content"]
    allowed = await answer(stack, await stack.discord.slash("quota", {"user": BOB},
                                                            user=stack.discord.moderator))
    assert allowed["embeds"][0]["title"] == "Credits of Bob"


async def test_history_pages_newest_first_with_links(stack):
    for n in range(7):
        await stack.finished(await stack.discord.slash("imagine", {"prompt": f"castle {n}"}))
    data = await answer(stack, await stack.discord.slash("history"))
    embed = data["embeds"][0]
    names = [f["name"] for f in embed["fields"]]
    assert len(names) == 5 and "castle 6" in names[0] and "castle 2" in names[4]
    assert "https://discord.com/channels/" in embed["fields"][0]["value"]
    assert embed["footer"]["text"] == "Page 1 of 2 · 7 in all"
    buttons = data["components"][0]["components"]
    assert buttons[0]["disabled"] and not buttons[1]["disabled"]
    message = stack.discord.message_for(stack.discord.sent[list(stack.discord.sent)[-1]])
    click = await stack.discord.click(buttons[1]["custom_id"], int(message["id"]))
    await stack.discord.wait_for(lambda: click.callbacks)
    page2 = click.callbacks[0].json["data"]["embeds"][0]
    assert click.callbacks[0].json["type"] == 7
    assert [f["name"].split("· ")[1] for f in page2["fields"]] == ["castle 1", "castle 0"]


async def test_history_of_another_member_is_for_moderators(stack):
    await stack.finished(await stack.discord.slash("imagine", {"prompt": "mine"}))
    refused = await answer(stack, await stack.discord.slash(
        "history", {"user": stack.discord.member}, user=BOB))
    assert "Only moderators" in refused["content"]
    seen = await answer(stack, await stack.discord.slash(
        "history", {"user": stack.discord.member}, user=stack.discord.moderator))
    assert "mine" in seen["embeds"][0]["fields"][0]["name"]


async def test_settings_defaults_reach_the_prediction(stack):
    saved = await answer(stack, await stack.discord.slash(
        "settings", {"aspect_ratio": "16:9", "steps": 12, "lora": "frosting_lane",
                     "output_format": "png"}, subcommand="set"))
    assert saved["content"].startswith("Saved.")
    await stack.finished(await stack.discord.slash("imagine", {"prompt": "a castle"}))
    sent = stack.replicate.creates[-1].body["input"]
    assert (sent["aspect_ratio"], sent["num_inference_steps"], sent["output_format"]) == (
        "16:9", 12, "png")
    assert sent["hf_lora"] == "alvdansen/frosting_lane_flux" and sent["lora_scale"] == 0.6
    await stack.finished(await stack.discord.slash("imagine", {"prompt": "b", "steps": 30}))
    assert stack.replicate.creates[-1].body["input"]["num_inference_steps"] == 30
    shown = await answer(stack, await stack.discord.slash("settings", subcommand="view"))
    fields = {f["name"]: f["value"] for f in shown["embeds"][0]["fields"]}
    assert fields["steps"] == "**12**" and fields["guidance"] == "server default (3.5)"
    await answer(stack, await stack.discord.slash("settings", subcommand="reset"))
    await stack.finished(await stack.discord.slash("imagine", {"prompt": "c"}))
    assert stack.replicate.creates[-1].body["input"]["aspect_ratio"] == "1:1"


async def test_settings_are_checked_like_imagine(start_stack):
    stack = await start_stack(limits={"max_steps": 30})
    for options, text in (({"steps": 40}, "maximum of 30"),
                          ({"lora": "not a lora"}, "is not a LoRA"),
                          ({}, "at least one option")):
        data = await answer(stack, await stack.discord.slash("settings", options,
                                                             subcommand="set"))
        assert text in data["content"]
    assert await stack.bot.storage.settings.get(stack.discord.member.id) == {}


async def test_lora_list_and_info(stack):
    await stack.bot.storage.loras.add(
        GUILD_ID, LoraChoice(ref="a/neon", name="neon", trigger="nn", scale=0.7), 99)
    data = await answer(stack, await stack.discord.slash("lora", subcommand="list"))
    fields = data["embeds"][0]["fields"]
    assert [f["name"] for f in fields] == ["frosting_lane", "neon"]
    assert "From the bot's config" in fields[0]["value"]
    assert "Added on this server" in fields[1]["value"] and "Trigger: nn" in fields[1]["value"]
    info = await answer(stack, await stack.discord.slash("lora", {"name": "NEON"},
                                                         subcommand="info"))
    assert info["embeds"][0]["title"] == "neon" and "`a/neon`" in info["embeds"][0]["description"]
    missing = await answer(stack, await stack.discord.slash("lora", {"name": "nope"},
                                                            subcommand="info"))
    assert "No LoRA called `nope`" in missing["content"]
    auto = await stack.discord.autocomplete("lora", "name", "NEO", subcommand="info")
    await stack.discord.wait_for(lambda: auto.callbacks)
    assert [c["value"] for c in auto.callbacks[0].json["data"]["choices"]] == ["neon"]


async def test_help_shows_the_commands_and_credits(stack):
    data = await answer(stack, await stack.discord.slash("help"))
    embed = data["embeds"][0]
    commands = next(f["value"] for f in embed["fields"] if f["name"] == "Commands")
    assert "/imagine" in commands and "/mod" not in commands
    assert any(f["name"] == "Today" for f in embed["fields"])
    mod = await answer(stack, await stack.discord.slash("help", user=stack.discord.moderator))
    assert "/mod" in next(f["value"] for f in mod["embeds"][0]["fields"]
                          if f["name"] == "Commands")
    zh = await answer(stack, await stack.discord.slash("help", user=User(1, "li",
                                                                          locale="zh-CN")))
    assert zh["embeds"][0]["title"] == "Flux 图像机器人"


async def test_lora_list_pages(stack):
    for n in range(10):
        await stack.bot.storage.loras.add(GUILD_ID, LoraChoice(ref=f"a/l{n}", name=f"l{n:02d}"),
                                          99)
    sent = await stack.discord.slash("lora", subcommand="list")
    first = await answer(stack, sent)
    assert len(first["embeds"][0]["fields"]) == 8
    assert first["embeds"][0]["footer"]["text"] == "Page 1 of 2 · 11 in all"
    forward = first["components"][0]["components"][1]["custom_id"]
    click = await stack.discord.click(forward, int(stack.discord.message_for(sent)["id"]))
    await stack.discord.wait_for(lambda: click.callbacks)
    second = click.callbacks[0].json["data"]["embeds"][0]
    assert [f["name"] for f in second["fields"]] == ["l07", "l08", "l09"]
