"""The Discord client: a `commands.Bot` whose `setup_hook` opens the resources the cogs use."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

import aiohttp
import discord
import yarl
from discord.ext import commands

from bot.config import Config
from bot.replicate.client import ReplicateClient

log = logging.getLogger(__name__)

EXTENSIONS: tuple[str, ...] = ()


def use_endpoints(config: Config) -> None:
    """Point discord.py at `discord.api_base` and `discord.gateway_url` (REST proxies, tests).
    The attribute is set, not the class replaced: discord.py's webhook module imported it."""
    discord.http.Route.BASE = config.discord.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(config.discord.gateway_url)


class FluxBot(commands.Bot):
    """Holds the config, the shared HTTP session and the Replicate client."""

    def __init__(self, config: Config, *, sync_commands: bool = False, **options: object) -> None:
        super().__init__(command_prefix=commands.when_mentioned,
                         intents=discord.Intents(guilds=True), help_command=None,
                         **options)  # type: ignore[arg-type]
        self.config = config
        self.sync_commands = sync_commands
        self.http_session: aiohttp.ClientSession | None = None
        self.replicate: ReplicateClient | None = None

    async def setup_hook(self) -> None:
        self.http_session = aiohttp.ClientSession()
        self.replicate = ReplicateClient.from_settings(self.http_session, self.config.replicate)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.sync_commands:
            await self.sync_app_commands()

    async def sync_app_commands(self) -> None:
        """Register the slash commands: to `guild_ids` (instant) or globally."""
        if self.config.discord.guild_ids:
            for guild_id in self.config.discord.guild_ids:
                guild = discord.Object(guild_id)
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)
        else:
            await self.tree.sync()
        log.info("slash commands synced")

    async def close(self) -> None:
        await super().close()
        if self.http_session is not None:
            await self.http_session.close()


async def _serve(bot: FluxBot, token: str) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(bot.close()))
    async with bot:
        await bot.start(token)


def run_bot(config: Config, *, sync_commands: bool = False) -> int:
    """Run until SIGINT/SIGTERM; returns the process exit code."""
    use_endpoints(config)
    bot = FluxBot(config, sync_commands=sync_commands)
    try:
        asyncio.run(_serve(bot, config.discord.token.get_secret_value()))
    except discord.LoginFailure:
        print("discord.token: refused by Discord (check the bot token)", file=sys.stderr)
        return 2
    except discord.PrivilegedIntentsRequired:
        print("Discord refused the gateway intents", file=sys.stderr)
        return 2
    except (OSError, aiohttp.ClientError) as exc:
        print(f"cannot reach Discord: {type(exc).__name__}", file=sys.stderr)
        return 1
    return 0
