"""Every cog module is in the bot's extension list, and the list loads cleanly."""

from __future__ import annotations

import importlib
import pkgutil

import cogs
from bot.discord_bot import EXTENSIONS


def test_every_cog_module_is_loaded_by_the_bot():
    modules = {f"cogs.{m.name}" for m in pkgutil.iter_modules(cogs.__path__)
               if not m.name.startswith("_")}
    assert modules == set(EXTENSIONS)
    for name in EXTENSIONS:
        assert callable(importlib.import_module(name).setup), name


async def test_the_bot_registers_its_commands_and_buttons(stack):
    from cogs.buttons import JobButton, VaryPick
    from cogs.history import HistoryPage
    from cogs.loras import LoraPage
    from cogs.upscale import UpscaleButton, UpscalePick

    names = {command.name for command in stack.bot.tree.get_commands()}
    assert names == {"imagine", "quota", "history", "settings", "lora", "mod", "help",
                     "Upscale"}
    registered = set(stack.bot._connection._view_store._dynamic_items.values())
    assert registered == {JobButton, VaryPick, HistoryPage, LoraPage, UpscaleButton,
                          UpscalePick}
