"""/lora: the catalogue (the config's `[[loras]]` plus the server's own), browsed by members and
edited by moderators. Entries from the config cannot be changed from Discord."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.catalogue import LoraChoice
from bot.errors import OptionError, UserError
from bot.i18n import translate
from bot.lora import check_lora_ref
from cogs._ui import (
    cmd,
    locale_of,
    mod_log,
    reply,
    report_error,
    require_guild,
    require_moderator,
    shorten,
    shown,
)

if TYPE_CHECKING:
    from bot.discord_bot import FluxBot
    from cogs.imagine import Imagine

PER_PAGE = 8


def _describe(locale: str, entry: LoraChoice, from_config: bool) -> str:
    parts = [f"`{shorten(entry.ref, 200)}`"]
    if entry.trigger:
        parts.append(translate("lora.trigger", locale, trigger=shown(entry.trigger, 200)))
    if entry.scale is not None:
        parts.append(translate("lora.scale", locale, scale=entry.scale))
    parts.append(translate("lora.from_config" if from_config else "lora.from_server", locale))
    if entry.description:
        parts.insert(0, shown(entry.description, 300))
    return "\n".join(parts)


async def catalogue_page(bot: FluxBot, locale: str, guild_id: int, page: int
                         ) -> tuple[discord.Embed, discord.ui.View]:
    imagine: Imagine = bot.get_cog("Imagine")  # type: ignore[assignment]
    entries = await imagine.catalogue(guild_id)
    config_names = {e.name.casefold() for e in bot.config.loras}
    pages = max(1, -(-len(entries) // PER_PAGE))
    page = min(max(1, page), pages)
    embed = discord.Embed(title=translate("lora.list_title", locale),
                          colour=discord.Colour.blurple())
    if not entries:
        embed.description = translate("lora.empty", locale)
    for entry in entries[(page - 1) * PER_PAGE: page * PER_PAGE]:
        embed.add_field(name=shorten(entry.name or entry.ref, 256),
                        value=shorten(_describe(locale, entry, (entry.name or "").casefold()
                                                in config_names), 1024), inline=False)
    embed.set_footer(text=translate("lora.page", locale, page=page, pages=pages,
                                    total=len(entries)))
    view = discord.ui.View(timeout=None)
    view.add_item(LoraPage(page - 1, "◀", disabled=page <= 1))
    view.add_item(LoraPage(page + 1, "▶", disabled=page >= pages))
    return embed, view


class LoraPage(discord.ui.DynamicItem[discord.ui.Button[Any]],
               template=r"lora:page:(?P<page>\d+)"):
    def __init__(self, page: int, label: str = "…", disabled: bool = False) -> None:
        super().__init__(discord.ui.Button(label=label, disabled=disabled,
                                           style=discord.ButtonStyle.secondary,
                                           custom_id=f"lora:page:{max(page, 0)}"))
        self.page = page

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: Any) -> LoraPage:
        return cls(int(match["page"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            embed, view = await catalogue_page(interaction.client,  # type: ignore[arg-type]
                                               locale_of(interaction),
                                               require_guild(interaction), self.page)
            await interaction.response.edit_message(embed=embed, view=view)
        except Exception as error:
            await report_error(interaction, error)


class Loras(commands.GroupCog, group_name=cmd("command.lora.name"),
            group_description=cmd("command.lora.description")):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot
        super().__init__()

    async def _find(self, guild_id: int, name: str) -> LoraChoice:
        imagine: Imagine = self.bot.get_cog("Imagine")  # type: ignore[assignment]
        wanted = name.strip().casefold()
        for entry in await imagine.catalogue(guild_id):
            if (entry.name or "").casefold() == wanted:
                return entry
        raise UserError("lora.not_found", name=shorten(name, 80).replace("`", "ˋ"))

    async def name_autocomplete(self, interaction: discord.Interaction, current: str
                                ) -> list[app_commands.Choice[str]]:
        imagine: Imagine = self.bot.get_cog("Imagine")  # type: ignore[assignment]
        wanted = current.casefold()
        return [app_commands.Choice(name=shorten(e.name, 100), value=e.name)
                for e in await imagine.catalogue(interaction.guild_id)
                if e.name and wanted in e.name.casefold()][:25]

    @app_commands.command(name=cmd("command.lora.list.name"),
                          description=cmd("command.lora.list.description"))
    @app_commands.rename(page=cmd("option.page.name"))
    @app_commands.describe(page=cmd("option.page.description"))
    async def list(self, interaction: discord.Interaction,
                   page: app_commands.Range[int, 1, 1000] = 1) -> None:
        embed, view = await catalogue_page(self.bot, locale_of(interaction),
                                           require_guild(interaction), page)
        await reply(interaction, embed=embed, view=view)

    @app_commands.command(name=cmd("command.lora.info.name"),
                          description=cmd("command.lora.info.description"))
    @app_commands.rename(name=cmd("option.lora_name.name"))
    @app_commands.describe(name=cmd("option.lora_name.description"))
    async def info(self, interaction: discord.Interaction, name: str) -> None:
        entry = await self._find(require_guild(interaction), name)
        locale = locale_of(interaction)
        from_config = any(e.name.casefold() == (entry.name or "").casefold()
                          for e in self.bot.config.loras)
        embed = discord.Embed(title=entry.name, colour=discord.Colour.blurple(),
                              description=_describe(locale, entry, from_config))
        trained = None if from_config else await self.bot.storage.loras.trained(
            require_guild(interaction), entry.name or "")
        if trained is not None:
            from cogs._training import trained_fields

            trained_fields(locale, embed, trained)
        await reply(interaction, embed=embed)

    @app_commands.command(name=cmd("command.lora.add.name"),
                          description=cmd("command.lora.add.description"))
    @app_commands.rename(name=cmd("option.lora_name.name"), ref=cmd("option.ref.name"),
                         trigger=cmd("option.trigger.name"), scale=cmd("option.scale.name"),
                         description=cmd("option.lora_description.name"))
    @app_commands.describe(name=cmd("option.lora_name.description"),
                           ref=cmd("option.ref.description"),
                           trigger=cmd("option.trigger.description"),
                           scale=cmd("option.scale.description"),
                           description=cmd("option.lora_description.description"))
    async def add(self, interaction: discord.Interaction,
                  name: app_commands.Range[str, 1, 64], ref: app_commands.Range[str, 1, 500],
                  trigger: app_commands.Range[str, 0, 200] = "",
                  scale: app_commands.Range[float, 0.0, 1.0] | None = None,
                  description: app_commands.Range[str, 0, 300] = "") -> None:
        require_moderator(self.bot, interaction)
        guild_id = require_guild(interaction)
        name = name.strip()
        if not name or any(c in name for c in "`\n\r@<>") or not name.isprintable():
            raise OptionError("lora.bad_name")
        if any(e.name.casefold() == name.casefold() for e in self.bot.config.loras):
            raise UserError("lora.config_entry", name=name)
        entry = LoraChoice(ref=check_lora_ref(ref), name=name, trigger=trigger.strip(),
                           scale=scale, description=description.strip())
        new = await self.bot.storage.loras.add(guild_id, entry, interaction.user.id)
        locale = locale_of(interaction)
        await reply(interaction, translate("lora.added" if new else "lora.updated", locale,
                                           name=name))
        await mod_log(self.bot, interaction, "modlog.lora_add", name=name, ref=entry.ref)

    @app_commands.command(name=cmd("command.lora.remove.name"),
                          description=cmd("command.lora.remove.description"))
    @app_commands.rename(name=cmd("option.lora_name.name"))
    @app_commands.describe(name=cmd("option.lora_name.description"))
    async def remove(self, interaction: discord.Interaction, name: str) -> None:
        require_moderator(self.bot, interaction)
        guild_id = require_guild(interaction)
        if any(e.name.casefold() == name.strip().casefold() for e in self.bot.config.loras):
            raise UserError("lora.config_entry", name=shorten(name, 80))
        if not await self.bot.storage.loras.remove(guild_id, name, interaction.user.id):
            raise UserError("lora.not_found", name=shorten(name, 80).replace("`", "ˋ"))
        await reply(interaction, translate("lora.removed", locale_of(interaction),
                                           name=name.strip()))
        await mod_log(self.bot, interaction, "modlog.lora_remove", name=name.strip())

    @app_commands.command(name=cmd("command.lora.train.name"),
                          description=cmd("command.lora.train.description"))
    @app_commands.rename(name=cmd("option.lora_name.name"), images=cmd("option.images.name"),
                         trigger=cmd("option.trigger.name"), steps=cmd("option.train_steps.name"),
                         description=cmd("option.lora_description.name"))
    @app_commands.describe(name=cmd("option.lora_name.description"),
                           images=cmd("option.images.description"),
                           trigger=cmd("option.train_trigger.description"),
                           steps=cmd("option.train_steps.description"),
                           description=cmd("option.lora_description.description"))
    async def train(self, interaction: discord.Interaction,
                    name: app_commands.Range[str, 1, 64], images: discord.Attachment,
                    trigger: app_commands.Range[str, 1, 60],
                    steps: app_commands.Range[int, 3, 6000] | None = None,
                    description: app_commands.Range[str, 0, 300] = "") -> None:
        from cogs._training import start_training

        self._imagine().check_place(interaction)
        await start_training(self.bot, interaction, name=name, images=images, trigger=trigger,
                             steps=steps, description=description)

    def _imagine(self) -> Imagine:
        return self.bot.get_cog("Imagine")  # type: ignore[return-value]

    info.autocomplete("name")(name_autocomplete)
    remove.autocomplete("name")(name_autocomplete)


async def setup(bot: FluxBot) -> None:
    bot.add_dynamic_items(LoraPage)
    await bot.add_cog(Loras(bot))
