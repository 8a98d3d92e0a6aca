"""What every other cog relies on: the one error handler for commands, and the translator that
gives Discord the zh-CN names and descriptions when commands are synced."""

from __future__ import annotations

from typing import TYPE_CHECKING

from discord.ext import commands

from cogs._ui import CatalogueTranslator, report_error

if TYPE_CHECKING:
    from bot.discord_bot import FluxBot


class Core(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.tree.error(report_error)
        await self.bot.tree.set_translator(CatalogueTranslator())


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Core(bot))
