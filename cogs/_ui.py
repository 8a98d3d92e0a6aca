"""Discord helpers shared by the cogs: localized text, the one reply helper, the one error
handler, the moderator check, and the embeds that show a job."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
from discord import app_commands

from bot.discord_tree import Refused
from bot.errors import UserError
from bot.i18n import catalogue, resolve, translate
from bot.images import Fitted
from bot.replicate.prediction import Progress

if TYPE_CHECKING:
    from bot.discord_bot import FluxBot
    from bot.storage.history import Generation

log = logging.getLogger("cogs")

NO_PINGS = discord.AllowedMentions.none()
# what a Discord call can raise besides an answer: resets, time-outs, a proxy gone
TRANSPORT = (aiohttp.ClientError, OSError, TimeoutError)


def only(user_id: int) -> discord.AllowedMentions:
    """Mentions that ping nobody but `user_id`, whatever the text says."""
    return discord.AllowedMentions(everyone=False, roles=False, replied_user=False,
                                   users=[discord.Object(user_id)])


def locale_of(interaction: discord.Interaction) -> str:
    """The member's language if we ship it, else `discord.default_locale`."""
    return resolve(str(interaction.locale) if interaction.locale else None)


def tr(interaction: discord.Interaction | str | None, key: str, /, **params: Any) -> str:
    locale = interaction if isinstance(interaction, str) or interaction is None \
        else locale_of(interaction)
    return translate(key, locale, **params)


def cmd(key: str) -> app_commands.locale_str:
    """A command, option or choice text: English in code, every locale from the catalogue."""
    return app_commands.locale_str(catalogue("en-US")[key], key=key)


class CatalogueTranslator(app_commands.Translator):
    """Gives Discord the zh-CN names and descriptions when commands are synced."""

    async def translate(self, string: app_commands.locale_str, locale: discord.Locale,
                        context: app_commands.TranslationContextTypes) -> str | None:
        key = string.extras.get("key")
        if key is None or locale.value != "zh-CN":
            return None
        return catalogue("zh-CN").get(key)


def is_moderator(bot: FluxBot, interaction: discord.Interaction) -> bool:
    """Manage Server, or a role from `discord.moderator_role_ids`; checked here, whatever
    Discord's command permissions say."""
    member = interaction.user
    if not isinstance(member, discord.Member):
        return False
    if interaction.permissions.manage_guild:
        return True
    moderator_roles = set(bot.config.discord.moderator_role_ids)
    return any(role.id in moderator_roles for role in member.roles)


async def reply(interaction: discord.Interaction, content: str | None = None, *,
                ephemeral: bool = True, **kwargs: Any) -> None:
    """Answer whatever state the interaction is in: first response, followup, or a channel
    message once the token has expired."""
    kwargs.setdefault("allowed_mentions", NO_PINGS)
    if content is not None:
        content = shorten(content, 2000)
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(content, ephemeral=ephemeral, **kwargs)
            return
        if not interaction.is_expired():
            await interaction.followup.send(content or discord.utils.MISSING,
                                            ephemeral=ephemeral, **kwargs)
            return
    except discord.NotFound:
        pass  # the token died under us: fall through to the channel
    channel = interaction.channel
    if isinstance(channel, discord.abc.Messageable):
        kwargs.pop("view", None)
        await channel.send(shorten(f"{interaction.user.mention} {content or ''}".strip(), 2000),
                           allowed_mentions=only(interaction.user.id),
                           **{k: v for k, v in kwargs.items() if k != "allowed_mentions"})


