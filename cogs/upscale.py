"""Upscaling a result: a U button per image (U1…U4), the "Upscale" app command on any of the
bot's results (Apps menu), and a picker when there is a choice to make (which image, how much
larger). An upscale is a job like any other (checked, charged to whoever asked, run by the same
runner, cancelable, resumed after a restart); its message is a reply to the original, posted in
the channel, where the upscaled image lands.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import OptionError, UserError
from bot.images import fetchable
from bot.storage.history import Generation
from bot.storage.quota import Interaction, JobRequest, QuotaRefused
from bot.upscale import DETAILS, UpscaleOptions, validate_upscale
from bot.work import IMAGINE, UPSCALE
from cogs._budget import expected_cost, tell_budget
from cogs._delivery import DiscordReporter, retried
from cogs._ui import (
    NO_PINGS,
    TRANSPORT,
    cmd,
    job_embed,
    locale_of,
    reply,
    report_error,
    role_ids,
    shown,
    tr,
)

if TYPE_CHECKING:
    from bot.discord_bot import FluxBot
    from cogs.imagine import Imagine

log = logging.getLogger("cogs.upscale")

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
MAX_ATTACHMENT = 20 * 1024 * 1024
UPSCALE_ROW = 1  # under Reroll, Vary, Remix and Delete


def upscale_buttons(job_id: int, images: int, locale: str) -> list[UpscaleButton]:
    """The U buttons of a result with `images` images (none when upscaling is off)."""
    if images <= 0:
        return []
    if images == 1:
        return [UpscaleButton(job_id, 0, tr(locale, "button.upscale_one"))]
    return [UpscaleButton(job_id, i, tr(locale, "button.upscale", n=i + 1))
            for i in range(min(images, 5))]


def _cog(bot: FluxBot) -> Upscale:
    cog = bot.get_cog("Upscale")
    assert cog is not None
    return cog  # type: ignore[return-value]


class UpscaleButton(discord.ui.DynamicItem[discord.ui.Button[Any]],
                    template=r"imagine:upscale:(?P<id>\d+):(?P<index>\d)"):
    def __init__(self, job_id: int, index: int, label: str | None = None) -> None:
        super().__init__(discord.ui.Button(
            label=label or f"U{index + 1}", style=discord.ButtonStyle.secondary, emoji="🔍",
            custom_id=f"imagine:upscale:{job_id}:{index}", row=UPSCALE_ROW))
        self.job_id = job_id
        self.index = index

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: Any) -> UpscaleButton:
        return cls(int(match["id"]), int(match["index"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: FluxBot = interaction.client  # type: ignore[assignment]
        try:
            cog = _cog(bot)
            source = await cog.source(self.job_id)
            message = interaction.message
            attachments = message.attachments if message is not None else []
            if message is None or not 0 <= self.index < len(attachments):
                raise UserError("imagine.not_found")
            await cog.launch(interaction, source, message.id, attachments[self.index],
                             self.index, bot.config.upscale.scale)
        except Exception as error:  # the one error handler answers every failure
            await report_error(interaction, error)


class UpscalePick(discord.ui.DynamicItem[discord.ui.Select[Any]],
                  template=r"imagine:upscalepick:(?P<id>\d+)"):
    """Which image, and how much larger, when the Apps menu leaves a choice."""

    def __init__(self, job_id: int, choices: list[tuple[int, int]] | None = None,
                 locale: str = "en-US") -> None:
        choices = choices or [(0, 2)]
        super().__init__(discord.ui.Select(
            custom_id=f"imagine:upscalepick:{job_id}",
            placeholder=tr(locale, "upscale.pick"),
            options=[discord.SelectOption(
                label=tr(locale, "upscale.pick_option", n=index + 1, scale=scale),
                value=f"{index}:{scale}") for index, scale in choices[:25]]))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: Any) -> UpscalePick:
        return cls(int(match["id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: FluxBot = interaction.client  # type: ignore[assignment]
        try:
            index_text, _, scale_text = self.item.values[0].partition(":")
            index, scale = int(index_text), int(scale_text)
            cog = _cog(bot)
            source = await cog.source(self.job_id)
            if source.message_id is None:
                raise UserError("imagine.not_found")
            message = await bot.get_partial_messageable(source.channel_id).fetch_message(
                source.message_id)
            if not 0 <= index < len(message.attachments):
                raise UserError("imagine.not_found")
            await cog.launch(interaction, source, message.id, message.attachments[index],
                             index, scale)
        except discord.NotFound:
            await report_error(interaction, UserError("imagine.not_found"))
        except (ValueError, IndexError):
            await report_error(interaction, UserError("imagine.not_found"))
        except Exception as error:
            await report_error(interaction, error)


class Upscale(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot
        self.menu: app_commands.ContextMenu | None = None

    async def cog_load(self) -> None:
        if self.bot.config.upscale.enabled:  # a context menu cannot live in a cog class
            self.menu = app_commands.ContextMenu(name=cmd("command.upscale.name"),
                                                 callback=self.from_menu)
            self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        if self.menu is not None:
            self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    def scales(self) -> list[int]:
        """What the picker offers: the default scale, the maximum, and 2, 3, 4 between."""
        s = self.bot.config.upscale
        return sorted({s.scale, s.max_scale} | {n for n in (2, 3, 4)
                                                if s.scale <= n <= s.max_scale})

    async def source(self, job_id: int) -> Generation:
        job = await self.bot.storage.history.get(job_id)
        if job is None:
            raise UserError("imagine.not_found")
        if job.kind == UPSCALE:
            raise UserError("upscale.already")
        if job.kind != IMAGINE or job.status != "succeeded":
            raise UserError("upscale.not_a_result")
        return job

    async def from_menu(self, interaction: discord.Interaction, message: discord.Message
                        ) -> None:
        """The Apps menu on a message: one of the bot's results, or a plain refusal."""
        self._imagine().check_place(interaction)
        if not self.bot.config.upscale.enabled:
            raise UserError("upscale.off")
        mine = self.bot.user is not None and message.author.id == self.bot.user.id
        found = await self.bot.storage.history.by_message(message.id) if mine else None
        if found is None or not message.attachments:
            raise UserError("upscale.not_a_result")
        source = await self.source(found.id)
        choices = [(i, s) for i in range(min(len(message.attachments), 5))
                   for s in self.scales()]
        if len(choices) == 1:
            index, scale = choices[0]
            await self.launch(interaction, source, message.id, message.attachments[index],
                              index, scale)
            return
        view = discord.ui.View(timeout=None)
        view.add_item(UpscalePick(source.id, choices, locale_of(interaction)))
        await interaction.response.send_message(tr(interaction, "upscale.pick"), view=view,
                                                ephemeral=True)

    def _imagine(self) -> Imagine:
        cog = self.bot.get_cog("Imagine")
        assert cog is not None
        return cog  # type: ignore[return-value]

    def _work(self, source: Generation, attachment: discord.Attachment, index: int,
              scale: int) -> UpscaleOptions:
        """The upscale of an attachment, checked by what Discord tells of it (its bytes are
        checked again before the prediction is created)."""
        settings = self.bot.config.upscale
        kind = (attachment.content_type or "").split(";")[0].strip().lower()
        if kind not in IMAGE_TYPES or not attachment.width or not attachment.height:
            raise OptionError("check.image_not_image")
        if attachment.size > MAX_ATTACHMENT:
            raise OptionError("check.image_too_large", size=round(attachment.size / 2**20, 1),
                              limit=MAX_ATTACHMENT // 2**20)
        if not fetchable(attachment.url, self.bot.image_hosts()):
            raise OptionError("check.image_host")
        details = {k: source.options.get(k) for k in DETAILS}
        details["seed"] = source.seed if source.seed is not None else details.get("seed")
        return validate_upscale(UpscaleOptions(
            image=attachment.url, scale=scale, face_enhance=settings.face_enhance,
            credits=settings.credits, width=attachment.width, height=attachment.height,
            source_job=source.id, source_index=index, details=details), settings.max_scale)

    async def launch(self, interaction: discord.Interaction, source: Generation,
                     source_message_id: int, attachment: discord.Attachment, index: int,
                     scale: int) -> None:
        """Check, reserve, post the job's reply under the original, start the job."""
        self._imagine().check_place(interaction)
        if not self.bot.config.upscale.enabled:
            raise UserError("upscale.off")
        work = self._work(source, attachment, index, scale)
        await interaction.response.defer(ephemeral=True, thinking=True)
        locale = locale_of(interaction)
        guild_id = interaction.guild_id or 0
        channel_id = interaction.channel_id or source.channel_id
        request = JobRequest(
            guild_id=guild_id, channel_id=channel_id, user_id=interaction.user.id,
            prompt=source.prompt, options=work.to_dict(), images=1,
            role_ids=role_ids(interaction.user), parent_id=source.id,
            interaction=Interaction(application_id=interaction.application_id,
                                    token=interaction.token,
                                    created_at=interaction.created_at.timestamp(),
                                    locale=locale, upload_limit=interaction.filesize_limit),
            expected_micros=await expected_cost(self.bot, work), kind=UPSCALE,
            credits=work.credits)
        try:
            reservation = await self.bot.storage.quota.reserve(request)
        except QuotaRefused as refused:
            if refused.key.startswith("budget."):
                tell_budget(self.bot, guild_id, refused.key)
            raise
        tell_budget(self.bot, guild_id)
        job_id = reservation.job_id
        try:
            posted = await self._post(job_id, channel_id, source_message_id, work, source,
                                      locale)
        except (discord.HTTPException, *TRANSPORT) as exc:
            log.warning("job %d: its reply could not be posted (%s)", job_id,
                        getattr(exc, "status", type(exc).__name__), extra={"job": job_id})
            await self.bot.storage.quota.refund(job_id, error="could not post the reply")
            raise UserError("upscale.cannot_post") from None
        await self.bot.storage.history.set_message(job_id, posted.id)
        reporter = DiscordReporter(
            self.bot, job_id=job_id, user_id=interaction.user.id, channel_id=channel_id,
            message_id=posted.id, locale=locale, upload_limit=interaction.filesize_limit,
            kind=UPSCALE, in_place=True)
        assert self.bot.runner is not None
        log.info("job %d accepted (upscale %d× of job %d image %d)", job_id, scale, source.id,
                 index + 1, extra={"job": job_id})
        self.bot.runner.start(job_id, work, reporter)
        await reply(interaction, tr(locale, "upscale.started", n=index + 1, scale=scale,
                                    link=posted.jump_url))

    async def _post(self, job_id: int, channel_id: int, source_message_id: int,
                    work: UpscaleOptions, source: Generation, locale: str) -> discord.Message:
        """The job's message, a reply to the original. Its nonce makes a repeat after a
        reset return the message the first try made, never a second one."""
        from cogs.buttons import cancel_view

        channel = self.bot.get_partial_messageable(channel_id)
        what = tr(locale, "upscale.field_what_value", scale=work.scale,
                  image=work.source_index + 1, job=source.id)
        embed = job_embed(locale, job_id, title=tr(locale, "upscale.accepted_title"),
                          colour=discord.Colour.blurple(),
                          description=f"{shown(source.prompt, 900)}\n\n{what}")
        reference = discord.MessageReference(message_id=source_message_id,
                                             channel_id=channel_id, fail_if_not_exists=False)
        return await retried(lambda: channel.send(  # type: ignore[no-any-return]
            embed=embed, view=cancel_view(job_id, locale), reference=reference,
            allowed_mentions=NO_PINGS, nonce=f"flux-upscale-{job_id}"))


async def setup(bot: FluxBot) -> None:
    bot.add_dynamic_items(UpscaleButton, UpscalePick)
    await bot.add_cog(Upscale(bot))
