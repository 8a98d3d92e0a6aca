"""/imagine: check, charge, post the job, and hand it to the job runner."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.catalogue import LoraChoice, add_trigger, resolve_lora
from bot.errors import OptionError, UserError
from bot.images import fetchable
from bot.limits import check_counts, check_length, check_prompt
from bot.model import ASPECT_RATIOS, MAX_SEED, OUTPUT_FORMATS, GenerationOptions, validate
from bot.storage.quota import Interaction, JobRequest, QuotaRefused
from cogs._budget import expected_cost, tell_budget
from cogs._delivery import DiscordReporter
from cogs._ui import NO_PINGS, cmd, job_embed, locale_of, role_ids, shorten, shown, tr

if TYPE_CHECKING:
    from bot.discord_bot import FluxBot

log = logging.getLogger("cogs.imagine")

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
MAX_ATTACHMENT = 20 * 1024 * 1024
OPTION_NAMES = ("lora", "lora_scale", "aspect_ratio", "num_outputs", "seed", "steps",
                "guidance", "prompt_strength", "output_format", "output_quality")


class Imagine(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        # the command's ranges follow [limits]; the checks below hold whatever Discord sends
        limits = self.bot.config.limits
        params = self.imagine._params
        params["prompt"].max_value = limits.max_prompt_length  # max_length, for a string
        params["num_outputs"].max_value = limits.max_num_outputs
        params["steps"].max_value = limits.max_steps

    # -- the command ------------------------------------------------------------------------

    @app_commands.command(name=cmd("command.imagine.name"),
                          description=cmd("command.imagine.description"))
    @app_commands.describe(**{name: cmd(f"option.{name}.description") for name in (
        "prompt", "image", *OPTION_NAMES)})
    @app_commands.rename(**{name: cmd(f"option.{name}.name") for name in (
        "prompt", "image", *OPTION_NAMES)})
    @app_commands.choices(
        aspect_ratio=[app_commands.Choice(name=cmd(f"choice.aspect.{r.replace(':', '_')}"),
                                          value=r) for r in ASPECT_RATIOS],
        output_format=[app_commands.Choice(name=f, value=f) for f in OUTPUT_FORMATS])
    async def imagine(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 6000],
        lora: str | None = None,
        lora_scale: app_commands.Range[float, 0.0, 1.0] | None = None,
        aspect_ratio: str | None = None,
        num_outputs: app_commands.Range[int, 1, 4] | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        steps: app_commands.Range[int, 1, 50] | None = None,
        guidance: app_commands.Range[float, 0.0, 10.0] | None = None,
        image: discord.Attachment | None = None,
        prompt_strength: app_commands.Range[float, 0.0, 1.0] | None = None,
        output_format: str | None = None,
        output_quality: app_commands.Range[int, 0, 100] | None = None,
    ) -> None:
        given = {"prompt": prompt, "lora": lora, "lora_scale": lora_scale,
                 "aspect_ratio": aspect_ratio, "num_outputs": num_outputs, "seed": seed,
                 "steps": steps, "guidance": guidance, "prompt_strength": prompt_strength,
                 "output_format": output_format, "output_quality": output_quality}
        if image is not None:
            given["image"] = self.attachment_url(image)
        await self.launch(interaction, {k: v for k, v in given.items() if v is not None})

    @imagine.autocomplete("lora")
    async def lora_autocomplete(self, interaction: discord.Interaction, current: str
                                ) -> list[app_commands.Choice[str]]:
        wanted = current.casefold().strip()
        choices: list[app_commands.Choice[str]] = []
        seen: set[str] = set()
        for entry in await self.catalogue(interaction.guild_id):
            label = f"{entry.name} — {entry.description}" if entry.description else entry.name
            if entry.name and (wanted in entry.name.casefold() or wanted in label.casefold()):
                choices.append(app_commands.Choice(name=shorten(label, 100), value=entry.name))
                seen.add(entry.ref.casefold())
        recent = await self.bot.storage.history.recent_loras(interaction.guild_id or 0,
                                                              interaction.user.id)
        for ref in recent:
            if wanted in ref.casefold() and ref.casefold() not in seen and len(ref) <= 100:
                choices.append(app_commands.Choice(name=shorten(ref, 100), value=ref))
        return choices[:25]

    # -- building a job ---------------------------------------------------------------------

    async def catalogue(self, guild_id: int | None) -> list[LoraChoice]:
        """The config's `[[loras]]`, then the server's own."""
        entries = [LoraChoice(ref=e.ref, name=e.name, trigger=e.trigger, scale=e.scale,
                              description=e.description) for e in self.bot.config.loras]
        if guild_id:
            names = {e.name.casefold() for e in entries if e.name}
            entries += [e for e in await self.bot.storage.loras.list(guild_id)
                        if e.name and e.name.casefold() not in names]
        return entries

    def attachment_url(self, image: discord.Attachment) -> str:
        """An attachment is checked by what Discord tells of it here; its bytes are checked
        before the prediction is created."""
        if not self.bot.config.limits.allow_img2img:
            raise OptionError("check.img2img_off")
        kind = (image.content_type or "").split(";")[0].strip().lower()
        if kind not in IMAGE_TYPES or not image.width or not image.height:
            raise OptionError("check.image_not_image")
        if image.size > MAX_ATTACHMENT:
            raise OptionError("check.image_too_large", size=round(image.size / 2**20, 1),
                              limit=MAX_ATTACHMENT // 2**20)
        return image.url

    def check_place(self, interaction: discord.Interaction) -> None:
        config = self.bot.config.discord
        if self.bot.runner is None or self.bot.runner.closing:
            raise UserError("check.shutting_down")
        if interaction.guild_id is None:
            if not config.allow_dms:
                raise UserError("check.dms_off")
            return
        allowed = config.allowed_channel_ids
        channel = interaction.channel
        parent = getattr(channel, "parent_id", None)
        if allowed and interaction.channel_id not in allowed and parent not in allowed:
            raise UserError("check.channel_not_allowed",
                            channels=" ".join(f"<#{c}>" for c in allowed[:10]))

    async def compose(self, interaction: discord.Interaction, given: dict[str, Any],
                      base: dict[str, Any] | None = None) -> tuple[GenerationOptions,
                                                                 LoraChoice | None]:
        """The options of a new job: what was given, else `base` (a button's job), else the
        member's defaults, else `[defaults]`; then every server limit and model bound."""
        config = self.bot.config
        limits = config.limits
        personal = {} if base is not None else await self.bot.storage.settings.get(
            interaction.user.id)
        fallback = base if base is not None else {**config.defaults.model_dump(), **personal}

        def pick(name: str) -> Any:
            return given[name] if given.get(name) is not None else fallback.get(name)

        prompt = check_prompt(str(given.get("prompt") or (base or {}).get("prompt") or ""),
                              limits)
        lora_value = pick("lora")
        lora = None
        if lora_value:
            lora = resolve_lora(str(lora_value), await self.catalogue(interaction.guild_id),
                                allow_custom=limits.allow_custom_lora)
        # lora_scale: given, else the button's job (same LoRA), else the member's default,
        # else the catalogue entry's, else [defaults]
        scale = given.get("lora_scale")
        if scale is None and base is not None and "lora" not in given:
            scale = base.get("lora_scale")
        if scale is None:
            scale = personal.get("lora_scale")
        if scale is None and lora is not None and lora.scale is not None:
            scale = lora.scale
        if scale is None:
            scale = config.defaults.lora_scale
        num_outputs, steps = pick("num_outputs"), pick("steps")
        image = given.get("image", (base or {}).get("image"))
        check_counts(num_outputs, steps, image, limits)
        if image and not fetchable(image, self.bot.image_hosts()):
            raise OptionError("check.image_host")  # a forged attachment: nothing is fetched
        nsfw = bool(getattr(interaction.channel, "nsfw", False))
        options = GenerationOptions(
            prompt=add_trigger(prompt, lora.trigger) if lora else prompt,
            lora=lora.ref if lora else None, lora_scale=scale,
            aspect_ratio=pick("aspect_ratio"), num_outputs=num_outputs,
            seed=given.get("seed"), steps=steps, guidance=pick("guidance"), image=image,
            prompt_strength=pick("prompt_strength"), output_format=pick("output_format"),
            output_quality=pick("output_quality"),
            disable_safety_checker=limits.disable_safety_checker and nsfw)
        check_length(options.prompt)
        return validate(options), lora

    async def launch(self, interaction: discord.Interaction, given: dict[str, Any], *,
                     base: dict[str, Any] | None = None, parent_id: int | None = None) -> None:
        """Check, reserve, answer with the job's public message, start the job."""
        self.check_place(interaction)
        options, lora = await self.compose(interaction, given, base)
        member = interaction.user
        locale = locale_of(interaction)
        guild_id = interaction.guild_id or 0
        request = JobRequest(
            guild_id=guild_id, channel_id=interaction.channel_id or 0,
            user_id=member.id, prompt=options.prompt, options=options.to_dict(),
            images=options.num_outputs, role_ids=role_ids(member), lora=options.lora,
            lora_scale=options.lora_scale if options.lora else None, parent_id=parent_id,
            interaction=Interaction(application_id=interaction.application_id,
                                    token=interaction.token,
                                    created_at=interaction.created_at.timestamp(),
                                    locale=locale,
                                    upload_limit=interaction.filesize_limit),
            expected_micros=await expected_cost(self.bot, options))
        try:
            reservation = await self.bot.storage.quota.reserve(request)
        except QuotaRefused as refused:
            if refused.key.startswith("budget."):  # the moderators hear of it, once
                tell_budget(self.bot, guild_id, refused.key)
            raise
        tell_budget(self.bot, guild_id)
        job_id = reservation.job_id
        assert self.bot.runner is not None
        from cogs.buttons import cancel_view

        embed = job_embed(locale, job_id, title=tr(locale, "imagine.accepted_title"),
                          colour=discord.Colour.blurple(),
                          description=shown(options.prompt, 1000))
        message_id: int | None = None
        try:
            response = await interaction.response.send_message(
                embed=embed, view=cancel_view(job_id, locale), allowed_mentions=NO_PINGS)
            message_id = response.message_id if response is not None else None
        except Exception as exc:
            # a reset or a time-out says nothing of whether Discord took the answer: look
            message_id = None if isinstance(exc, discord.HTTPException) else \
                await self._answered(interaction)
            if message_id is None:
                await self.bot.storage.quota.refund(job_id,
                                                    error="could not answer the interaction")
                raise
        if message_id is not None:  # else the reporter asks Discord for it when it edits
            await self.bot.storage.history.set_message(job_id, message_id)
        reporter = DiscordReporter(
            self.bot, job_id=job_id, user_id=member.id, channel_id=interaction.channel_id or 0,
            message_id=message_id, locale=locale, application_id=interaction.application_id,
            token=interaction.token, token_at=interaction.created_at.timestamp(),
            upload_limit=interaction.filesize_limit)
        log.info("job %d accepted (%d images, lora %s)", job_id, options.num_outputs,
                 lora.name if lora and lora.name else options.lora or "-", extra={"job": job_id})
        self.bot.runner.start(job_id, options, reporter)


    async def _answered(self, interaction: discord.Interaction) -> int | None:
        """The id of the job's message if the answer reached Discord after all."""
        try:
            return (await interaction.original_response()).id
        except Exception:  # not found, or Discord still out of reach: it did not land
            return None


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Imagine(bot))
