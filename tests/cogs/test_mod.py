"""Moderator commands end to end, and a member refused every one of them with no effect."""

from __future__ import annotations

import pytest

from tests.fakes.discord_server import GUILD_ID, MOD_ROLE_ID, User
from tests.fakes.replicate_server import Scenario

EPHEMERAL = 64
BOB = User(950000000000000001, "bob")
MOD_LOG = 920000000000000003


async def answer(stack, sent):
    await stack.discord.wait_for(lambda: sent.callbacks)
    data = sent.callbacks[0].json.get("data") or {}
    return data


async def mod(stack, sub, options=None, user=None):
    sent = await stack.discord.slash("mod", options or {}, subcommand=sub,
                                     user=user or stack.discord.moderator)
    data = await answer(stack, sent)
    if sent.callbacks[0].json["type"] == 5:  # deferred: the answer is the followup
        followups = await stack.discord.wait_for(
            lambda: stack.discord.requests("POST", f"/webhooks/{sent.data['application_id']}"
                                                   f"/{sent.token}"))
        return followups[-1].json
    return data


async def imagine(stack, user=None, **options):
    sent = await stack.discord.slash("imagine", {"prompt": "x", **options},
                                     user=user or stack.discord.member)
    await stack.discord.wait_for(lambda: sent.callbacks)
    return sent


MOD_COMMANDS = [
    ("quota-set", {"user": BOB, "daily": 100}), ("quota-grant", {"user": BOB, "credits": 50}),
    ("quota-reset", {"user": BOB}), ("ban", {"user": BOB, "reason": "x"}),
    ("unban", {"user": BOB}), ("stats", {}), ("jobs", {}), ("cancel", {"job": 1}),
]


@pytest.mark.parametrize(("sub", "options"), MOD_COMMANDS)
async def test_a_member_is_refused_every_moderator_command(stack, sub, options):
    sent = await stack.discord.slash("mod", options, subcommand=sub,
                                     user=stack.discord.member)
    data = await answer(stack, sent)
    assert data["flags"] & EPHEMERAL and "Only moderators" in data["content"]
    db = stack.bot.storage.db
    for table in ("bans", "quota_overrides", "ledger", "audit_log"):
        assert await db.fetchone(f"SELECT * FROM {table}") is None, table


async def test_a_member_cannot_edit_the_catalogue(stack):
    for sub, options in (("add", {"name": "mine", "ref": "a/b"}),
                         ("remove", {"name": "frosting_lane"})):
        data = await answer(stack, await stack.discord.slash("lora", options, subcommand=sub))
        assert "Only moderators" in data["content"]
    assert await stack.bot.storage.loras.list(GUILD_ID) == []


async def test_a_grant_lets_a_member_generate_again(start_stack):
    stack = await start_stack(quota={"daily": 1})
    await stack.finished(await imagine(stack))
    refused = await imagine(stack)
    assert "Not enough credits" in refused.callbacks[0].json["data"]["content"]
    granted = await mod(stack, "quota-grant", {"user": stack.discord.member, "credits": 2})
    assert "now have 2" in granted["content"]
    message = await stack.finished(await imagine(stack))
    assert len(message["attachments"]) == 1
    status = await stack.bot.storage.quota.status(GUILD_ID, stack.discord.member.id)
    assert status.bonus == 1


async def test_ban_refuses_imagine_and_unban_restores_it(stack):
    await mod(stack, "ban", {"user": stack.discord.member, "reason": "spam"})
    refused = await imagine(stack)
    assert "banned" in refused.callbacks[0].json["data"]["content"]
    assert "spam" in refused.callbacks[0].json["data"]["content"]
    await mod(stack, "unban", {"user": stack.discord.member})
    assert len((await stack.finished(await imagine(stack)))["attachments"]) == 1
    again = await mod(stack, "unban", {"user": stack.discord.member})
    assert "is not banned" in again["content"]


async def test_quota_set_and_reset(start_stack):
    stack = await start_stack(quota={"daily": 1})
    await mod(stack, "quota-set", {"user": stack.discord.member, "daily": 3})
    for _ in range(3):
        await stack.finished(await imagine(stack))
    assert "Not enough credits" in (await imagine(stack)).callbacks[0].json["data"]["content"]
    await mod(stack, "quota-reset", {"user": stack.discord.member})
    await stack.finished(await imagine(stack))
    cleared = await mod(stack, "quota-set", {"user": stack.discord.member})
    assert "back to the limits" in cleared["content"]
    status = await stack.bot.storage.quota.status(GUILD_ID, stack.discord.member.id)
    assert status.periods[0].limit == 1


async def test_a_server_lora_added_then_used_by_name(stack):
    added = await answer(stack, await stack.discord.slash(
        "lora", {"name": "Neon", "ref": "someone/neon_flux", "trigger": "neonstyle",
                 "scale": 0.9, "description": "Glowing"}, subcommand="add",
        user=stack.discord.moderator))
    assert "Added `Neon`" in added["content"]
    await stack.finished(await imagine(stack, lora="neon"))
    sent = stack.replicate.creates[-1].body["input"]
    assert sent["hf_lora"] == "someone/neon_flux" and sent["lora_scale"] == 0.9
    assert sent["prompt"] == "x, neonstyle"
    bad = await answer(stack, await stack.discord.slash(
        "lora", {"name": "evil", "ref": "javascript:alert(1)"}, subcommand="add",
        user=stack.discord.moderator))
    assert "is not a LoRA the model accepts" in bad["content"]
    locked = await answer(stack, await stack.discord.slash(
        "lora", {"name": "frosting_lane"}, subcommand="remove", user=stack.discord.moderator))
    assert "cannot be changed from Discord" in locked["content"]
    removed = await answer(stack, await stack.discord.slash(
        "lora", {"name": "NEON"}, subcommand="remove", user=stack.discord.moderator))
    assert "Removed" in removed["content"]


