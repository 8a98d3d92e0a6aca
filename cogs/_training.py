"""`/lora train`: a member's zip of images trained into a Flux LoRA on Replicate, then into the
server's catalogue. A training is a job like any other (checked, charged, run by the same
runner, cancelable, resumed after a restart); what differs is shown here: its message lives in
the channel (a training outlives the 15-minute interaction token), progress comes from the
trainer's steps with the time left, and its "delivery" is a catalogue entry, a first sample
made with it (included in the training's credits) and a ping for the member."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import aiohttp
import discord

from bot.catalogue import LoraChoice
from bot.errors import OptionError, UserError
from bot.generation import GenerationResult
from bot.i18n import translate as _t
from bot.images import fetchable
from bot.jobs import JobState
from bot.model import GenerationOptions, validate
from bot.replicate.errors import AnswerTooLarge
from bot.replicate.transport import read_capped
from bot.storage.history import Generation
from bot.storage.loras import Trained
from bot.storage.quota import Interaction, JobRequest, QuotaRefused
from bot.training import MAX_ZIP, TrainOptions, check_training, inspect_zip
from bot.work import IMAGINE, TRAIN
from cogs._budget import expected_cost, tell_budget
from cogs._delivery import DiscordReporter, retried
from cogs._ui import (
    NO_PINGS,
    TRANSPORT,
    bar,
    is_moderator,
    job_embed,
    locale_of,
    only,
    reply,
    role_ids,
    shown,
)

if TYPE_CHECKING:
    from bot.discord_bot import FluxBot

log = logging.getLogger("cogs.training")

ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/octet-stream",
             "multipart/x-zip")


def may_train(bot: FluxBot, interaction: discord.Interaction) -> bool:
    allowed = set(bot.config.training.allowed_role_ids)
    return is_moderator(bot, interaction) or bool(allowed & set(role_ids(interaction.user)))


async def fetch_zip(bot: FluxBot, attachment: discord.Attachment) -> bytes:
    """The zip as posted, read at most `MAX_ZIP` bytes, from Discord's own hosts only."""
    if not fetchable(attachment.url, bot.image_hosts()):
        raise OptionError("check.image_host")
    assert bot.http_session is not None
    try:
        async with bot.http_session.get(attachment.url, allow_redirects=False,
                                        timeout=aiohttp.ClientTimeout(total=60)) as resp:
            if resp.status != 200:
                raise OptionError("training.unreadable")
            return await read_capped(resp, MAX_ZIP)
    except AnswerTooLarge:
        raise OptionError("training.zip_too_large", limit=MAX_ZIP // 2**20) from None
    except (aiohttp.ClientError, TimeoutError, OSError):
        raise OptionError("training.unreadable") from None


async def start_training(bot: FluxBot, interaction: discord.Interaction, *, name: str,
                         images: discord.Attachment, trigger: str, steps: int | None,
                         description: str) -> None:
    """Check everything, reserve, post the job's message in the channel, start the job."""
    settings = bot.config.training
    if not settings.enabled:
        raise UserError("training.off")
    if interaction.guild_id is None:
        raise UserError("check.guild_only")
    if not may_train(bot, interaction):
        raise UserError("training.not_allowed")
    name = name.strip()
    if not name or any(c in name for c in "`\n\r@<>") or not name.isprintable():
        raise OptionError("lora.bad_name")
    if any(e.name.casefold() == name.casefold() for e in bot.config.loras) or any(
            (e.name or "").casefold() == name.casefold()
            for e in await bot.storage.loras.list(interaction.guild_id)):
        raise UserError("training.name_taken", name=name)
    kind = (images.content_type or "").split(";")[0].strip().lower()
    if not images.filename.lower().endswith(".zip") or (kind and kind not in ZIP_TYPES):
        raise OptionError("training.not_zip")
    if images.size > MAX_ZIP:
        raise OptionError("training.zip_too_large", limit=MAX_ZIP // 2**20)
    work = check_training(TrainOptions(
        name=name, trigger=trigger.strip(), images=images.url, description=description.strip(),
        steps=settings.default_steps if steps is None else steps, credits=settings.credits),
        settings.max_steps)
    await interaction.response.defer(ephemeral=True, thinking=True)
    facts = inspect_zip(await fetch_zip(bot, images), min_images=settings.min_images,
                        max_images=settings.max_images)
    work = TrainOptions(**{**work.to_dict(), "image_count": facts.images})
    locale, guild_id = locale_of(interaction), interaction.guild_id
    channel_id = interaction.channel_id or 0
    request = JobRequest(
        guild_id=guild_id, channel_id=channel_id, user_id=interaction.user.id,
        prompt=f"{name} ({work.trigger})", options=work.to_dict(), images=1,
        role_ids=role_ids(interaction.user),
        interaction=Interaction(application_id=interaction.application_id,
                                token=interaction.token,
                                created_at=interaction.created_at.timestamp(), locale=locale,
                                upload_limit=interaction.filesize_limit),
        expected_micros=await expected_cost(bot, work), kind=TRAIN, credits=work.credits)
    try:
        reservation = await bot.storage.quota.reserve(request)
    except QuotaRefused as refused:
        if refused.key.startswith("budget."):
            tell_budget(bot, guild_id, refused.key)
        raise
    tell_budget(bot, guild_id)
    job_id = reservation.job_id
    try:
        posted = await _post(bot, job_id, channel_id, work, interaction.user.id, locale)
    except (discord.HTTPException, *TRANSPORT):
        await bot.storage.quota.refund(job_id, error="could not post the training's message")
        raise UserError("upscale.cannot_post") from None
    await bot.storage.history.set_message(job_id, posted.id)
    reporter = TrainingReporter(bot, job_id=job_id, user_id=interaction.user.id,
                                channel_id=channel_id, message_id=posted.id, locale=locale,
                                kind=TRAIN, in_place=True)
    assert bot.runner is not None
    log.info("job %d accepted (training %r, %d images, %d steps)", job_id, name, facts.images,
             work.steps, extra={"job": job_id})
    bot.runner.start(job_id, work, reporter)
    await reply(interaction, _t("training.started", locale, name=name, count=facts.images,
                                steps=work.steps, link=posted.jump_url))


def _what(locale: str, work: TrainOptions) -> str:
    return _t("training.what", locale, name=shown(work.name, 100),
              trigger=shown(work.trigger, 100), count=work.image_count, steps=work.steps)


def _embed(locale: str, job_id: int, work: TrainOptions, title: str,
           colour: discord.Colour, lines: list[str]) -> discord.Embed:
    return job_embed(locale, job_id, title=title, colour=colour,
                     description="\n".join([_what(locale, work), *lines]))


async def _post(bot: FluxBot, job_id: int, channel_id: int, work: TrainOptions, user_id: int,
                locale: str) -> discord.Message:
    from cogs.buttons import cancel_view

    embed = _embed(locale, job_id, work, _t("training.queued_title", locale),
                   discord.Colour.blurple(), [])
    channel = bot.get_partial_messageable(channel_id)
    return await retried(lambda: channel.send(  # type: ignore[no-any-return]
        f"<@{user_id}>", embed=embed, view=cancel_view(job_id, locale),
        allowed_mentions=NO_PINGS, nonce=f"flux-train-{job_id}"))


def eta(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else \
        f"{minutes}:{secs:02d}"


class TrainingReporter(DiscordReporter):
    """A training's message: steps and time left, then the catalogue entry and a sample."""

    def _work(self, job: Generation) -> TrainOptions:
        return TrainOptions(**{k: v for k, v in job.options.items()
                               if k in TrainOptions.__dataclass_fields__})

    def _what(self, job: Generation) -> str:
        return _what(self.locale, self._work(job))

    async def update(self, state: JobState) -> None:
        from cogs.buttons import cancel_view

        try:
            job = await self._job()
            if job is None:
                return
            p, lines = state.progress, []
            if state.stage == "queued":
                title = _t("training.queued_title", self.locale)
            else:
                title = _t(f"training.{state.stage}_title", self.locale)
                if p.total:
                    lines.append(f"`{bar(p)}` {p.step}/{p.total} ({p.percent}%)")
                lines.append(_t("training.elapsed", self.locale, elapsed=eta(state.elapsed),
                                left=eta(p.remaining)))
            embed = _embed(self.locale, job.id, self._work(job), title,
                           discord.Colour.blurple(), lines)
            await self._edit(embed=embed, view=cancel_view(self.job_id, self.locale))
        except (discord.HTTPException, *TRANSPORT) as exc:
            log.warning("job %d: progress not shown (%s)", self.job_id, type(exc).__name__,
                        extra={"job": self.job_id})
        except Exception:  # never let a progress edit end a training
            log.exception("job %d: progress not shown", self.job_id, extra={"job": self.job_id})

    async def already_delivered(self) -> int | None:
        return 1 if await self.bot.storage.loras.of_job(self.job_id) else None

    async def deliver(self, job: Generation, result: GenerationResult) -> int:
        """The weights become a catalogue entry; then the message says so, and a sample is
        made with it as a reply that pings the member."""
        work = self._work(job)
        weights = result.prediction.weights
        if not weights:
            raise UserError("training.no_weights")
        entry = LoraChoice(ref=weights, name=work.name, trigger=work.trigger, scale=1.0,
                           description=work.description)
        await self.bot.storage.loras.add(job.guild_id, entry, job.user_id, job_id=job.id)
        lines = [_t("training.done", self.locale, name=shown(work.name, 100)),
                 _t("training.figures", self.locale, seconds=f"{result.predict_time or 0:.0f}",
                    cost=f"{result.cost:.2f}" if result.cost is not None else "—")]
        embed = _embed(self.locale, job.id, work, _t("imagine.done_title", self.locale),
                       discord.Colour.green(), lines)
        try:
            await self._edit(embed=embed, view=None, retry=True)
        except (discord.HTTPException, *TRANSPORT) as exc:
            log.warning("job %d: the result was not shown (%s)", job.id, type(exc).__name__,
                        extra={"job": job.id})
        await sample(self.bot, job, work, weights, self.message_id, self.locale)
        return 1

    async def annotate(self, job: Generation, result: GenerationResult) -> None:
        return None

    async def fail(self, job: Generation, error: UserError, refunded: int) -> None:
        await super().fail(job, error, refunded)
        text = _t("training.failed_ping", self.locale, user=f"<@{job.user_id}>",
                  name=shown(self._work(job).name, 100), count=refunded)
        try:  # an edit pings nobody: say it in a message of its own
            await retried(lambda: self._channel().send(
                text, allowed_mentions=only(job.user_id),
                reference=_reference(self.channel_id, self.message_id),
                nonce=f"flux-train-end-{job.id}"))
        except (discord.HTTPException, *TRANSPORT):
            pass


def _reference(channel_id: int, message_id: int | None) -> discord.MessageReference | None:
    if message_id is None:
        return None
    return discord.MessageReference(message_id=message_id, channel_id=channel_id,
                                    fail_if_not_exists=False)


async def sample(bot: FluxBot, training: Generation, work: TrainOptions, weights: str,
                 message_id: int | None, locale: str) -> None:
    """The first image of the new LoRA: an /imagine job of no credits (the training paid for
    it), whose message replies to the training's and pings the member. If it cannot be made
    (the budget, a ban), the ping says the LoRA is ready all the same."""
    d = bot.config.defaults
    ping = _t("training.ready_ping", locale, user=f"<@{training.user_id}>",
              name=shown(work.name, 100), trigger=shown(work.trigger, 100))
    options = validate(GenerationOptions(
        prompt=f"{work.trigger}, {work.description}" if work.description else work.trigger,
        lora=weights, lora_scale=1.0, aspect_ratio=d.aspect_ratio, num_outputs=1,
        steps=d.steps, guidance=d.guidance, output_format=d.output_format,
        output_quality=d.output_quality))
    request = JobRequest(
        guild_id=training.guild_id, channel_id=training.channel_id, user_id=training.user_id,
        prompt=options.prompt, options=options.to_dict(), images=1, lora=work.name,
        lora_scale=1.0, parent_id=training.id, kind=IMAGINE, credits=0,
        expected_micros=await expected_cost(bot, options))
    channel = bot.get_partial_messageable(training.channel_id)
    try:
        reservation = await bot.storage.quota.reserve(request)
    except QuotaRefused as refused:
        log.info("job %d: no sample (%s)", training.id, refused.key, extra={"job": training.id})
        reservation = None
    embed = job_embed(locale, reservation.job_id if reservation else training.id,
                      title=_t("training.sample_title", locale),
                      colour=discord.Colour.blurple(), description=shown(options.prompt, 500))
    try:
        posted = await retried(lambda: channel.send(
            ping, embed=embed if reservation else discord.utils.MISSING,
            allowed_mentions=only(training.user_id),
            reference=_reference(training.channel_id, message_id) or discord.utils.MISSING,
            nonce=f"flux-train-ready-{training.id}"))
    except (discord.HTTPException, *TRANSPORT) as exc:
        log.warning("job %d: the ping was not posted (%s)", training.id, type(exc).__name__,
                    extra={"job": training.id})
        if reservation is not None:
            await bot.storage.quota.refund(reservation.job_id, error="could not post")
        return
    if reservation is None or bot.runner is None:
        return
    await bot.storage.history.set_message(reservation.job_id, posted.id)
    reporter = DiscordReporter(bot, job_id=reservation.job_id, user_id=training.user_id,
                               channel_id=training.channel_id, message_id=posted.id,
                               locale=locale, in_place=True)
    bot.runner.start(reservation.job_id, options, reporter)
    log.info("job %d: sample job %d started", training.id, reservation.job_id,
             extra={"job": training.id})


def trained_fields(locale: str, embed: discord.Embed, trained: Trained) -> None:
    """/lora info of a trained entry: who, when, steps, images and cost."""
    embed.add_field(name=_t("training.info_by", locale), value=f"<@{trained.user_id}>")
    embed.add_field(name=_t("training.info_at", locale), value=f"<t:{int(trained.at)}:f>")
    embed.add_field(name=_t("training.info_steps", locale),
                    value=_t("training.info_steps_value", locale, steps=trained.steps,
                             count=trained.images))
    embed.add_field(name=_t("training.info_cost", locale),
                    value=f"${trained.cost:.2f}" if trained.cost is not None else "—")
