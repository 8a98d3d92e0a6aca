"""The whole bot on PostgreSQL: the same flows as on SQLite, through the real discord.py client
and the loopback Discord, with the database a `postgresql://` URL."""

from __future__ import annotations

from tests.cogs.test_cancel import press_cancel, running, settled, used
from tests.fakes.discord_server import GUILD_ID
from tests.fakes.replicate_server import Scenario


async def test_imagine_cancel_and_a_restart_on_postgresql(postgres_database, start_stack):
    config = {"storage": {"database": postgres_database}, "replicate": {"wait_seconds": 60}}
    stack = await start_stack(**config)
    assert stack.bot.storage.db.dialect == "postgresql"
    stack.replicate.scenario = Scenario(duration=0.05)
    done = await stack.finished(await stack.discord.slash("imagine", {"prompt": "a castle",
                                                                      "num_outputs": 2}))
    assert len(done["attachments"]) == 2

    stack.replicate.scenario = Scenario(manual=True)
    canceled = await running(stack)
    await press_cancel(stack, canceled)
    assert (await stack.finished(canceled))["embeds"][0]["title"] == "Canceled"

    left = await running(stack, "left running")
    await stack.stop()
    stack.replicate.finish(next(p.id for p in stack.replicate.predictions.values()
                                if p.input["prompt"] == "left running"))
    again = await start_stack(**config)
    assert len((await again.finished(left))["attachments"]) == 1
    await settled(again)
    assert await used(again) == 3
    history = await again.bot.storage.history.page(GUILD_ID, again.discord.member.id)
    assert [g.status for g in history.items] == ["succeeded", "canceled", "succeeded"]