async def report_error(interaction: discord.Interaction, error: Exception) -> None:
    """The one error handler for commands, buttons and forms: the member always hears what
    went wrong in their language; a traceback goes to the log, never to Discord."""
    original = getattr(error, "original", error)
    if isinstance(original, Refused):
        original = original.error
    if isinstance(original, UserError):
        message = original.message(locale_of(interaction))
    elif isinstance(error, app_commands.CheckFailure):
        message = tr(interaction, "check.not_allowed")
    elif isinstance(original, TRANSPORT):  # Discord out of reach: a line, not a traceback
        log.warning("%s: Discord could not be reached (%s)", _describe(interaction),
                    type(original).__name__)
        message = tr(interaction, "error.unexpected")
    else:
        log.error("unexpected error in %s", _describe(interaction), exc_info=original)
        message = tr(interaction, "error.unexpected")
    try:
        await reply(interaction, message)
    except Exception as exc:  # Discord refused, or we are shutting down: never raise here
        log.warning("could not tell the member about an error in %s: %s",
                    _describe(interaction), type(exc).__name__)


def _describe(interaction: discord.Interaction) -> str:
    if interaction.command is not None:
        return f"/{interaction.command.qualified_name}"
    data = interaction.data or {}
    return str(data.get("custom_id", interaction.type.name))


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown(text: str, limit: int) -> str:
    """Member text as displayed by the bot: shortened, markdown and links inert."""
    return discord.utils.escape_markdown(shorten(text, limit))


def bar(progress: Progress, width: int = 16) -> str:
    if not progress.total:
        return "▱" * width
    done = width * (progress.step or 0) // progress.total
    return "▰" * done + "▱" * (width - done)


def job_embed(locale: str, job_id: int, *, title: str, colour: discord.Colour,
              description: str) -> discord.Embed:
    embed = discord.Embed(title=title, colour=colour, description=description)
    embed.set_footer(text=translate("imagine.footer", locale, job=job_id))
    return embed


def result_embed(locale: str, job: Generation, *, seed: int | None, elapsed: float,
                 cost: float | None, filtered: int, fitted: Fitted | None = None,
                 limit: int = 0) -> discord.Embed:
    options = job.options
    embed = discord.Embed(title=translate("imagine.done_title", locale),
                          colour=discord.Colour.green(),
                          description=shown(job.prompt, 1000))
    lora = options.get("lora")
    if lora:
        embed.add_field(name=translate("imagine.field_lora", locale),
                        value=shown(f"{lora} × {options.get('lora_scale')}", 1000), inline=False)
    for key, value in (("field_seed", seed if seed is not None else "—"),
                       ("field_steps", options.get("steps")),
                       ("field_guidance", options.get("guidance")),
                       ("field_aspect", options.get("aspect_ratio")),
                       ("field_time", f"{elapsed:.1f} s")):
        embed.add_field(name=translate(f"imagine.{key}", locale), value=str(value))
    embed.add_field(name=translate("imagine.field_cost", locale),
                    value=f"${cost:.4f}" if cost is not None else "—")
    if filtered:
        embed.add_field(name=translate("imagine.filtered_title", locale),
                        value=translate("imagine.filtered", locale, count=filtered), inline=False)
    _fitted_field(embed, locale, fitted, limit)
    embed.set_footer(text=translate("imagine.footer", locale, job=job.id))
    return embed


def upscale_embed(locale: str, job: Generation, *, elapsed: float, cost: float | None,
                  fitted: Fitted | None = None, limit: int = 0) -> discord.Embed:
    """An upscale's result: what it was made from (the job, which image, its details), how
    much larger, and whether it had to be re-encoded to be posted."""
    options = job.options
    details = options.get("details") or {}
    scale = options.get("scale")
    embed = discord.Embed(title=translate("imagine.done_title", locale),
                          colour=discord.Colour.green(),
                          description=shown(job.prompt, 1000))
    embed.add_field(name=translate("upscale.field_what", locale),
                    value=upscale_line(locale, job), inline=False)
    width, height = (int(options.get("width") or 0) * int(scale or 1),
                     int(options.get("height") or 0) * int(scale or 1))
    if fitted is not None and fitted.size is not None:
        width, height = fitted.size
    if width and height:
        embed.add_field(name=translate("upscale.field_size", locale), value=f"{width}×{height}")
    if details.get("lora"):
        embed.add_field(name=translate("imagine.field_lora", locale),
                        value=shown(f"{details['lora']} × {details.get('lora_scale')}", 1000),
                        inline=False)
    if details.get("seed") is not None:
        embed.add_field(name=translate("imagine.field_seed", locale), value=str(details["seed"]))
    embed.add_field(name=translate("imagine.field_time", locale), value=f"{elapsed:.1f} s")
    embed.add_field(name=translate("imagine.field_cost", locale),
                    value=f"${cost:.4f}" if cost is not None else "—")
    _fitted_field(embed, locale, fitted, limit)
    embed.set_footer(text=translate("imagine.footer", locale, job=job.id))
    return embed


