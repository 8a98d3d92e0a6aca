"""/quota: credits used and left per period, bonus, when each period resets."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import UserError
from bot.i18n import translate as _t
from bot.model import GenerationOptions
from cogs._ui import cmd, is_moderator, locale_of, quota_fields, reply, require_guild, role_ids

if TYPE_CHECKING:
    from bot.discord_bot import FluxBot


class Quota(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot

    @app_commands.command(name=cmd("command.quota.name"),
                          description=cmd("command.quota.description"))
    @app_commands.rename(user=cmd("option.user.name"))
    @app_commands.describe(user=cmd("option.user.description_mod"))
    async def quota(self, interaction: discord.Interaction,
                    user: discord.Member | None = None) -> None:
        guild_id = require_guild(interaction)
        target = user or interaction.user
        if target.id != interaction.user.id and not is_moderator(self.bot, interaction):
            raise UserError("check.not_moderator")
        locale = locale_of(interaction)
        status = await self.bot.storage.quota.status(guild_id, target.id, role_ids(target))
        embed = discord.Embed(title=_t("quota.title", locale, name=target.display_name),
                              colour=discord.Colour.blurple())
        quota_fields(locale, embed, status)
        defaults = self.bot.config.defaults
        usual = GenerationOptions(prompt="", num_outputs=1, steps=defaults.steps,
                                  aspect_ratio=defaults.aspect_ratio)
        lifts = await self.bot.storage.budget.blocking(  # the server's money, not the member's
            guild_id, usual, self.bot.config.replicate.cost_per_second)
        if lifts is not None:
            embed.add_field(name=_t("quota.budget_title", locale),
                            value=_t("quota.budget_blocked", locale, resets=int(lifts)),
                            inline=False)
        await reply(interaction, embed=embed)


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Quota(bot))
