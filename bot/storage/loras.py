"""A server's own LoRA catalogue, added to by moderators beside the config's `[[loras]]`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.catalogue import LoraChoice
from bot.storage.audit import audit
from bot.storage.database import Database


@dataclass(frozen=True)
class Trained:
    user_id: int
    at: float
    job_id: int
    steps: int
    images: int
    cost: float | None
    seconds: float | None


class GuildLoras:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    async def list(self, guild_id: int) -> list[LoraChoice]:
        rows = await self.db.fetchall(
            "SELECT name, ref, trigger, scale, description FROM guild_loras"
            " WHERE guild_id = ? ORDER BY name_key", (guild_id,))
        return [LoraChoice(ref=r["ref"], name=r["name"], trigger=r["trigger"], scale=r["scale"],
                           description=r["description"]) for r in rows]

    async def add(self, guild_id: int, entry: LoraChoice, actor_id: int,
                  job_id: int | None = None) -> bool:
        """Add or replace `entry` (by case-insensitive name); True when it was new. `job_id`:
        the training that made it."""
        assert entry.name
        async with self.db.transaction() as tx:
            now = self.clock()
            existed = await tx.fetchone(
                "SELECT 1 FROM guild_loras WHERE guild_id = ? AND name_key = ?",
                (guild_id, entry.name.casefold()))
            await tx.execute(
                "INSERT INTO guild_loras (guild_id, name, name_key, ref, trigger, scale,"
                " description, added_by, added_at, job_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (guild_id, name_key) DO UPDATE SET name = excluded.name,"
                " ref = excluded.ref, trigger = excluded.trigger, scale = excluded.scale,"
                " description = excluded.description, added_by = excluded.added_by,"
                " added_at = excluded.added_at, job_id = excluded.job_id",
                (guild_id, entry.name, entry.name.casefold(), entry.ref, entry.trigger,
                 entry.scale, entry.description, actor_id, now, job_id))
            await audit(tx, guild_id, actor_id, "lora-train" if job_id else "lora-add", None,
                        {"name": entry.name, "ref": entry.ref, "job": job_id}, now)
            return existed is None

    async def of_job(self, job_id: int) -> str | None:
        """The name of the entry training `job_id` made, if it made one (a restart asks)."""
        row = await self.db.fetchone("SELECT name FROM guild_loras WHERE job_id = ?",
                                     (job_id,))
        return None if row is None else str(row["name"])

    async def trained(self, guild_id: int, name: str) -> Trained | None:
        """Who trained the entry `name`, when, with how many steps, at what cost (None: it
        was added by hand, or is not there)."""
        row = await self.db.fetchone(
            "SELECT l.added_by, l.added_at, l.job_id, g.options, g.cost, g.predict_time"
            " FROM guild_loras l JOIN generations g ON g.id = l.job_id"
            " WHERE l.guild_id = ? AND l.name_key = ?", (guild_id, name.strip().casefold()))
        if row is None:
            return None
        options = json.loads(row["options"]) if isinstance(row["options"], str) else \
            dict(row["options"] or {})
        return Trained(user_id=int(row["added_by"]), at=float(row["added_at"]),
                       job_id=int(row["job_id"]), steps=int(options.get("steps") or 0),
                       images=int(options.get("image_count") or 0),
                       cost=row["cost"], seconds=row["predict_time"])

    async def remove(self, guild_id: int, name: str, actor_id: int) -> bool:
        async with self.db.transaction() as tx:
            removed = await tx.execute(
                "DELETE FROM guild_loras WHERE guild_id = ? AND name_key = ?",
                (guild_id, name.strip().casefold()))
            if removed:
                await audit(tx, guild_id, actor_id, "lora-remove", None, {"name": name},
                            self.clock())
            return bool(removed)
