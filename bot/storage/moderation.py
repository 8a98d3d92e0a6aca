"""Bans and the audit log of moderator actions."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.storage.audit import audit
from bot.storage.database import Database


@dataclass(frozen=True)
class Ban:
    guild_id: int
    user_id: int
    reason: str
    banned_by: int
    banned_at: float


@dataclass(frozen=True)
class AuditEntry:
    id: int
    guild_id: int
    actor_id: int
    action: str
    target_id: int | None
    details: dict[str, Any]
    created_at: float


class Moderation:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    async def ban(self, guild_id: int, user_id: int, actor_id: int, reason: str = "") -> None:
        async with self.db.transaction() as tx:
            now = self.clock()
            await tx.execute(
                "INSERT INTO bans (guild_id, user_id, reason, banned_by, banned_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (guild_id, user_id) DO UPDATE SET"
                " reason = excluded.reason, banned_by = excluded.banned_by,"
                " banned_at = excluded.banned_at", (guild_id, user_id, reason, actor_id, now))
            await audit(tx, guild_id, actor_id, "ban", user_id, {"reason": reason}, now)

    async def unban(self, guild_id: int, user_id: int, actor_id: int) -> bool:
        """False when the member was not banned."""
        async with self.db.transaction() as tx:
            removed = await tx.execute("DELETE FROM bans WHERE guild_id = ? AND user_id = ?",
                                       (guild_id, user_id))
            if removed:
                await audit(tx, guild_id, actor_id, "unban", user_id, {}, self.clock())
            return bool(removed)

    async def get_ban(self, guild_id: int, user_id: int) -> Ban | None:
        row = await self.db.fetchone(
            "SELECT guild_id, user_id, reason, banned_by, banned_at FROM bans"
            " WHERE guild_id = ? AND user_id = ?", (guild_id, user_id))
        return Ban(**dict(row)) if row else None

    async def record(self, guild_id: int, actor_id: int, action: str,
                     target_id: int | None = None, details: dict[str, Any] | None = None
                     ) -> None:
        """Audit an action that has no table of its own (e.g. canceling a job)."""
        async with self.db.transaction() as tx:
            await audit(tx, guild_id, actor_id, action, target_id, details or {}, self.clock())

    async def audit_log(self, guild_id: int, limit: int = 20) -> list[AuditEntry]:
        rows = await self.db.fetchall(
            "SELECT id, guild_id, actor_id, action, target_id, details, created_at"
            " FROM audit_log WHERE guild_id = ? ORDER BY id DESC LIMIT ?", (guild_id, limit))
        return [AuditEntry(**{**dict(r), "details": json.loads(r["details"])}) for r in rows]
