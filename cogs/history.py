"""/history: a member's generations, newest first, a page at a time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import UserError
from bot.i18n import translate
from cogs._ui import cmd, is_moderator, locale_of, reply, report_error, require_guild, shown

if TYPE_CHECKING:
    from bot.discord_bot import FluxBot

PER_PAGE = 5
STATUS_ICON = {"succeeded": "✅", "failed": "❌", "canceled": "⏹️", "timed_out": "⌛",
               "queued": "⏳", "running": "🔄"}


async def history_page(bot: FluxBot, locale: str, guild_id: int, user_id: int, page: int
                       ) -> tuple[discord.Embed, discord.ui.View]:
    result = await bot.storage.history.page(guild_id, user_id, page, PER_PAGE)
    embed = discord.Embed(title=translate("history.title", locale),
                          colour=discord.Colour.blurple(),
                          description=f"<@{user_id}>")
    if not result.items:
        embed.description = translate("history.empty", locale)
    for job in result.items:
        link = (f"https://discord.com/channels/{job.guild_id or '@me'}/{job.channel_id}/"
                f"{job.message_id}" if job.message_id else None)
        lora = job.lora or "—"
        value = translate("history.entry", locale, status=translate(f"status.{job.status}",
                                                                     locale),
                          lora=shown(lora, 80), images=job.images_delivered,
                          when=int(job.created_at))
        if link:
            value += f" · [{translate('history.open', locale)}]({link})"
        embed.add_field(name=f"{STATUS_ICON.get(job.status, '')} #{job.id} · "
                             f"{shown(job.prompt, 80)}", value=value, inline=False)
    embed.set_footer(text=translate("history.page", locale, page=result.page,
                                    pages=result.pages, total=result.total))
    view = discord.ui.View(timeout=None)
    view.add_item(HistoryPage(user_id, result.page - 1, "◀", disabled=result.page <= 1))
    view.add_item(HistoryPage(user_id, result.page + 1, "▶",
                              disabled=result.page >= result.pages))
    return embed, view


class HistoryPage(discord.ui.DynamicItem[discord.ui.Button[Any]],
                  template=r"history:page:(?P<user>\d+):(?P<page>\d+)"):
    def __init__(self, user_id: int, page: int, label: str = "…",
                 disabled: bool = False) -> None:
        super().__init__(discord.ui.Button(label=label, disabled=disabled,
                                           style=discord.ButtonStyle.secondary,
                                           custom_id=f"history:page:{user_id}:{max(page, 0)}"))
        self.user_id = user_id
        self.page = page

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: Any) -> HistoryPage:
        return cls(int(match["user"]), int(match["page"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: FluxBot = interaction.client  # type: ignore[assignment]
        try:
            guild_id = require_guild(interaction)
            if self.user_id != interaction.user.id and not is_moderator(bot, interaction):
                raise UserError("check.not_moderator")
            embed, view = await history_page(bot, locale_of(interaction), guild_id,
                                             self.user_id, self.page)
            await interaction.response.edit_message(embed=embed, view=view)
        except Exception as error:
            await report_error(interaction, error)


class History(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot

    @app_commands.command(name=cmd("command.history.name"),
                          description=cmd("command.history.description"))
    @app_commands.rename(user=cmd("option.user.name"), page=cmd("option.page.name"))
    @app_commands.describe(user=cmd("option.user.description_mod"),
                           page=cmd("option.page.description"))
    async def history(self, interaction: discord.Interaction,
                      user: discord.Member | None = None,
                      page: app_commands.Range[int, 1, 10_000] = 1) -> None:
        guild_id = require_guild(interaction)
        target = user or interaction.user
        if target.id != interaction.user.id and not is_moderator(self.bot, interaction):
            raise UserError("check.not_moderator")
        embed, view = await history_page(self.bot, locale_of(interaction), guild_id,
                                         target.id, page)
        await reply(interaction, embed=embed, view=view)


async def setup(bot: FluxBot) -> None:
    bot.add_dynamic_items(HistoryPage)
    await bot.add_cog(History(bot))
