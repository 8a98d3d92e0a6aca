"""A server's own LoRA catalogue, added to by moderators beside the config's `[[loras]]`."""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.catalogue import LoraChoice
from bot.storage.audit import audit
from bot.storage.database import Database


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

    async def add(self, guild_id: int, entry: LoraChoice, actor_id: int) -> bool:
        """Add or replace `entry` (by case-insensitive name); True when it was new."""
        assert entry.name
        async with self.db.transaction() as tx:
            now = self.clock()
            existed = await tx.fetchone(
                "SELECT 1 FROM guild_loras WHERE guild_id = ? AND name_key = ?",
                (guild_id, entry.name.casefold()))
            await tx.execute(
                "INSERT INTO guild_loras (guild_id, name, name_key, ref, trigger, scale,"
                " description, added_by, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (guild_id, name_key) DO UPDATE SET name = excluded.name,"
                " ref = excluded.ref, trigger = excluded.trigger, scale = excluded.scale,"
                " description = excluded.description, added_by = excluded.added_by,"
                " added_at = excluded.added_at",
                (guild_id, entry.name, entry.name.casefold(), entry.ref, entry.trigger,
                 entry.scale, entry.description, actor_id, now))
            await audit(tx, guild_id, actor_id, "lora-add", None,
                        {"name": entry.name, "ref": entry.ref}, now)
            return existed is None

    async def remove(self, guild_id: int, name: str, actor_id: int) -> bool:
        async with self.db.transaction() as tx:
            removed = await tx.execute(
                "DELETE FROM guild_loras WHERE guild_id = ? AND name_key = ?",
                (guild_id, name.strip().casefold()))
            if removed:
                await audit(tx, guild_id, actor_id, "lora-remove", None, {"name": name},
                            self.clock())
            return bool(removed)