async def test_stats_match_the_generations(stack):
    await stack.finished(await imagine(stack, num_outputs=3))
    await stack.finished(await imagine(stack, user=BOB, num_outputs=1))
    stack.replicate.scenario = Scenario(duration=0.05, outcome="failed")
    await stack.finished(await imagine(stack, user=BOB, num_outputs=2))
    data = await mod(stack, "stats", {"days": 7})
    fields = {f["name"]: f["value"] for f in data["embeds"][0]["fields"]}
    assert (fields["Generations"], fields["Images delivered"], fields["Failures"]) == (
        "3", "4", "1")
    assert fields["Estimated cost"] == f"${3 * 7.25 * 0.0014:.4f}"
    assert fields["Top members"] == f"<@{stack.discord.member.id}>: 3\n<@{BOB.id}>: 1"


async def test_jobs_and_cancel(stack):
    stack.replicate.scenario = Scenario(manual=True)  # held by Prefer: wait until it ends
    sent = await imagine(stack, prompt="slow one", num_outputs=2)
    await stack.replicate.wait_for(lambda: stack.replicate.predictions)
    listing = await mod(stack, "jobs")
    assert "slow one" in listing["embeds"][0]["description"]
    job_id = int(listing["embeds"][0]["description"].split("`#")[1].split("`")[0])
    done = await mod(stack, "cancel", {"job": job_id})
    assert f"Job {job_id} was canceled" in done["content"]
    message = await stack.finished(sent)
    assert message["embeds"][0]["title"] == "Canceled"
    status = await stack.bot.storage.quota.status(GUILD_ID, stack.discord.member.id)
    assert status.periods[0].used == 0
    assert (await mod(stack, "jobs"))["embeds"][0]["description"] == \
        "No job is running or queued."
    missing = await mod(stack, "cancel", {"job": 99999})
    assert "is not running on this server" in missing["content"]


async def test_actions_are_audited_and_posted_to_the_mod_log(start_stack):
    stack = await start_stack(discord={"mod_log_channel_id": MOD_LOG})
    await mod(stack, "ban", {"user": BOB, "reason": "@everyone spam"})
    await mod(stack, "quota-grant", {"user": BOB, "credits": 5})
    posts = await stack.discord.wait_for(
        lambda: len(stack.discord.requests("POST", f"/channels/{MOD_LOG}/messages")) >= 2
        and stack.discord.requests("POST", f"/channels/{MOD_LOG}/messages"))
    texts = [p.json["content"] for p in posts]
    assert texts[0].startswith(f"🛡️ <@{stack.discord.moderator.id}> banned <@{BOB.id}>")
    assert "gave 5 bonus credit(s)" in texts[1]
    assert all(p.json["allowed_mentions"]["parse"] == [] for p in posts)
    log = await stack.bot.storage.moderation.audit_log(GUILD_ID)
    assert [e.action for e in log] == ["quota-grant", "ban"]


async def test_a_moderator_role_is_enough(start_stack):
    stack = await start_stack(discord={"moderator_role_ids": [MOD_ROLE_ID]})
    helper = User(970000000000000002, "helper", roles=(MOD_ROLE_ID,))
    data = await mod(stack, "stats", user=helper)
    assert data["embeds"][0]["title"] == "Last 7 day(s)"
    zh_mod = User(970000000000000003, "wang", locale="zh-CN", roles=(MOD_ROLE_ID,))
    assert (await mod(stack, "stats", user=zh_mod))["embeds"][0]["title"] == "最近 7 天"


async def test_taking_back_more_than_the_balance_says_what_was_taken(start_stack):
    stack = await start_stack(discord={"mod_log_channel_id": MOD_LOG})
    await mod(stack, "quota-grant", {"user": BOB, "credits": 2})
    taken = await mod(stack, "quota-grant", {"user": BOB, "credits": -50})
    assert "Gave -2 bonus credit(s)" in taken["content"] and "now have 0" in taken["content"]
    posts = await stack.discord.wait_for(
        lambda: len(stack.discord.requests("POST", f"/channels/{MOD_LOG}/messages")) >= 2
        and stack.discord.requests("POST", f"/channels/{MOD_LOG}/messages"))
    assert "gave -2 bonus credit(s)" in posts[1].json["content"]


async def test_option_names_are_shown_in_the_readers_language(start_stack):
    stack = await start_stack(discord={"moderator_role_ids": [MOD_ROLE_ID]})
    zh_mod = User(970000000000000004, "li", locale="zh-CN", roles=(MOD_ROLE_ID,))
    limits = await mod(stack, "quota-set", {"user": BOB, "daily": 5, "weekly": 9}, user=zh_mod)
    assert "每日 5" in limits["content"] and "daily" not in limits["content"]
    zh = User(970000000000000005, "wu", locale="zh-CN")
    await stack.bot.storage.settings.update(zh.id, {"steps": 12})
    sent = await stack.discord.slash("settings", {}, subcommand="view", user=zh)
    view = await answer(stack, sent)
    names = [f["name"] for f in view["embeds"][0]["fields"]]
    assert "步数" in names and "steps" not in names
