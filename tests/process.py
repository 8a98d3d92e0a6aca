"""The bot as its own process, as an admin runs it: started on a config file against the
loopback Discord and the local Replicate, stopped with SIGTERM or killed with SIGKILL."""

from __future__ import annotations

import asyncio
import json
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


async def run_together(commands: list[list[str]], timeout: float = 300) -> list[dict]:
    """Start a Python module per command (`python -m …`); each says "ready" once set up and
    waits for "go" on stdin, so that all start their work at the same moment; returns the
    JSON each printed last. A process that fails raises `RuntimeError`."""
    started = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", *command, cwd=ROOT, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE) for command in commands]
    for process in started:
        assert process.stdout is not None
        if (await asyncio.wait_for(process.stdout.readline(), 60)).strip() != b"ready":
            raise RuntimeError(f"{commands[started.index(process)]} did not get ready")
    for process in started:
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        await process.stdin.drain()
    outputs = []
    for command, process in zip(commands, started, strict=True):
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
        if process.returncode:
            raise RuntimeError(f"{command} failed ({process.returncode})")
        outputs.append(json.loads(out.decode().strip().splitlines()[-1]))
    return outputs


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
