"""Buttons on job messages: Cancel while running; Reroll, Vary, Remix and Delete on results.

Each is a `DynamicItem` whose custom_id carries the generation id (`imagine:reroll:42`), so a
button pressed after a restart still works: everything else is read from the database.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from bot.errors import OptionError, UserError
from bot.jobs import CancelOutcome
from bot.storage.history import Generation
from cogs._ui import is_moderator, locale_of, reply, report_error, tr

if TYPE_CHECKING:
    from bot.discord_bot import FluxBot
    from cogs.imagine import Imagine
    from cogs.jobs import Jobs

log = logging.getLogger("cogs.buttons")

STYLES = {"cancel": discord.ButtonStyle.danger, "reroll": discord.ButtonStyle.secondary,
          "vary": discord.ButtonStyle.secondary, "remix": discord.ButtonStyle.secondary,
          "delete": discord.ButtonStyle.danger}
REMIX_TIMEOUT = 15 * 60
EMOJI = {"cancel": "✖️", "reroll": "🎲", "vary": "🔀", "remix": "✏️", "delete": "🗑️"}


def _button(action: str, job_id: int, locale: str) -> JobButton:
    return JobButton(action, job_id, label=tr(locale, f"button.{action}"))


def cancel_view(job_id: int, locale: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(_button("cancel", job_id, locale))
    return view


def result_view(job_id: int, locale: str, images: int = 0) -> discord.ui.View:
    """A result's buttons; with `images`, a second row to upscale each (U1…U4)."""
    from cogs.upscale import upscale_buttons

    view = discord.ui.View(timeout=None)
    for action in ("reroll", "vary", "remix", "delete"):
        view.add_item(_button(action, job_id, locale))
    for button in upscale_buttons(job_id, images, locale):
        view.add_item(button)
    return view


def delete_view(job_id: int, locale: str) -> discord.ui.View:
    """An upscale's only button: its requester (or a moderator) may remove it."""
    view = discord.ui.View(timeout=None)
    view.add_item(_button("delete", job_id, locale))
    return view


def _jobs(bot: FluxBot) -> Jobs:
    cog = bot.get_cog("Jobs")
    assert cog is not None
    return cog  # type: ignore[return-value]


def _imagine(bot: FluxBot) -> Imagine:
    cog = bot.get_cog("Imagine")
    assert cog is not None
    return cog  # type: ignore[return-value]


async def _job(bot: FluxBot, job_id: int) -> Generation:
    job = await bot.storage.history.get(job_id)
    if job is None:
        raise UserError("imagine.not_found")
    return job


def _next(job: Generation, **changes: Any) -> dict[str, Any]:
    """A new job from an old one: same options, a new seed."""
    return {**job.options, "seed": None, **changes}


