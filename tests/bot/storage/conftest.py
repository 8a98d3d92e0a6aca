"""Storage fixtures: a real SQLite file in tmp_path, on a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.config import QuotaSettings
from bot.storage import Storage
from bot.storage.quota import JobRequest
from tests.conftest import Clock

GUILD = 1000


def at(text: str, tz: str = "UTC") -> float:
    """Unix seconds of a local time such as "2026-03-01 23:59"."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def request(user: int = 1, images: int = 1, guild: int = GUILD, **extra: Any) -> JobRequest:
    options = extra.pop("options", {"num_outputs": images})
    return JobRequest(guild_id=guild, channel_id=50, user_id=user, prompt="a castle",
                      options=options, images=images, **extra)


@pytest.fixture
def clock() -> Clock:
    return Clock(at("2026-03-04 12:00"))


@pytest.fixture
async def open_storage(database_location: str, clock: Clock
                       ) -> AsyncIterator[Callable[..., Awaitable[Storage]]]:
    """Storage on each engine in turn (the tests run on SQLite and on PostgreSQL)."""
    opened: list[Storage] = []

    async def make(**quota: Any) -> Storage:
        quota.setdefault("per_user_concurrent", 0)
        storage = await Storage.open(database_location, QuotaSettings(**quota), clock)
        opened.append(storage)
        return storage

    yield make
    for storage in opened:
        await storage.close()