def upscale_line(locale: str, job: Generation) -> str:
    """What an upscale is of: "2× · image 2 of #42" (and face enhancement when on)."""
    options = job.options
    what = translate("upscale.field_what_value", locale, scale=options.get("scale"),
                     image=int(options.get("source_index", 0)) + 1,
                     job=options.get("source_job") or "—")
    if options.get("face_enhance"):
        what += " · " + translate("upscale.face_enhance", locale)
    return what


def _fitted_field(embed: discord.Embed, locale: str, fitted: Fitted | None,
                  limit: int) -> None:
    """Say so when an image had to be re-encoded (or shrunk) to fit the upload limit."""
    if fitted is None or not fitted.reencoded:
        return
    size = f"{limit / 2**20:.0f} MB"
    text = translate("imagine.fitted", locale, quality=fitted.quality, limit=size) \
        if fitted.size is None else translate("imagine.fitted_smaller", locale,
                                              quality=fitted.quality, limit=size,
                                              size=f"{fitted.size[0]}×{fitted.size[1]}")
    embed.add_field(name=translate("imagine.fitted_title", locale), value=text, inline=False)


def require_moderator(bot: FluxBot, interaction: discord.Interaction) -> None:
    """Refuse (in the member's language) unless the member moderates this server."""
    if interaction.guild_id is None or not is_moderator(bot, interaction):
        raise UserError("check.not_moderator")


def require_guild(interaction: discord.Interaction) -> int:
    if interaction.guild_id is None:
        raise UserError("check.guild_only")
    return interaction.guild_id


async def mod_log(bot: FluxBot, interaction: discord.Interaction, key: str, **params: Any
                  ) -> None:
    """Post a moderator action in `discord.mod_log_channel_id` (if set), in the server's
    default language, pinging nobody."""
    await post_mod_log(bot, translate(key, None, moderator=interaction.user.mention,
                                      **params))


async def post_mod_log(bot: FluxBot, text: str) -> None:
    """Post `text` in the mod-log channel, if there is one."""
    channel_id = bot.config.discord.mod_log_channel_id
    if not channel_id:
        return
    try:
        await bot.get_partial_messageable(channel_id).send(text, allowed_mentions=NO_PINGS)
    except discord.HTTPException as exc:
        log.warning("mod log channel %s refused a message (%s)", channel_id, exc.status)


def quota_fields(locale: str, embed: discord.Embed, status: Any) -> discord.Embed:
    """The member's credits per period, bonus and what is in flight, on `embed`."""
    for period in status.periods:
        name = translate(f"quota.period_{period.period}", locale)
        if period.limit:
            value = translate("quota.used_of", locale, used=period.used, limit=period.limit,
                              left=int(period.left), resets=int(period.resets_at))
        else:
            value = translate("quota.used_unlimited", locale, used=period.used)
        embed.add_field(name=name, value=value, inline=False)
    embed.add_field(name=translate("quota.bonus", locale), value=str(status.bonus))
    embed.add_field(name=translate("quota.in_flight", locale), value=str(status.in_flight))
    if status.guild is not None:
        embed.add_field(name=translate("quota.server", locale),
                        value=translate("quota.used_of", locale, used=status.guild.used,
                                        limit=status.guild.limit, left=int(status.guild.left),
                                        resets=int(status.guild.resets_at)), inline=False)
    if status.banned:
        embed.add_field(name=translate("quota.banned_title", locale),
                        value=status.ban_reason or "—", inline=False)
    return embed


def role_ids(member: discord.abc.User) -> tuple[int, ...]:
    return tuple(r.id for r in getattr(member, "roles", []))
