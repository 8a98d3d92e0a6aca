"""/help: what the bot does, the member's credits at a glance, the commands they can use."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.i18n import translate
from cogs._ui import cmd, is_moderator, locale_of, quota_fields, reply, role_ids

if TYPE_CHECKING:
    from bot.discord_bot import FluxBot

MEMBER_COMMANDS = ("imagine", "upscale", "quota", "history", "settings", "lora", "help")
MOD_COMMANDS = ("lora_admin", "mod")


class Help(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot

    @app_commands.command(name=cmd("command.help.name"),
                          description=cmd("command.help.description"))
    async def help(self, interaction: discord.Interaction) -> None:
        locale = locale_of(interaction)
        embed = discord.Embed(title=translate("help.title", locale),
                              description=translate("help.about", locale),
                              colour=discord.Colour.blurple())
        lines = [translate(f"help.cmd_{name}", locale) for name in MEMBER_COMMANDS
                 if name != "upscale" or self.bot.config.upscale.enabled]
        if is_moderator(self.bot, interaction):
            lines += [translate(f"help.cmd_{name}", locale) for name in MOD_COMMANDS]
        embed.add_field(name=translate("help.commands", locale), value="\n".join(lines),
                        inline=False)
        if interaction.guild_id is not None:
            status = await self.bot.storage.quota.status(interaction.guild_id,
                                                         interaction.user.id,
                                                         role_ids(interaction.user))
            quota_fields(locale, embed, status)
        await reply(interaction, embed=embed)


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Help(bot))
