"""What a bot that runs for months must not keep: forms nobody submits, a lag watcher left
running after a gateway drop."""

from __future__ import annotations

import asyncio
import sys


async def test_a_dismissed_remix_form_is_forgotten(stack, monkeypatch):
    # a form lives as long as an interaction's token (15 minutes); here, a second. The module
    # as the bot loaded it: an extension is imported afresh
    monkeypatch.setattr(sys.modules["cogs.buttons"], "REMIX_TIMEOUT", 1.0)
    message = await stack.finished(await stack.discord.slash("imagine", {"prompt": "x"}))
    job_id = int(message["embeds"][0]["footer"]["text"].split()[-1])
    click = await stack.discord.click(f"imagine:remix:{job_id}", int(message["id"]))
    await stack.discord.wait_for(lambda: click.callbacks)
    modals = stack.bot._connection._view_store._modals
    await stack.discord.wait_for(lambda: modals)  # kept once Discord took the form
    (form,) = modals.values()  # the member closes the form without submitting it
    await asyncio.wait_for(form.wait(), 10)  # a form without a timeout never gets here
    assert not modals


async def test_the_lag_watcher_stops_with_the_bot_after_a_gateway_drop(stack):
    watcher = stack.bot._lag_watch
    assert watcher is not None and not watcher.done()
    await stack.discord.disconnect(4000)
    await asyncio.wait_for(stack.discord.resumed.wait(), 15)
    await stack.stop()
    assert watcher.done()
