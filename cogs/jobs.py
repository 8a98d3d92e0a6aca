"""The Discord side of the job runner: the jobs a previous run left are resumed as this cog
loads (before the gateway connects; with shards, only the jobs of this process's servers), and
a cancel reaches a job wherever it stands: running here, only in the database (canceled before
it started, or left by a crash), or in another process, which the request reaches through the
database and which answers the same way."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from discord.ext import commands

from bot.i18n import resolve
from bot.jobs import CancelOutcome
from bot.storage.history import Generation, InFlightJob
from bot.work import IMAGINE, TRAIN, Work, work_from
from cogs._delivery import DiscordReporter

if TYPE_CHECKING:
    from bot.discord_bot import FluxBot

log = logging.getLogger("cogs.jobs")


def work_of(job: Generation) -> Work:
    return work_from(job.kind, job.options)


CANCEL_POLL = 1.0  # seconds between looks for cancels other processes ask of ours
CANCEL_WAIT = 10.0  # how long a process waits for the owner of a job to answer a cancel
CANCEL_KEEP = 3600.0  # answers nobody collected are kept this long


class Jobs(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot
        self.poll_interval = CANCEL_POLL
        self._answering: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        count = await self.resume()
        if count:
            log.info("resumed %d job(s) left in flight", count)
        if self.bot.config.discord.shards() is not None:  # other processes may ask
            self._answering = asyncio.create_task(self._answer_cancels())

    async def cog_unload(self) -> None:
        if self._answering is not None:
            self._answering.cancel()

    def reporter_for(self, entry: InFlightJob) -> DiscordReporter:
        """A reporter for a stored job: its message, through its token while that lives; an
        upscale's, a training's or a training's sample's message is the bot's own channel
        message, edited there."""
        from cogs._training import TrainingReporter

        job = entry.generation
        own = job.kind != IMAGINE or entry.interaction_token is None
        make = TrainingReporter if job.kind == TRAIN else DiscordReporter
        return make(
            self.bot, job_id=job.id, user_id=job.user_id, channel_id=job.channel_id,
            message_id=job.message_id, locale=resolve(entry.locale),
            application_id=None if own else entry.application_id,
            token=None if own else entry.interaction_token,
            token_at=entry.interaction_at, upload_limit=entry.upload_limit,
            kind=job.kind, in_place=own)

    async def resume(self) -> int:
        """Follow again the jobs a previous run left, posting each result once."""
        async def make(entry: InFlightJob) -> DiscordReporter:
            return self.reporter_for(entry)

        assert self.bot.runner is not None
        return await self.bot.runner.resume_all(
            make, work_of, which=lambda entry: self.bot.owns(entry.generation.guild_id))

    async def cancel(self, job_id: int, guild_id: int, by: int = 0) -> CancelOutcome:
        """Cancel a job of this server: the running task stops it; a job with no task here
        is settled from the database (its prediction, if any, canceled at Replicate); a job
        of a server another process runs is canceled by that process."""
        runner = self.bot.runner
        assert runner is not None
        if not self.bot.owns(guild_id) and job_id not in runner.jobs:
            return await self._ask_owner(job_id, guild_id, by)
        outcome = await runner.cancel(job_id)
        if outcome is not CancelOutcome.NOT_RUNNING:
            return outcome
        entry = next((e for e in await self.bot.storage.history.in_flight(guild_id)
                      if e.generation.id == job_id), None)
        if entry is None:
            return CancelOutcome.NOT_RUNNING
        await runner.cancel_stored(entry, self.reporter_for(entry), work_of(entry.generation))
        return CancelOutcome.CANCELED


    async def _ask_owner(self, job_id: int, guild_id: int, by: int) -> CancelOutcome:
        """The request goes through the database; the owner's answer comes back the same way.
        With no answer in `CANCEL_WAIT` (the owner restarting, say), the request stays: the
        owner carries it out when it is back, and says so in the job's message."""
        processes = self.bot.storage.processes
        await processes.ask_cancel(job_id, guild_id, by)
        deadline = asyncio.get_running_loop().time() + CANCEL_WAIT
        while asyncio.get_running_loop().time() < deadline:
            answer = await processes.cancel_outcome(job_id)
            if answer is not None:
                await processes.forget_cancel(job_id)
                return CancelOutcome(answer)
            await asyncio.sleep(self.poll_interval / 4)
        return CancelOutcome.REQUESTED

    async def _answer_cancels(self) -> None:
        """Answer the cancels other processes ask of jobs of this process's servers (those
        asked while it was down too: it looks as soon as it has resumed its jobs)."""
        processes = self.bot.storage.processes
        while True:
            try:
                for request in await processes.open_cancels():
                    if self.bot.owns(request.guild_id):
                        outcome = await self.cancel(request.job_id, request.guild_id)
                        await processes.answer_cancel(request.job_id, outcome.value)
                await processes.prune_cancels(CANCEL_KEEP)
            except Exception as exc:  # the database away for a moment: look again later
                log.warning("cancels asked by other processes: not read (%s)",
                            type(exc).__name__)
            await asyncio.sleep(self.poll_interval)


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Jobs(bot))