class JobButton(discord.ui.DynamicItem[discord.ui.Button[Any]],
                template=r"imagine:(?P<action>cancel|reroll|vary|remix|delete):(?P<id>\d+)"):
    def __init__(self, action: str, job_id: int, label: str | None = None) -> None:
        super().__init__(discord.ui.Button(
            label=label, style=STYLES[action], emoji=EMOJI[action],
            custom_id=f"imagine:{action}:{job_id}"))
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: Any) -> JobButton:
        return cls(match["action"], int(match["id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            await getattr(self, self.action)(interaction, interaction.client)
        except Exception as error:  # the one error handler answers every failure
            await report_error(interaction, error)

    def _may_manage(self, bot: FluxBot, interaction: discord.Interaction, job: Generation
                    ) -> bool:
        return interaction.user.id == job.user_id or is_moderator(bot, interaction)

    async def cancel(self, interaction: discord.Interaction, bot: FluxBot) -> None:
        job = await _job(bot, self.job_id)
        if not self._may_manage(bot, interaction, job):
            raise UserError("imagine.not_yours")
        await interaction.response.defer(ephemeral=True, thinking=False)
        outcome = await _jobs(bot).cancel(self.job_id, job.guild_id)
        if outcome is not CancelOutcome.CANCELED:  # the message says it when it is canceled
            await reply(interaction, tr(interaction, f"imagine.cancel_{outcome.value}"))

    async def reroll(self, interaction: discord.Interaction, bot: FluxBot) -> None:
        job = await _job(bot, self.job_id)
        await _imagine(bot).launch(interaction, {}, base=_next(job), parent_id=job.id)

    async def vary(self, interaction: discord.Interaction, bot: FluxBot) -> None:
        job = await _job(bot, self.job_id)
        attachments = interaction.message.attachments if interaction.message else []
        if not attachments:
            raise UserError("imagine.not_found")
        if len(attachments) == 1:
            await _imagine(bot).launch(interaction, {"image": attachments[0].url},
                                       base=_next(job), parent_id=job.id)
            return
        view = discord.ui.View(timeout=None)
        view.add_item(VaryPick(job.id, len(attachments), locale_of(interaction)))
        await interaction.response.send_message(tr(interaction, "imagine.vary_pick"),
                                                view=view, ephemeral=True)

    async def remix(self, interaction: discord.Interaction, bot: FluxBot) -> None:
        job = await _job(bot, self.job_id)
        await interaction.response.send_modal(RemixForm(bot, job, locale_of(interaction)))

    async def delete(self, interaction: discord.Interaction, bot: FluxBot) -> None:
        job = await _job(bot, self.job_id)
        if not self._may_manage(bot, interaction, job):
            raise UserError("imagine.not_yours")
        await interaction.response.defer(ephemeral=True, thinking=False)
        if interaction.message is not None:
            await interaction.message.delete()
        await reply(interaction, tr(interaction, "imagine.deleted"))


class VaryPick(discord.ui.DynamicItem[discord.ui.Select[Any]],
               template=r"imagine:varypick:(?P<id>\d+)"):
    """Which output to vary, when a result has several."""

    def __init__(self, job_id: int, count: int = 4, locale: str = "en-US") -> None:
        super().__init__(discord.ui.Select(
            custom_id=f"imagine:varypick:{job_id}",
            placeholder=tr(locale, "imagine.vary_pick"),
            options=[discord.SelectOption(label=tr(locale, "imagine.vary_option", n=i + 1),
                                          value=str(i)) for i in range(count)]))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: Any) -> VaryPick:
        return cls(int(match["id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: FluxBot = interaction.client  # type: ignore[assignment]
        try:
            job = await _job(bot, self.job_id)
            index = int(self.item.values[0])
            if job.message_id is None:
                raise UserError("imagine.not_found")
            channel = bot.get_partial_messageable(job.channel_id)
            message = await channel.fetch_message(job.message_id)
            if not 0 <= index < len(message.attachments):
                raise UserError("imagine.not_found")
            await _imagine(bot).launch(interaction, {"image": message.attachments[index].url},
                                       base=_next(job), parent_id=job.id)
        except discord.NotFound:
            await report_error(interaction, UserError("imagine.not_found"))
        except Exception as error:
            await report_error(interaction, error)


class RemixForm(discord.ui.Modal):
    """A new job from an old one, with the prompt, LoRA and scale to change."""

    def __init__(self, bot: FluxBot, job: Generation, locale: str) -> None:
        # a form the member dismisses is never answered: forget it after the token's life
        super().__init__(title=tr(locale, "imagine.remix_title"),
                         custom_id=f"imagine:remixform:{job.id}", timeout=REMIX_TIMEOUT)
        self.bot = bot
        self.job = job
        limit = min(4000, bot.config.limits.max_prompt_length)
        self.prompt = discord.ui.TextInput(
            label=tr(locale, "imagine.remix_prompt"), style=discord.TextStyle.paragraph,
            default=job.prompt[:limit], max_length=limit)
        self.lora = discord.ui.TextInput(
            label=tr(locale, "imagine.remix_lora"), required=False, max_length=500,
            default=(job.options.get("lora") or "")[:500])
        scale = job.options.get("lora_scale")
        self.scale = discord.ui.TextInput(
            label=tr(locale, "imagine.remix_scale"), required=False, max_length=10,
            default="" if scale is None else str(scale))
        for item in (self.prompt, self.lora, self.scale):
            self.add_item(item)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        given: dict[str, Any] = {"prompt": self.prompt.value, "lora": self.lora.value.strip()}
        text = self.scale.value.strip().replace(",", ".")
        if text:
            try:
                given["lora_scale"] = float(text)
            except ValueError:
                raise OptionError("option.not_number", name="lora_scale",
                                  value=text[:20].replace("`", "ˋ")) from None
        base = _next(self.job, lora=None) if not given["lora"] else _next(self.job)
        if not given["lora"]:
            del given["lora"]
        await _imagine(self.bot).launch(interaction, given, base=base, parent_id=self.job.id)

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        await report_error(interaction, error)


async def setup(bot: commands.Bot) -> None:
    bot.add_dynamic_items(JobButton, VaryPick)
