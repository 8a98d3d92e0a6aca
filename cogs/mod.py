"""/mod: quotas, bans, usage and jobs, for members with Manage Server or a moderator role.
The check happens here, whatever Discord's command permissions say; every action lands in the
audit log and, when set, in the mod-log channel."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import discord
from discord import app_commands
from discord.ext import commands

from bot.charts import by_day, render
from bot.errors import UserError
from bot.i18n import translate
from bot.jobs import CancelOutcome
from cogs._ui import (
    Refused,
    cmd,
    locale_of,
    mod_log,
    reply,
    require_guild,
    require_moderator,
    shown,
)

if TYPE_CHECKING:
    from bot.discord_bot import FluxBot
    from cogs.jobs import Jobs

Credits = app_commands.Range[int, 0, 1_000_000]


class Mod(commands.GroupCog, group_name=cmd("command.mod.name"),
          group_description=cmd("command.mod.description")):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        try:
            require_moderator(self.bot, interaction)
        except UserError as error:
            raise Refused(error) from None
        return True

    @app_commands.command(name=cmd("command.mod.quota_set.name"),
                          description=cmd("command.mod.quota_set.description"))
    @app_commands.rename(user=cmd("option.user.name"), daily=cmd("option.daily.name"),
                         weekly=cmd("option.weekly.name"), monthly=cmd("option.monthly.name"))
    @app_commands.describe(user=cmd("option.user.description"),
                           daily=cmd("option.daily.description"),
                           weekly=cmd("option.weekly.description"),
                           monthly=cmd("option.monthly.description"))
    async def quota_set(self, interaction: discord.Interaction, user: discord.Member,
                        daily: Credits | None = None, weekly: Credits | None = None,
                        monthly: Credits | None = None) -> None:
        guild_id = require_guild(interaction)
        quota = self.bot.storage.quota
        locale = locale_of(interaction)
        if daily is None and weekly is None and monthly is None:
            await quota.clear_limits(guild_id, user.id, interaction.user.id)
            await reply(interaction, translate("mod.limits_cleared", locale, user=user.mention))
            await mod_log(self.bot, interaction, "modlog.quota_clear", user=user.mention)
            return
        await quota.set_limits(guild_id, user.id, interaction.user.id, daily=daily,
                               weekly=weekly, monthly=monthly)
        def shown(in_locale: str | None) -> str:
            return ", ".join(f"{translate(f'option.{name}.name', in_locale)} {value}"
                             for name, value in (("daily", daily), ("weekly", weekly),
                                                 ("monthly", monthly)) if value is not None)

        await reply(interaction, translate("mod.limits_set", locale, user=user.mention,
                                           limits=shown(locale)))
        await mod_log(self.bot, interaction, "modlog.quota_set", user=user.mention,
                      limits=shown(None))

    @app_commands.command(name=cmd("command.mod.quota_grant.name"),
                          description=cmd("command.mod.quota_grant.description"))
    @app_commands.rename(user=cmd("option.user.name"), credits=cmd("option.credits.name"))
    @app_commands.describe(user=cmd("option.user.description"),
                           credits=cmd("option.credits.description"))
    async def quota_grant(self, interaction: discord.Interaction, user: discord.Member,
                          credits: app_commands.Range[int, -100_000, 100_000]) -> None:
        guild_id = require_guild(interaction)
        if credits == 0:
            raise UserError("mod.zero_credits")
        applied, balance = await self.bot.storage.quota.grant(guild_id, user.id, credits,
                                                              interaction.user.id)
        # what was applied: taking back more than the balance takes the balance only
        await reply(interaction, translate("mod.granted", locale_of(interaction),
                                           user=user.mention, credits=applied, bonus=balance))
        await mod_log(self.bot, interaction, "modlog.quota_grant", user=user.mention,
                      credits=applied, bonus=balance)

    @app_commands.command(name=cmd("command.mod.quota_reset.name"),
                          description=cmd("command.mod.quota_reset.description"))
    @app_commands.rename(user=cmd("option.user.name"))
    @app_commands.describe(user=cmd("option.user.description"))
    async def quota_reset(self, interaction: discord.Interaction, user: discord.Member) -> None:
        await self.bot.storage.quota.reset(require_guild(interaction), user.id,
                                           interaction.user.id)
        await reply(interaction, translate("mod.reset", locale_of(interaction),
                                           user=user.mention))
        await mod_log(self.bot, interaction, "modlog.quota_reset", user=user.mention)

    @app_commands.command(name=cmd("command.mod.ban.name"),
                          description=cmd("command.mod.ban.description"))
    @app_commands.rename(user=cmd("option.user.name"), reason=cmd("option.reason.name"))
    @app_commands.describe(user=cmd("option.user.description"),
                           reason=cmd("option.reason.description"))
    async def ban(self, interaction: discord.Interaction, user: discord.Member,
                  reason: app_commands.Range[str, 0, 300] = "") -> None:
        reason = reason.strip()
        await self.bot.storage.moderation.ban(require_guild(interaction), user.id,
                                              interaction.user.id, reason)
        await reply(interaction, translate("mod.banned", locale_of(interaction),
                                           user=user.mention, reason=reason or "—"))
        await mod_log(self.bot, interaction, "modlog.ban", user=user.mention,
                      reason=reason or "—")

    @app_commands.command(name=cmd("command.mod.unban.name"),
                          description=cmd("command.mod.unban.description"))
    @app_commands.rename(user=cmd("option.user.name"))
    @app_commands.describe(user=cmd("option.user.description"))
    async def unban(self, interaction: discord.Interaction, user: discord.Member) -> None:
        if not await self.bot.storage.moderation.unban(require_guild(interaction), user.id,
                                                       interaction.user.id):
            raise UserError("mod.not_banned", user=user.mention)
        await reply(interaction, translate("mod.unbanned", locale_of(interaction),
                                           user=user.mention))
        await mod_log(self.bot, interaction, "modlog.unban", user=user.mention)

    @app_commands.command(name=cmd("command.mod.stats.name"),
                          description=cmd("command.mod.stats.description"))
    @app_commands.rename(days=cmd("option.days.name"))
    @app_commands.describe(days=cmd("option.days.description"))
    async def stats(self, interaction: discord.Interaction,
                    days: app_commands.Range[int, 1, 365] = 7) -> None:
        locale = locale_of(interaction)
        guild_id = require_guild(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        stats = await self.bot.storage.history.stats(guild_id, days)
        embed = discord.Embed(title=translate("mod.stats_title", locale, days=days),
                              colour=discord.Colour.blurple())
        for key, value in (("generations", stats.generations), ("images", stats.images),
                           ("failures", stats.failures), ("cost", f"${stats.cost:.4f}")):
            embed.add_field(name=translate(f"mod.stats_{key}", locale), value=str(value))
        top = "\n".join(f"<@{user}>: {images}" for user, images in stats.top_users)
        embed.add_field(name=translate("mod.stats_top", locale), value=top or "—",
                        inline=False)
        figures = by_day(await self.bot.storage.history.daily_rows(guild_id, days), days,
                         time.time(), ZoneInfo(self.bot.config.quota.timezone))
        png = await asyncio.to_thread(render, figures)  # drawing takes the loop's time else
        embed.set_image(url="attachment://stats.png")
        embed.set_footer(text=translate("mod.stats_legend", locale))
        await reply(interaction, embed=embed, file=discord.File(io.BytesIO(png), "stats.png"))

    @app_commands.command(name=cmd("command.mod.budget.name"),
                          description=cmd("command.mod.budget.description"))
    @app_commands.rename(amount=cmd("option.amount.name"))
    @app_commands.describe(amount=cmd("option.amount.description"))
    async def budget(self, interaction: discord.Interaction,
                     amount: app_commands.Range[float, 0, 1_000_000] | None = None) -> None:
        locale = locale_of(interaction)
        guild_id = require_guild(interaction)
        budget = self.bot.storage.budget
        if amount is not None:
            await budget.set_monthly(guild_id, amount, interaction.user.id)
            text = f"${amount:,.2f}" if amount else translate(
                "mod.budget_config", locale, amount=_usd(budget.settings.monthly_usd, locale))
            await mod_log(self.bot, interaction, "modlog.budget_set", amount=text)
        report = await budget.report(guild_id)
        limit = _usd(report.limit, locale)
        if report.overridden:
            limit = translate("mod.budget_own", locale, amount=limit)
        embed = discord.Embed(title=translate("mod.budget_title", locale,
                                              month=f"<t:{int(report.month.start)}:D>"),
                              colour=discord.Colour.gold())
        for key, value in (("spent", f"${report.spent:,.2f}"),
                           ("reserved", f"${report.reserved:,.2f}"),
                           ("forecast", f"${report.forecast:,.2f}"), ("limit", limit),
                           ("mode", translate(f"mod.budget_mode_{report.mode}", locale)),
                           ("bot", f"${report.bot_today:,.2f} / "
                                   f"{_usd(report.bot_daily_cap, locale)}")):
            embed.add_field(name=translate(f"mod.budget_{key}", locale), value=value)
        embed.set_footer(text=translate("mod.budget_resets", locale))
        embed.timestamp = datetime.fromtimestamp(report.month.end, UTC)
        await reply(interaction, embed=embed)

    @app_commands.command(name=cmd("command.mod.jobs.name"),
                          description=cmd("command.mod.jobs.description"))
    async def jobs(self, interaction: discord.Interaction) -> None:
        locale = locale_of(interaction)
        jobs = await self.bot.storage.history.in_flight(require_guild(interaction))
        lines = []
        for job in jobs[:20]:
            g = job.generation
            position = self.bot.runner.position(g.id) if self.bot.runner else 0
            state = translate("mod.job_queued", locale, position=position) if position \
                else translate(f"status.{g.status}", locale)
            lines.append(f"`#{g.id}` <@{g.user_id}> · {state} · {shown(g.prompt, 60)}")
        embed = discord.Embed(title=translate("mod.jobs_title", locale, count=len(jobs)),
                              description="\n".join(lines) or translate("mod.no_jobs", locale),
                              colour=discord.Colour.blurple())
        await reply(interaction, embed=embed)

    @app_commands.command(name=cmd("command.mod.cancel.name"),
                          description=cmd("command.mod.cancel.description"))
    @app_commands.rename(job=cmd("option.job.name"))
    @app_commands.describe(job=cmd("option.job.description"))
    async def cancel(self, interaction: discord.Interaction,
                     job: app_commands.Range[int, 1, 2**53 - 1]) -> None:
        guild_id = require_guild(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        jobs: Jobs = self.bot.get_cog("Jobs")  # type: ignore[assignment]
        outcome = await jobs.cancel(job, guild_id, interaction.user.id)
        if outcome is CancelOutcome.NOT_RUNNING:
            raise UserError("mod.no_such_job", job=job)
        if outcome is CancelOutcome.CANCELED:
            await self.bot.storage.moderation.record(guild_id, interaction.user.id, "cancel",
                                                     None, {"job": job})
            await mod_log(self.bot, interaction, "modlog.cancel", job=job)
        await reply(interaction, translate(f"mod.cancel_{outcome.value}", locale_of(interaction),
                                           job=job))


def _usd(amount: float | None, locale: str) -> str:
    return f"${amount:,.2f}" if amount else translate("mod.budget_none", locale)


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Mod(bot))
