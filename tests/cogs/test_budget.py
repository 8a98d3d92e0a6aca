"""Budgets in dollars through the real bot: a refusal with a clear message that charges
nothing, the mod-log told once per period, warn mode, /mod budget to read and set it, /quota
saying when the server's budget is what stops a member, failed predictions billed and counted,
and the spend chart of /mod stats, in both languages."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.cogs.test_cancel import running, used
from tests.cogs.test_mod import MOD_LOG, answer, mod
from tests.fakes.discord_server import GUILD_ID, User
from tests.fakes.replicate_server import Scenario

# the default estimate before any history: (1 s + 0.12 s x 28 steps) x $0.0014/s = $0.0061;
# a budget of $0.012 holds one such job, not two
ONE_JOB = {"monthly_usd": 0.012}
ZH = User(950000000000000007, "lin", locale="zh-CN")


def budget_posts(stack) -> list[str]:
    return [c.json["content"] for c in stack.discord.requests(
        "POST", f"/channels/{MOD_LOG}/messages") if "💰" in c.json["content"]]


async def refused_text(stack, **kwargs) -> str:
    data = await answer(stack, await stack.discord.slash("imagine", {"prompt": "more"},
                                                         **kwargs))
    return data["content"]


async def test_a_spent_budget_refuses_charges_nothing_and_tells_the_mods_once(start_stack):
    stack = await start_stack(budget=ONE_JOB, discord={"mod_log_channel_id": MOD_LOG},
                              replicate={"wait_seconds": 60})
    stack.replicate.scenario = Scenario(manual=True)
    await running(stack)  # its expected cost is reserved while it runs
    text = await refused_text(stack)
    assert "monthly image budget ($0.01) is used up" in text and "nothing was charged" in text
    assert await used(stack) == 1  # the refused one took no credit
    assert len(stack.replicate.creates) == 1
    zh = await refused_text(stack, user=ZH)
    assert "每月图像预算" in zh
    await stack.discord.wait_for(lambda: budget_posts(stack))
    (post,) = budget_posts(stack)  # once, however many were refused
    assert "reached its $0.01 monthly budget" in post and "New jobs are refused" in post
    quota = await answer(stack, await stack.discord.slash("quota"))
    field = next(f for f in quota["embeds"][0]["fields"] if f["name"] == "Server budget")
    assert "not your credits" in field["value"]


async def test_warn_mode_runs_the_jobs_and_only_tells(start_stack):
    stack = await start_stack(budget={**ONE_JOB, "mode": "warn"},
                              discord={"mod_log_channel_id": MOD_LOG},
                              replicate={"wait_seconds": 60})
    stack.replicate.scenario = Scenario(manual=True)
    await running(stack, "first")
    await running(stack, "second")  # over the budget: runs all the same
    await stack.discord.wait_for(lambda: budget_posts(stack))
    (post,) = budget_posts(stack)
    assert "reached its $0.01 monthly budget" in post and "Jobs still run" in post
    assert len(stack.replicate.creates) == 2


async def test_mod_budget_reads_and_sets_the_servers_budget(start_stack):
    stack = await start_stack(discord={"mod_log_channel_id": MOD_LOG})
    stack.replicate.scenario = Scenario(duration=0.05, outcome="failed")
    await stack.finished(await stack.discord.slash("imagine", {"prompt": "x"}))
    shown = await mod(stack, "budget")
    fields = {f["name"]: f["value"] for f in shown["embeds"][0]["fields"]}
    assert fields["Spent"] == "$0.01"  # a failed prediction ran, so it was billed: 7.25 s
    assert fields["Reserved by running jobs"] == "$0.00"
    assert fields["Monthly budget"] == "none"
    set_to = await mod(stack, "budget", {"amount": 5.0})
    fields = {f["name"]: f["value"] for f in set_to["embeds"][0]["fields"]}
    assert fields["Monthly budget"] == "$5.00 (set by a moderator)"
    await stack.discord.wait_for(lambda: any(
        "monthly budget to $5.00" in c.json["content"]
        for c in stack.discord.requests("POST", f"/channels/{MOD_LOG}/messages")))
    back = await mod(stack, "budget", {"amount": 0.0})
    fields = {f["name"]: f["value"] for f in back["embeds"][0]["fields"]}
    assert fields["Monthly budget"] == "none"
    zh_mod = User(950000000000000008, "wang", locale="zh-CN",
                  permissions=stack.discord.moderator.permissions)
    zh = await mod(stack, "budget", user=zh_mod)
    assert {f["name"] for f in zh["embeds"][0]["fields"]} >= {"已花费", "每月预算"}
    member = await answer(stack, await stack.discord.slash("mod", {}, subcommand="budget",
                                                           user=stack.discord.member))
    assert "Only moderators" in member["content"]


async def test_the_stats_chart_is_drawn_from_the_servers_jobs(stack):
    stack.replicate.scenario = Scenario(duration=0.05)
    for prompt in ("a", "b"):
        await stack.finished(await stack.discord.slash("imagine", {"prompt": prompt,
                                                                   "num_outputs": 2}))
    stack.replicate.scenario = Scenario(duration=0.05, outcome="failed")
    await stack.finished(await stack.discord.slash("imagine", {"prompt": "c"}))
    data = await mod(stack, "stats", {"days": 14})
    embed = data["embeds"][0]
    assert embed["image"]["url"] == "attachment://stats.png"
    assert "failures (red)" in embed["footer"]["text"]
    call = stack.discord.requests("POST", "/webhooks/")[-1]
    (name, png), = call.files.values()
    assert name == "stats.png"
    chart = Image.open(io.BytesIO(png))
    chart.load()
    assert chart.size == (800, 360) and chart.format == "PNG"
    colours = {chart.convert("RGB").getpixel((x, y)) for x in range(0, 800, 7)
               for y in range(0, 360, 7)}
    assert (0x58, 0x65, 0xF2) in colours and (0xED, 0x42, 0x45) in colours  # bars drawn


@pytest.mark.parametrize(("amount", "text"), [(-1.0, "below the minimum 0"),
                                              (2_000_000.0, "above the maximum"),
                                              (float("nan"), "is not a number")])
async def test_a_budget_out_of_range_is_refused_and_not_stored(stack, amount, text):
    data = await mod(stack, "budget", {"amount": amount})
    assert text in data["content"], data["content"]
    assert await stack.bot.storage.budget.own_limit(GUILD_ID) is None


async def test_a_canceled_prediction_that_ran_is_billed_and_counted(start_stack):
    from tests.cogs.test_cancel import press_cancel

    stack = await start_stack(replicate={"wait_seconds": 60})
    stack.replicate.scenario = Scenario(manual=True)
    sent = await running(stack)
    await press_cancel(stack, sent)
    assert (await stack.finished(sent))["embeds"][0]["title"] == "Canceled"
    report = await stack.bot.storage.budget.report(GUILD_ID)
    assert report.spent == pytest.approx(7.25 * 0.0014) and report.reserved == 0
    assert await used(stack) == 0  # the credits are refunded; the dollars were spent
