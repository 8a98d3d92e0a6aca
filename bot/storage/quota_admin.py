"""What moderators do to credits: grant bonus (or take it back), reset a member's periods, set
or clear per-member limits. Each is one transaction with its audit row; those that read the
balance first take the server's quota lock, as a reservation does, so that a grant racing a
reservation in another process cannot take the bonus below zero."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.storage.audit import audit
from bot.storage.database import Database, Transaction

QUOTA_LOCK = 1  # the advisory locks quota writes take, one per server (PostgreSQL)


class ModeratorActions:
    """Mixed into `QuotaEngine`, which gives the database, the clock and the snapshot."""

    db: Database
    clock: Callable[[], float]

    async def _snapshot(self, tx: Transaction | Database, guild_id: int, user_id: int,
                        now: float) -> dict[str, Any]:
        raise NotImplementedError

    async def grant(self, guild_id: int, user_id: int, credits: int, actor_id: int
                    ) -> tuple[int, int]:
        """Add bonus credits (negative takes them back, never below zero); returns what was
        applied and the new bonus balance."""
        async with self.db.transaction() as tx:
            await tx.lock(QUOTA_LOCK, [guild_id])  # as a reservation does: one at a time
            now = self.clock()
            snap = await self._snapshot(tx, guild_id, user_id, now)
            credits = max(credits, -int(snap["bonus"]))
            if credits:
                await tx.execute(
                    "INSERT INTO ledger (guild_id, user_id, kind, source, credits, amount,"
                    " period_at, created_at, actor_id) VALUES (?, ?, 'grant', 'bonus', ?, ?, ?,"
                    " ?, ?)", (guild_id, user_id, abs(credits), credits, now, now, actor_id))
            await audit(tx, guild_id, actor_id, "quota-grant", user_id, {"credits": credits},
                        now)
            return credits, int(snap["bonus"]) + credits

    async def reset(self, guild_id: int, user_id: int, actor_id: int) -> None:
        """Clear the user's usage in the current periods: the jobs reserved so far stop
        counting (their late refunds too), whatever the clock says."""
        async with self.db.transaction() as tx:
            await tx.lock(QUOTA_LOCK, [guild_id])  # as a reservation does: one at a time
            now = self.clock()
            snap = await self._snapshot(tx, guild_id, user_id, now)
            cleared = int(max(snap["daily"], snap["weekly"], snap["monthly"]))
            last = await tx.fetchone("SELECT COALESCE(MAX(id), 0) FROM generations")
            await tx.execute(
                "INSERT INTO ledger (guild_id, user_id, kind, source, credits, amount,"
                " period_at, created_at, actor_id, reset_upto) VALUES (?, ?, 'reset',"
                " 'allowance', ?, 0, ?, ?, ?, ?)",
                (guild_id, user_id, cleared, now, now, actor_id, last[0] if last else 0))
            await audit(tx, guild_id, actor_id, "quota-reset", user_id, {"cleared": cleared},
                        now)

    async def set_limits(self, guild_id: int, user_id: int, actor_id: int, *,
                         daily: int | None = None, weekly: int | None = None,
                         monthly: int | None = None) -> None:
        """Per-user limits over config and roles; None leaves that period as it was set."""
        async with self.db.transaction() as tx:
            now = self.clock()
            await tx.execute(
                "INSERT INTO quota_overrides (guild_id, user_id, daily, weekly, monthly, set_by,"
                " set_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id, user_id) DO UPDATE"
                " SET daily = COALESCE(excluded.daily, quota_overrides.daily),"
                " weekly = COALESCE(excluded.weekly, quota_overrides.weekly),"
                " monthly = COALESCE(excluded.monthly, quota_overrides.monthly),"
                " set_by = excluded.set_by, set_at = excluded.set_at",
                (guild_id, user_id, daily, weekly, monthly, actor_id, now))
            await audit(tx, guild_id, actor_id, "quota-set", user_id,
                        {"daily": daily, "weekly": weekly, "monthly": monthly}, now)

    async def clear_limits(self, guild_id: int, user_id: int, actor_id: int) -> bool:
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "DELETE FROM quota_overrides WHERE guild_id = ? AND user_id = ?",
                (guild_id, user_id))
            await audit(tx, guild_id, actor_id, "quota-clear", user_id, {}, self.clock())
            return bool(changed)
