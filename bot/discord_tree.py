"""The command tree: every option checked against what the command declares before any command
runs. discord.py trusts Discord to enforce `Range`, lengths, types and choices; a modified client
or a proxy need not, and a 5,000-character name or an `Infinity` scale must not reach storage."""

from __future__ import annotations

import math
from typing import Any

import discord
from discord import app_commands
from discord.enums import AppCommandOptionType as Kind

from bot.errors import OptionError, UserError

MAX_SAFE_INTEGER = 2**53 - 1  # what Discord allows for integer options


class Refused(app_commands.CheckFailure):
    """A check that failed with a message for the member (checks must raise CheckFailure for
    discord.py to route them to the error handler)."""

    def __init__(self, error: UserError) -> None:
        super().__init__(error.key)
        self.error = error


def _shown(value: Any) -> str:
    text = str(value)
    return (text if len(text) <= 40 else text[:39] + "…").replace("`", "ˋ")


def check_option(parameter: app_commands.Parameter, value: Any) -> None:
    """Raise `OptionError` unless `value` is what `parameter` declares."""
    name = str(parameter.display_name)
    kind = parameter.type
    if kind is Kind.string:
        if not isinstance(value, str):
            raise OptionError("option.not_text", name=name)
        low, high = parameter.min_value, parameter.max_value
        if high is not None and len(value) > high:
            raise OptionError("option.too_long", name=name, length=len(value), limit=high)
        if low is not None and len(value) < low:
            raise OptionError("option.too_short", name=name, limit=low)
    elif kind in (Kind.integer, Kind.number):
        whole = kind is Kind.integer
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                not math.isfinite(value) or (whole and value != int(value)) or \
                abs(value) > MAX_SAFE_INTEGER:
            key = "option.not_whole" if whole and isinstance(value, float) and \
                math.isfinite(value) else "option.not_number"
            raise OptionError(key, name=name, value=_shown(value))
        if parameter.min_value is not None and value < parameter.min_value:
            raise OptionError("option.below", name=name, value=_shown(value),
                              low=parameter.min_value)
        if parameter.max_value is not None and value > parameter.max_value:
            raise OptionError("option.above", name=name, value=_shown(value),
                              high=parameter.max_value)
    elif kind is Kind.boolean and not isinstance(value, bool):
        raise OptionError("option.not_boolean", name=name)
    if parameter.choices and value not in [c.value for c in parameter.choices]:
        raise OptionError("option.choice", name=name, value=_shown(value),
                          choices=", ".join(str(c.value) for c in parameter.choices[:25]))


class FluxTree(app_commands.CommandTree):  # type: ignore[type-arg]
    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        data: Any = interaction.data or {}
        if interaction.type is not discord.InteractionType.application_command or \
                data.get("type", 1) != 1:
            return True  # autocomplete sends half-typed values; menus carry no options
        try:
            command, options = self._get_app_command_options(data)
        except app_commands.AppCommandError:
            return True  # discord.py answers an unknown command itself
        parameters = {str(p.display_name): p for p in command.parameters}
        for option in options:
            parameter = parameters.get(option.get("name", ""))
            if parameter is not None and "value" in option:
                try:
                    check_option(parameter, option["value"])
                except UserError as error:
                    raise Refused(error) from None
        return True
