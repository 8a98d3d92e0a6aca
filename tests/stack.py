"""The whole bot on loopback: the real discord.py client against the local Discord, the real
Replicate client against the local Replicate, a real SQLite file."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.config import Config, parse_config
from bot.discord_bot import FluxBot, make_bot, use_endpoints
from bot.replicate.retry import PollPolicy, RetryPolicy
from tests.fakes.discord_server import BOT_TOKEN, CHANNEL_ID, GUILD_ID, FakeDiscord, Sent
from tests.fakes.replicate_server import TOKEN, FakeReplicate, Scenario


@dataclass
class Stack:
    discord: FakeDiscord
    replicate: FakeReplicate
    bot: FluxBot
    config: Config
    task: asyncio.Task[None]

    async def stop(self) -> None:
        await self.bot.close()
        await asyncio.wait_for(self.task, 10)

    async def finished(self, sent: Sent, timeout: float = 15) -> dict[str, Any]:
        """The job message of `sent` once its job has ended (images, failure or cancel) and
        been settled: the message says so a moment before the credits are."""
        def done() -> dict[str, Any] | None:
            message = self.discord.message_for(sent)
            if message is None or not message.get("embeds"):
                return None
            title = message["embeds"][0].get("title", "")
            ended = ("Done", "Failed", "Canceled", "完成", "失败", "已取消")
            return message if title in ended else None
        message = await self.discord.wait_for(done, timeout)
        footer = message["embeds"][0].get("footer", {}).get("text", "").split()
        task = self.bot.runner.tasks.get(int(footer[-1])) if footer and \
            footer[-1].isdigit() and self.bot.runner else None
        if task is not None:
            await asyncio.wait({task}, timeout=timeout)
        return self.discord.message_for(sent) or message

    def images(self, message: dict[str, Any]) -> list[Image.Image]:
        """The posted attachments, decoded."""
        out = []
        for attachment in message["attachments"]:
            key = attachment["url"].split("/attachments/", 1)[1]
            image = Image.open(io.BytesIO(self.discord.attachments[key]))
            image.load()
            out.append(image)
        return out

    async def status(self, user_id: int, guild_id: int = GUILD_ID) -> Any:
        """A member's quota in the test server, as /quota reads it."""
        return await self.bot.storage.quota.status(guild_id, user_id)


def settings(discord: FakeDiscord, replicate: FakeReplicate, tmp_path: Path,
             extra: dict[str, Any] | None = None) -> Config:
    data: dict[str, Any] = {
        "discord": {"token": BOT_TOKEN, "api_base": discord.api_base,
                    "gateway_url": discord.gateway_url},
        "replicate": {"api_token": TOKEN, "api_base": replicate.relay_base, "wait_seconds": 5},
        "storage": {"database": str(tmp_path / "data" / "bot.db")},
        "quota": {"daily": 20, "per_user_concurrent": 0},
        "loras": [{"name": "frosting_lane", "ref": "alvdansen/frosting_lane_flux",
                   "trigger": "frstingln illustration", "scale": 0.6,
                   "description": "Soft pastel illustration"}],
    }
    for section, values in (extra or {}).items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    return parse_config(data, {})


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server
    # every request checked against Discord's own document and rules: none may be refused
    if not server.refusals_expected:
        assert server.schema_problems == []


@pytest.fixture
async def start_stack(discord_fake: FakeDiscord, fake: FakeReplicate, tmp_path: Path
                      ) -> AsyncIterator[Callable[..., Awaitable[Stack]]]:
    """Start (or restart) the bot; every stack still running is stopped at the end."""
    stacks: list[Stack] = []
    fake.scenario = Scenario(duration=0.15)
    fake.wait_scale = 1.0

    async def start(sync_commands: bool = False, **extra: Any) -> Stack:
        config = settings(discord_fake, fake, tmp_path, extra)
        use_endpoints(config)
        discord_fake.identified.clear()
        bot = make_bot(config, sync_commands=sync_commands, guild_ready_timeout=0.05)
        task = asyncio.create_task(bot.start(BOT_TOKEN))
        await asyncio.wait_for(discord_fake.identified.wait(), 10)
        await asyncio.wait_for(bot.wait_until_ready(), 10)
        assert bot.runner is not None
        bot.runner.edit_interval = 0.0  # show every update: tests read them
        assert bot.replicate is not None
        bot.replicate.poll = PollPolicy(first=0.02, factor=1.0, cap=0.02, when_output=0.02)
        bot.replicate.retry = RetryPolicy(base=0.01, cap=0.05)  # backoff maths: test_retry
        stack = Stack(discord_fake, fake, bot, config, task)
        stacks.append(stack)
        return stack

    yield start
    for stack in stacks:
        if not stack.task.done():
            await stack.stop()


@pytest.fixture
async def stack(start_stack: Callable[..., Awaitable[Stack]]) -> Stack:
    return await start_stack()


__all__ = ["CHANNEL_ID", "Stack", "discord_fake", "stack", "start_stack"]
