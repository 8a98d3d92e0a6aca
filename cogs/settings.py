"""/settings: a member's personal defaults for /imagine, checked exactly as /imagine checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import UserError
from bot.i18n import translate
from bot.model import ASPECT_RATIOS, OUTPUT_FORMATS
from cogs._ui import cmd, locale_of, reply

if TYPE_CHECKING:
    from bot.discord_bot import FluxBot
    from cogs.imagine import Imagine

KEYS = ("lora", "lora_scale", "aspect_ratio", "num_outputs", "steps", "guidance",
        "prompt_strength", "output_format", "output_quality")


class Settings(commands.GroupCog, group_name=cmd("command.settings.name"),
               group_description=cmd("command.settings.description")):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot
        super().__init__()

    def _imagine(self) -> Imagine:
        return self.bot.get_cog("Imagine")  # type: ignore[return-value]

    async def _embed(self, interaction: discord.Interaction, values: dict[str, Any]
                     ) -> discord.Embed:
        locale = locale_of(interaction)
        defaults = self.bot.config.defaults.model_dump()
        embed = discord.Embed(title=translate("settings.title", locale),
                              colour=discord.Colour.blurple())
        for key in KEYS:
            if key in values:
                value = f"**{values[key]}**"
            else:
                value = translate("settings.server_default", locale,
                                  value=defaults.get(key) if defaults.get(key) is not None
                                  else "—")
            embed.add_field(name=translate(f"option.{key}.name", locale), value=value)
        return embed

    @app_commands.command(name=cmd("command.settings.view.name"),
                          description=cmd("command.settings.view.description"))
    async def view(self, interaction: discord.Interaction) -> None:
        values = await self.bot.storage.settings.get(interaction.user.id)
        await reply(interaction, embed=await self._embed(interaction, values))

    @app_commands.command(name=cmd("command.settings.set.name"),
                          description=cmd("command.settings.set.description"))
    @app_commands.rename(**{k: cmd(f"option.{k}.name") for k in KEYS})
    @app_commands.describe(**{k: cmd(f"option.{k}.description") for k in KEYS})
    @app_commands.choices(
        aspect_ratio=[app_commands.Choice(name=cmd(f"choice.aspect.{r.replace(':', '_')}"),
                                          value=r) for r in ASPECT_RATIOS],
        output_format=[app_commands.Choice(name=f, value=f) for f in OUTPUT_FORMATS])
    async def set(self, interaction: discord.Interaction, lora: str | None = None,
                  lora_scale: app_commands.Range[float, 0.0, 1.0] | None = None,
                  aspect_ratio: str | None = None,
                  num_outputs: app_commands.Range[int, 1, 4] | None = None,
                  steps: app_commands.Range[int, 1, 50] | None = None,
                  guidance: app_commands.Range[float, 0.0, 10.0] | None = None,
                  prompt_strength: app_commands.Range[float, 0.0, 1.0] | None = None,
                  output_format: str | None = None,
                  output_quality: app_commands.Range[int, 0, 100] | None = None) -> None:
        given = {k: v for k, v in {
            "lora": lora, "lora_scale": lora_scale, "aspect_ratio": aspect_ratio,
            "num_outputs": num_outputs, "steps": steps, "guidance": guidance,
            "prompt_strength": prompt_strength, "output_format": output_format,
            "output_quality": output_quality}.items() if v is not None}
        if not given:
            raise UserError("settings.nothing")
        # the same checks as /imagine: limits, catalogue, model bounds
        await self._imagine().compose(interaction, {"prompt": "settings", **given})
        values = await self.bot.storage.settings.update(interaction.user.id, given)
        await reply(interaction, translate("settings.saved", locale_of(interaction)),
                    embed=await self._embed(interaction, values))

    @set.autocomplete("lora")
    async def lora_autocomplete(self, interaction: discord.Interaction, current: str
                                ) -> list[app_commands.Choice[str]]:
        return await self._imagine().lora_autocomplete(interaction, current)

    @app_commands.command(name=cmd("command.settings.reset.name"),
                          description=cmd("command.settings.reset.description"))
    async def reset(self, interaction: discord.Interaction) -> None:
        await self.bot.storage.settings.reset(interaction.user.id)
        await reply(interaction, translate("settings.cleared", locale_of(interaction)))


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Settings(bot))
