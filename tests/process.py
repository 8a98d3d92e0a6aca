"""The bot as its own process, as an admin runs it: started on a config file against the
loopback Discord and the local Replicate, stopped with SIGTERM or killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.fakes.discord_server import BOT_TOKEN, FakeDiscord
from tests.fakes.replicate_server import TOKEN, FakeReplicate

ROOT = Path(__file__).resolve().parents[1]


def write_config(folder: Path, discord: FakeDiscord, replicate: FakeReplicate, *,
                 replicate_extra: str = "", extra: str = "", discord_extra: str = "",
                 database: str | None = None, name: str = "config.toml",
                 replicate_base: str | None = None) -> Path:
    """A config with every default but the addresses of the local servers."""
    config = folder / name
    config.write_text(
        f'[discord]\napi_base = "{discord.api_base}"\ngateway_url = "{discord.gateway_url}"\n'
        f'{discord_extra}\n[replicate]\napi_base = "{replicate_base or replicate.relay_base}"\n'
        f'{replicate_extra}\n[storage]\ndatabase = "{database or folder / "data" / "bot.db"}"\n'
        f'{extra}')
    return config


async def start_bot(config: Path, log: Path, discord: FakeDiscord
                    ) -> asyncio.subprocess.Process:
    discord.identified.clear()
    env = {**os.environ, "DISCORD_TOKEN": BOT_TOKEN, "REPLICATE_API_TOKEN": TOKEN,
           "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(config), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=log.open("ab"))
    await asyncio.wait_for(discord.identified.wait(), 30)
    return process


async def kill(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGKILL)
    await process.wait()


async def stop(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), 60)
