"""Running the bot as a process: signals that stop it promptly (even while it waits to
reconnect), start-up failures as one line naming the key, and logs an operator can act on
(one line per reconnect, no warnings about voice the bot never uses)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

import aiohttp
import discord

from bot.config import Config
from bot.discord_bot import Flux, make_bot, use_endpoints
from bot.errors import StartupError
from bot.jobs import STOP_GRACE

log = logging.getLogger("bot")


class OneLineReconnects(logging.Filter):
    """discord.py logs each reconnect with a full traceback (55 lines a time during an
    outage): keep one line, with what went wrong and the back-off."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Attempting a reconnect"):
            error = record.exc_info[1]
            record.msg = "Discord connection lost (%s); reconnecting in %.2fs"
            record.args = (f"{type(error).__name__}: {error}".rstrip(": "),
                           *(record.args or ()))  # type: ignore[misc]
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_discord_logs() -> None:
    logging.getLogger("discord.client").addFilter(OneLineReconnects())
    # the bot joins no voice channel: PyNaCl and davey are not needed, nor warned about
    discord.VoiceClient.warn_nacl = False
    discord.VoiceClient.warn_dave = False


async def serve(bot: Flux, token: str) -> None:
    """Run until SIGINT or SIGTERM, then stop within the grace period."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with bot:  # type: ignore[attr-defined]
        running = asyncio.ensure_future(bot.start(token))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.done():
            log.info("stopping: held creates and deliveries get up to %.0f s", STOP_GRACE)
            await bot.close()
            running.cancel()  # it may be waiting to reconnect: no reason to wait for that
            with contextlib.suppress(asyncio.CancelledError):
                await running
            log.info("stopped")
        else:
            stopping.cancel()
            running.result()  # what made it end (a refused token, a start-up error)
    await bot.close()  # `async with` skips it once discord.py says closed; ours may still run


def _more_open_files() -> None:
    """Raise the soft limit on open files to the hard one: a thousand predictions in flight
    hold a thousand connections."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def run_bot(config: Config, *, sync_commands: bool = False) -> int:
    """Run until SIGINT/SIGTERM; returns the process exit code."""
    _more_open_files()
    quiet_discord_logs()
    use_endpoints(config)
    bot = make_bot(config, sync_commands=sync_commands)
    try:
        asyncio.run(serve(bot, config.discord.token.get_secret_value()))
    except StartupError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except discord.LoginFailure:
        print(f"discord.token: refused by {config.discord.api_base} (check the bot token)",
              file=sys.stderr)
        return 2
    except discord.PrivilegedIntentsRequired:
        print("Discord refused the gateway intents", file=sys.stderr)
        return 2
    except (OSError, aiohttp.ClientError) as exc:
        print(f"discord.api_base: cannot reach {config.discord.api_base} "
              f"({type(exc).__name__}: {exc})", file=sys.stderr)
        return 1
    return 0
