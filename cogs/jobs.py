"""The Discord side of the job runner: the jobs a previous run left are resumed as this cog
loads (before the gateway connects), and a cancel reaches a job wherever it stands: running
here, or only in the database (canceled before it started, or left by a crash)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from discord.ext import commands

from bot.i18n import resolve
from bot.jobs import CancelOutcome
from bot.model import GenerationOptions
from bot.storage.history import Generation, InFlightJob
from cogs._delivery import DiscordReporter

if TYPE_CHECKING:
    from bot.discord_bot import FluxBot

log = logging.getLogger("cogs.jobs")


def options_of(job: Generation) -> GenerationOptions:
    fields = GenerationOptions.__dataclass_fields__
    return GenerationOptions(**{k: v for k, v in job.options.items() if k in fields})


class Jobs(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        count = await self.resume()
        if count:
            log.info("resumed %d job(s) left in flight", count)

    def reporter_for(self, entry: InFlightJob) -> DiscordReporter:
        """A reporter for a stored job: its message, through its token while that lives."""
        job = entry.generation
        return DiscordReporter(
            self.bot, job_id=job.id, user_id=job.user_id, channel_id=job.channel_id,
            message_id=job.message_id, locale=resolve(entry.locale),
            application_id=entry.application_id, token=entry.interaction_token,
            token_at=entry.interaction_at, upload_limit=entry.upload_limit)

    async def resume(self) -> int:
        """Follow again the jobs a previous run left, posting each result once."""
        async def make(entry: InFlightJob) -> DiscordReporter:
            return self.reporter_for(entry)

        assert self.bot.runner is not None
        return await self.bot.runner.resume_all(make, options_of)

    async def cancel(self, job_id: int, guild_id: int) -> CancelOutcome:
        """Cancel a job of this server: the running task stops it; a job with no task here
        is settled from the database (its prediction, if any, canceled at Replicate)."""
        runner = self.bot.runner
        assert runner is not None
        outcome = await runner.cancel(job_id)
        if outcome is not CancelOutcome.NOT_RUNNING:
            return outcome
        entry = next((e for e in await self.bot.storage.history.in_flight(guild_id)
                      if e.generation.id == job_id), None)
        if entry is None:
            return CancelOutcome.NOT_RUNNING
        await runner.cancel_stored(entry, self.reporter_for(entry), options_of(entry.generation))
        return CancelOutcome.CANCELED


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Jobs(bot))
