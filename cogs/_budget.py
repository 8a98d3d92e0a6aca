"""The budget's side of a job on Discord: its expected cost reserved with its credits, and the
mod-log told once a period when a budget reaches its warning share or its limit."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from bot.i18n import translate
from bot.work import Work
from cogs._ui import post_mod_log

if TYPE_CHECKING:
    from bot.discord_bot import FluxBot

log = logging.getLogger(__name__)
_telling: set[asyncio.Task[None]] = set()


async def expected_cost(bot: FluxBot, work: Work) -> int:
    """Micro-dollars this job is expected to cost at its model's price."""
    assert bot.runner is not None
    return await bot.storage.budget.estimate(work, bot.runner.models[work.kind].cost_per_second)


def tell_budget(bot: FluxBot, guild_id: int, refused: str | None = None) -> None:
    """Post, after the member's answer (never delaying it), each budget notice newly due for
    this server or the whole bot's day."""
    task = asyncio.ensure_future(_tell(bot, guild_id, refused))
    _telling.add(task)
    task.add_done_callback(_telling.discard)


async def _tell(bot: FluxBot, guild_id: int, refused: str | None) -> None:
    settings = bot.config.budget
    try:
        if not (settings.monthly_usd or settings.daily_usd_total or
                await bot.storage.budget.own_limit(guild_id, fresh_within=5.0)):
            return  # no budget anywhere: nothing to tell
        for scope, level, used, limit in await bot.storage.budget.notices(guild_id, refused):
            consequence = "" if level == "warn" else \
                translate(f"modlog.budget_{settings.mode}", None)
            await post_mod_log(bot, translate(
                f"modlog.budget_{level}_{scope}", None, used=f"{used:,.2f}",
                limit=f"{limit:,.2f}", share=round(100 * used / limit),
                consequence=consequence))
    except Exception as exc:  # the database away for a moment: the next job tells it
        log.warning("budget notices not checked (%s)", type(exc).__name__)
