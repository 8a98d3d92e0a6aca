"""Storage behind a small async API: cogs call these, never SQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot.config import BudgetSettings, QuotaSettings
from bot.storage.budget import Budget
from bot.storage.database import Database
from bot.storage.history import History
from bot.storage.loras import GuildLoras
from bot.storage.moderation import Moderation
from bot.storage.processes import Processes
from bot.storage.quota import QuotaEngine
from bot.storage.settings import UserSettings


@dataclass
class Storage:
    db: Database
    quota: QuotaEngine
    history: History
    moderation: Moderation
    settings: UserSettings
    loras: GuildLoras
    processes: Processes
    budget: Budget

    @classmethod
    async def open(cls, path: str | Path, quota: QuotaSettings,
                   clock: Callable[[], float] = time.time,
                   budget: BudgetSettings | None = None) -> Storage:
        """Open the database at `path` (created, migrated) with every store on it."""
        db = await Database.open(path)
        money = Budget(db, budget or BudgetSettings(), quota.timezone, clock)
        return cls(db=db, quota=QuotaEngine(db, quota, clock, budget=money),
                   history=History(db, clock),
                   moderation=Moderation(db, clock), settings=UserSettings(db, clock),
                   loras=GuildLoras(db, clock), processes=Processes(db, clock), budget=money)

    async def close(self) -> None:
        await self.db.close()


__all__ = ["Database", "Storage"]
